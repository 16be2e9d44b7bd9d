"""What a sweep will do, checked before anything runs or is written.

:func:`plan_sweep` reads the composed settings, refuses every bad one with one message
(:class:`SweepConfigError`), resolves each codec's identity once (the workers get it with their
job) and lists the jobs; :func:`pending_jobs` says which of them must run and why.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctc.codec import CodecError, codec_class
from ctc.devices import DeviceError, codec_devices
from ctc.identity import changes, codec_identity, redo_reason
from ctc.jobs import ROLES, Job, plan_jobs
from ctc.results import RESULT_FILE, ResultStatus, is_complete, read_result
from ctc.store import UnsafeName, check_name, write_json_atomic
from ctc.testset.sequences import SequenceError, SequenceSpec, load_test_set

MIN_BD_RATE_POINTS = 4  # BD-rate fits a curve through at least four rate points
SCORING = ("sequence", "job")  # scored per sequence once decoded (ctc.sweep.scoring), or in each job


class SweepConfigError(ValueError):
    """The configuration is wrong or names something that does not exist; raised before any job runs."""


@dataclass
class SweepPlan:
    settings: dict[str, Any]
    run_dir: Path
    sections: dict[str, dict[str, Any]]  # role -> codec section
    identities: dict[str, dict[str, Any]]  # role -> the codec's resolved identity
    specs: list[SequenceSpec]
    jobs: list[Job]

    @property
    def metric_names(self) -> list[str]:
        return list(self.settings["metrics"]["names"])


def default_workers() -> int:
    """Workers for ``jobs=auto``: one per CPU core (the codec configs run each encoder on one thread)."""
    return os.cpu_count() or 1


def plan_sweep(settings: dict[str, Any]) -> SweepPlan:
    """The sweep ``settings`` describe; :class:`SweepConfigError` for anything wrong in them."""
    try:
        run = check_name("run", settings["run"])
        _check_workers(settings.get("jobs"))
        if settings.get("scoring", "sequence") not in SCORING:
            raise SweepConfigError(f"scoring={settings['scoring']!r}: expected one of {', '.join(SCORING)}")
        metric_names = _checked_metrics(settings["metrics"].get("names"), settings["metrics"].get("modules"))
        sections = codec_sections(settings)
        identities = {role: _resolved_identity(role, section) for role, section in sections.items()}
        specs = load_test_set(settings["testset"])
        for spec in specs:
            check_name("sequence name", spec.name)
        uses_gpu = {role: codec_class(section).uses_gpu for role, section in sections.items()}
        devices = codec_devices(uses_gpu, str(settings["device"]))
    except (UnsafeName, SequenceError, CodecError, DeviceError) as exc:
        raise SweepConfigError(str(exc)) from None
    run_dir = Path(settings["results_dir"]).expanduser().resolve() / run  # workers may start elsewhere
    from ctc.metrics import metric_code

    jobs = plan_jobs(sections, identities, specs, metric_code(metric_names), devices)
    return SweepPlan(settings, run_dir, sections, identities, specs, jobs)


def codec_variants(arguments: Sequence[str]) -> list[list[str]]:
    """The task overrides of each configuration of the codec under test that a command line sweeps
    (``codec=a,b``, ``codec.q_step=4,8``, ``picture_codec@codec.intra=vtm,vvenc``): one list per
    combination, as Hydra's basic sweeper expands them. Only the codec under test can be swept: the
    variants share the run folder, the test set, the anchor and the metrics."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    choices = []
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        if not override.is_sweep_override():
            choices.append([override.input_line])
            continue
        key = override.get_key_element()
        if key != "codec" and not key.split("@")[-1].startswith("codec."):
            raise SweepConfigError(
                f"{override.input_line}: ctc-run sweeps configurations of the codec under "
                "test into one run (codec=a,b or codec.KEY=x,y); run other settings apart"
            )
        choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
    return [list(combination) for combination in itertools.product(*choices)]


def check_variants(plans: Sequence[SweepPlan]) -> None:
    """The plans of one sweep's codec configurations go into one run: one folder, and two configurations
    under one name only when they are the same (their results share that name's folder)."""
    identities: dict[str, dict[str, Any]] = {}
    for plan in plans:
        if plan.run_dir != plans[0].run_dir:
            raise SweepConfigError(
                f"the codec configurations of one sweep go to one run folder, not "
                f"{plans[0].run_dir} and {plan.run_dir}"
            )
        label, identity = plan.sections["test"]["name"], plan.identities["test"]
        if identities.setdefault(label, identity) != identity:
            found = changes(identities[label], identity, "codec")
            raise SweepConfigError(
                f"two codec configurations are both named {label!r} but differ ("
                f"{'; '.join(found[:2])}); their results would share one folder: give "
                "each its own name (codec.name=...)"
            )


def _check_workers(jobs: Any) -> None:
    if jobs == "auto":  # the sweep makes it one per core
        return
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise SweepConfigError(f"jobs={jobs!r}: expected a positive number of parallel workers (or auto)")


