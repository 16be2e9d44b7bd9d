"""Waiting for a sweep's SLURM jobs: every one until it ends, none silently, none forever.

A job is done when SLURM says it ended (``COMPLETED``, ``FAILED``, ``NODE_FAIL``, ...). A job pending
for a reason that will not clear by itself (``PartitionConfig``: it asks more than any node has;
``ReqNodeNotAvail``: its nodes are down; see ``unschedulable_reasons``) for longer than
``unschedulable_after_s`` is cancelled and given up, and so is a job SLURM has had no record of for
``unknown_after_s``; either is reported with what SLURM said. Ctrl-C cancels the jobs still going.

A controller (or accounting daemon) that does not answer is not a job SLURM has no record of: the
sweep says so, keeps the last known picture (marked stale) and waits. Only after ``outage_limit_s``
without an answer does it give up on every job still going, cancelling them (or saying it could not).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ctc.slurm.commands import JobState, SlurmCommandError, array_of, cancel, job_states

NOT_RUN = "NOT_RUN"  # given up while pending for an unschedulable reason (and cancelled)
UNKNOWN = "UNKNOWN"  # SLURM had no record of it for too long, or did not answer for longer than its limit


@dataclass(frozen=True)
class WaitPolicy:
    poll_s: float  # between two looks at the queue
    unschedulable_reasons: tuple[str, ...]  # pending reasons that do not clear by themselves
    unschedulable_after_s: float  # how long a job may pend for one of them before it is given up
    unknown_after_s: float  # how long SLURM may answer without a record of a job before it is given up
    command_timeout_s: float  # for one squeue, sacct or scancel call
    outage_limit_s: float  # how long SLURM may not answer at all before every job still going is given up

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> WaitPolicy:
        missing = [key for key in cls.__dataclass_fields__ if settings.get(key) is None]
        if missing:
            raise ValueError(
                f"the SLURM launcher settings lack {', '.join(missing)} "
                "(ctc/conf/launcher/slurm.yaml sets them: use launcher=slurm)"
            )
        try:
            numbers = {
                key: float(settings[key])
                for key in cls.__dataclass_fields__
                if key != "unschedulable_reasons"
            }
        except (TypeError, ValueError):
            raise ValueError(
                f"the SLURM launcher's waiting settings must be numbers of seconds: "
                f"{ {key: settings[key] for key in cls.__dataclass_fields__} }"
            ) from None
        return cls(unschedulable_reasons=tuple(settings["unschedulable_reasons"]), **numbers)

    def unschedulable(self, state: JobState) -> bool:
        # squeue's reason may carry details ("ReqNodeNotAvail, UnavailableNodes:node1"): a prefix matches
        return state.state == "PENDING" and state.reason.startswith(self.unschedulable_reasons)


@dataclass(frozen=True)
class Outcome:
    state: str  # the state the job ended in (COMPLETED, FAILED, ...), NOT_RUN or UNKNOWN
    detail: str  # what SLURM said, for the user


def wait_for_jobs(
    job_ids: Sequence[str],
    policy: WaitPolicy,
    say: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Outcome]:
    """Wait until every job of ``job_ids`` ended or was given up; returns each job's outcome.

    ``say`` gets a line whenever the picture changes (how many jobs run, wait and why, ended).
    On ``KeyboardInterrupt`` the arrays of the jobs still going are cancelled (``scancel``), which
    ``say`` reports, and the interrupt goes on.
    """
    outcomes: dict[str, Outcome] = {}
    pending_since: dict[str, tuple[str, float]] = {}  # job: (unschedulable reason, since)
    unknown_since: dict[str, float] = {}
    last_known: dict[str, JobState] = {}
    away: tuple[float, str] | None = None  # SLURM has not answered since (clock, time of day)
    shown = ""
    try:
        while len(outcomes) < len(job_ids):
            now = clock()
            going = [job_id for job_id in job_ids if job_id not in outcomes]
            listing = job_states(going, policy.command_timeout_s)
            away = (away or (now, datetime.now().strftime("%H:%M:%S"))) if listing.trouble else None
            if away and now - away[0] >= policy.outage_limit_s:
                _give_up_unanswered(going, now - away[0], listing.trouble, policy, outcomes, say)
                break
            give_up = []
            for job_id in going:
                state = listing.states.get(job_id)
                if state is None:
                    if listing.trouble:  # not answered about: not known to be unknown
                        continue
                    since = unknown_since.setdefault(job_id, now)
                    if now - since >= policy.unknown_after_s:
                        outcomes[job_id] = Outcome(
                            UNKNOWN,
                            (
                                f"SLURM has had no record of it for {now - since:.0f} s (neither squeue nor "
                                "sacct lists it: cancelled before it started, or purged)"
                            ),
                        )
                    continue
                unknown_since.pop(job_id, None)
                last_known[job_id] = state
                if state.ended:
                    outcomes[job_id] = Outcome(state.state, f"ended {state.state}")
                elif policy.unschedulable(state):
                    reason, since = pending_since.setdefault(job_id, (state.reason, now))
                    if now - since >= policy.unschedulable_after_s:
                        give_up.append(job_id)
                        outcomes[job_id] = Outcome(
                            NOT_RUN, (f"pending ({state.reason}) for {now - since:.0f} s; cancelled it")
                        )
                else:
                    pending_since.pop(job_id, None)
            if give_up:
                _cancel_quietly(give_up, policy, say)
            trouble = (
                (
                    f"no answer since {away[1]}, counts as of then (stale): {listing.trouble}; waiting "
                    f"for SLURM (at most {policy.outage_limit_s:.0f} s)"
                )
                if away
                else ""
            )
            line = _picture(job_ids, last_known, outcomes, trouble)
            if line != shown:
                say(line)
                shown = line
            if len(outcomes) < len(job_ids):
                sleep(policy.poll_s)
    except KeyboardInterrupt:
        going = sorted({array_of(job_id) for job_id in job_ids if job_id not in outcomes}, key=int)
        if going:
            _cancel_quietly(going, policy, say)
            say(f"interrupted: cancelled the sweep's SLURM jobs {', '.join(going)} (scancel)")
        raise
    return outcomes


def _give_up_unanswered(
    going: Sequence[str],
    waited_s: float,
    trouble: str,
    policy: WaitPolicy,
    outcomes: dict[str, Outcome],
    say: Callable[[str], None],
) -> None:
    """SLURM did not answer for ``outage_limit_s``: every job still going is given up and cancelled,
    or, when scancel fails too, reported as left to the cluster (for the user to cancel)."""
    arrays = sorted({array_of(job_id) for job_id in going}, key=int)
    try:
        cancel(arrays, policy.command_timeout_s)
        fate = f"cancelled its array ({', '.join(arrays)})"
    except SlurmCommandError as exc:
        fate = f"could not cancel it ({exc}): scancel {' '.join(arrays)} once SLURM answers"
    say(f"SLURM did not answer for {waited_s:.0f} s (outage_limit_s): gave up on {len(going)} jobs; {fate}")
    for job_id in going:
        outcomes[job_id] = Outcome(UNKNOWN, f"SLURM did not answer for {waited_s:.0f} s ({trouble}); {fate}")


def _cancel_quietly(job_ids: Sequence[str], policy: WaitPolicy, say: Callable[[str], None]) -> None:
    try:
        cancel(job_ids, policy.command_timeout_s)
    except SlurmCommandError as exc:
        say(f"could not cancel {', '.join(job_ids)}: {exc}")


def _picture(
    job_ids: Sequence[str], states: Mapping[str, JobState], outcomes: Mapping[str, Outcome], trouble: str
) -> str:
    """One line: how many jobs ended, run and wait (with SLURM's reasons)."""
    going = [states[job_id] for job_id in job_ids if job_id not in outcomes and job_id in states]
    running = sum(state.state != "PENDING" for state in going)
    reasons = Counter(state.reason or "no reason given" for state in going if state.state == "PENDING")
    waiting = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    parts = [
        f"{len(outcomes)}/{len(job_ids)} ended",
        f"{running} running",
        f"{sum(reasons.values())} pending" + (f" ({waiting})" if waiting else ""),
    ]
    if trouble:
        parts.append(trouble)
    return "SLURM: " + ", ".join(parts)
