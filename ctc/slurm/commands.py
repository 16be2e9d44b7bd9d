"""SLURM as a sweep sees it: the state of its jobs, why a pending one waits, cancelling them.

Plain ``squeue``, ``sacct`` and ``scancel`` calls, the commands of every SLURM site. ``squeue
--states=all`` knows a job, with the reason a pending one waits, until slurmctld forgets it
(``MinJobAge``); ``sacct`` (accounting) knows how it ended after that. submitit's own watcher reads
``sacct`` alone: it cannot tell why a job waits, and a pending array task cancelled before it started
has no accounting record of its own, so submitit waits for it forever.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

# The states in which a job has ended, as squeue and sacct name them (sacct adds "by <uid>" to CANCELLED).
ENDED_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "REVOKED",
        "SPECIAL_EXIT",
    }
)
# sacct writes the tasks of an array that have no record of their own as one row: 1234_[0-7,9%4]
_ARRAY_RANGE = re.compile(r"^(\d+)_\[([0-9,\-]+)(?:%\d+)?\]$")


class SlurmCommandError(RuntimeError):
    """A SLURM command failed (slurmctld or slurmdbd unreachable, a rejected submission, ...)."""


@dataclass(frozen=True)
class JobState:
    state: str  # PENDING, RUNNING, COMPLETED, NODE_FAIL, ...
    reason: str = ""  # why a pending job waits (squeue's reason, e.g. "PartitionConfig"); "" for none

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES


def array_of(job_id: str) -> str:
    """The job id of an array task's array (``1234_5`` → ``1234``); a plain job is its own."""
    return job_id.split("_", 1)[0]


@dataclass(frozen=True)
class Listing:
    """What SLURM said about a sweep's jobs in one look."""

    states: dict[str, JobState]  # each job SLURM knows, with its state
    trouble: str = ""  # why jobs absent from ``states`` are not known to be unknown ("": SLURM answered)


def job_states(job_ids: Iterable[str], timeout_s: float) -> Listing:
    """The state of each of ``job_ids`` (``1234`` or array tasks ``1234_5``) that SLURM knows.

    A job that ended other than ``COMPLETED`` takes the state of its steps when one of them names the
    cause (an ``srun`` step killed ``OUT_OF_MEMORY`` leaves its allocation ``FAILED``). A job SLURM
    answered about and has no record of is absent; when squeue (or, for jobs squeue no longer lists,
    sacct) does not answer, the listing says so in ``trouble`` and its jobs are absent too.
    """
    wanted = set(job_ids)
    states: dict[str, JobState] = {}
    try:
        listing = run_command(
            ["squeue", "--me", "--states=all", "--array", "--noheader", "--format=%i|%T|%r"], timeout_s
        )
    except SlurmCommandError as exc:
        return Listing({}, str(exc))
    for line in listing.splitlines():
        fields = line.strip().split("|", 2)
        if len(fields) == 3 and fields[0] in wanted:
            states[fields[0]] = JobState(fields[1], "" if fields[2] == "None" else fields[2])
    gone = wanted - set(states)
    unexplained = {job_id for job_id, state in states.items() if state.ended and state.state != "COMPLETED"}
    if not gone and not unexplained:
        return Listing(states)
    try:
        accounted = _accounted_ends(gone | unexplained, timeout_s)
    except SlurmCommandError as exc:  # slurmdbd away: the jobs squeue forgot are not known to be unknown
        return Listing(states, str(exc) if gone else "")
    states.update(accounted)
    return Listing(states)


# The states of a job's steps that say why it ended, most telling first (its allocation may say FAILED).
STEP_CAUSES = ("OUT_OF_MEMORY", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "CANCELLED")


def _accounted_ends(job_ids: set[str], timeout_s: float) -> dict[str, JobState]:
    """How ``job_ids`` ended, according to accounting (only jobs that did end), their steps' cause
    (:data:`STEP_CAUSES`) before their allocation's own state."""
    arrays = sorted({array_of(job_id) for job_id in job_ids}, key=int)
    listing = run_command(
        ["sacct", "--noheader", "--parsable2", "--format=JobID,State", f"--jobs={','.join(arrays)}"],
        timeout_s,
    )
    ended: dict[str, str] = {}
    causes: dict[str, set[str]] = {}
    for line in listing.splitlines():
        record, _, state = line.strip().partition("|")
        state = state.split(" ", 1)[0]  # "CANCELLED by 0"
        record, dot, _ = record.partition(".")  # 1234_5.batch, 1234_5.0: the steps of 1234_5
        if dot:
            causes.setdefault(record, set()).add(state)
        elif state in ENDED_STATES:  # the record of an array's pending tasks says nothing of one cancelled
            ended.update((job_id, state) for job_id in _expand(record) if job_id in job_ids)
    found = {}
    for job_id, state in ended.items():
        cause = next((each for each in STEP_CAUSES if each in causes.get(job_id, ())), None)
        found[job_id] = JobState(cause if cause and state != "COMPLETED" else state)
    return found


def _expand(record: str) -> list[str]:
    """The job ids of one sacct row: ``1234_5``, or ``1234_[0-2,7]`` → ``1234_0 … 1234_2, 1234_7``."""
    match = _ARRAY_RANGE.match(record)
    if not match:
        return [record]
    ids = []
    for part in match.group(2).split(","):
        first, _, last = part.partition("-")
        ids += [f"{match.group(1)}_{task}" for task in range(int(first), int(last or first) + 1)]
    return ids


def cancel(job_ids: Iterable[str], timeout_s: float) -> None:
    """``scancel`` the jobs (a whole array by its id, or single tasks)."""
    ids = sorted(set(job_ids))
    if ids:
        run_command(["scancel", *ids], timeout_s)


def run_command(command: list[str], timeout_s: float) -> str:
    """The standard output of a SLURM command; :class:`SlurmCommandError` when it fails or hangs."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError:
        raise SlurmCommandError(f"{command[0]} not found: launcher=slurm needs SLURM's commands") from None
    except subprocess.TimeoutExpired:
        raise SlurmCommandError(f"{command[0]} gave no answer within {timeout_s:g} s") from None
    if done.returncode:
        message = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        raise SlurmCommandError(f"{command[0]} failed: {message}")
    return done.stdout