def _checked_metrics(names: Any, modules: Any) -> list[str]:
    from ctc.metrics import MetricError, metric_class, use_metric_modules

    if not names:
        raise SweepConfigError("metrics.names is empty: name at least one metric (e.g. metrics=psnr)")
    try:
        use_metric_modules(modules)
        for name in names:
            metric_class(str(name))
    except MetricError as exc:
        raise SweepConfigError(f"metrics.names: {exc}") from None
    return [str(name) for name in names]


def codec_sections(settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The codec section of each role in this sweep (``anchor=none`` sweeps the codec alone)."""
    sections = {role: dict(settings[key]) for role, key in ROLES.items() if settings.get(key)}
    for role, section in sections.items():
        for key in ("name", "module", "rate_points"):
            if not section.get(key):
                raise SweepConfigError(
                    f"the {ROLES[role]} config lacks '{key}' ({ROLES[role]}/<name>.yaml "
                    "must give name, module (with class or type) and rate_points)"
                )
        check_name(f"{ROLES[role]} name", section["name"])
        try:
            codec_class(section).check_config(section)
        except KeyError as exc:
            raise SweepConfigError(exc.args[0]) from None
    anchor = sections.get("anchor")
    if anchor and settings.get("report", True) and len(anchor["rate_points"]) < MIN_BD_RATE_POINTS:
        raise SweepConfigError(
            f"anchor {anchor['name']} has {len(anchor['rate_points'])} rate points "
            f"({anchor['rate_points']}); BD-rate needs at least {MIN_BD_RATE_POINTS} "
            "(or report=false)"
        )
    if anchor and anchor["name"] == sections["test"]["name"]:
        if anchor != sections["test"]:
            raise SweepConfigError(
                f"codec and anchor are both named {anchor['name']!r} but are configured "
                "differently; their results would share one folder"
            )
        del sections["anchor"]  # the same codec: its jobs are the anchor's
    return sections


def _resolved_identity(role: str, section: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return codec_identity(section)
    except CodecError as exc:
        raise SweepConfigError(f"{ROLES[role]} {section['name']}: {exc}") from None


@dataclass(frozen=True)
class PendingJob:
    """A job of the sweep that must run: ``stage`` "code" (encode, decode, score) or "score" (its
    bitstream is kept: decode it again and score it), and why."""

    job: Job
    stage: str
    reason: str


def what_runs(plan: SweepPlan) -> tuple[list[PendingJob], list[Job]]:
    """The jobs that must run (with their stage and reason) and the ones whose results are reused; reads
    the run folder, writes nothing."""
    pending, reused = [], []
    for job in plan.jobs:
        result = read_result(job.directory(plan.run_dir))
        if is_complete(result, job.identity_hash, job.metric_code):
            reused.append(job)
            continue
        coded = (
            bool(result)
            and result.get("config_hash") == job.identity_hash
            and result.get("status") in (ResultStatus.OK, ResultStatus.DECODED)
        )
        pending.append(
            PendingJob(job, "score" if coded else "code", redo_reason(result, job.identity, job.metric_code))
        )
    return pending, reused


def has_pending(plan: SweepPlan) -> bool:
    """Whether a job of ``plan`` lacks a complete result of its identity (says nothing)."""
    return any(
        not is_complete(read_result(job.directory(plan.run_dir)), job.identity_hash, job.metric_code)
        for job in plan.jobs
    )


def pending_jobs(plan: SweepPlan) -> list[Job]:
    """The jobs without a complete result of their identity; prints, per codec, why they run."""
    pending, reused = what_runs(plan)
    for job in reused:
        directory = job.directory(plan.run_dir)
        result = read_result(directory) or {}
        if result.get("role") != job.role:  # a complete result made under another role takes this one
            write_json_atomic(directory / RESULT_FILE, {**result, "role": job.role})
    reasons = Counter((each.job.codec, each.reason) for each in pending)
    for (codec, reason), count in reasons.items():
        print(f"{codec}: {reason}, {count} job{'s' * (count != 1)} to run", file=sys.stderr)
    return [each.job for each in pending]


def describe_plans(plans: Sequence[SweepPlan]) -> str:
    """What ``ctc-run --plan`` prints: per codec and stage, how many jobs would run and why, and how
    many results would be reused."""
    lines = [f"ctc-run --plan: {plans[0].run_dir} (a plan: nothing was run or written)"]
    seen: set[str] = set()
    for plan in plans:
        pending, reused = what_runs(plan)
        for codec in dict.fromkeys(job.codec for job in plan.jobs):
            if codec in seen:  # the anchor's jobs are every configuration's
                continue
            seen.add(codec)
            mine = [each for each in pending if each.job.codec == codec]
            kept = sum(job.codec == codec for job in reused)
            coding = sum(each.stage == "code" for each in mine)
            lines.append(f"{codec}: {coding} to code, {len(mine) - coding} to score only, {kept} reused")
            for (stage, reason), count in Counter((each.stage, each.reason) for each in mine).items():
                lines.append(f"  {count} to {stage}: {reason}")
    return "\n".join(lines)
