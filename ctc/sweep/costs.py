"""What a sweep will cost before it starts (``ctc-run ... --plan``): CPU and GPU hours per stage and the
wall time on the chosen launcher, from per-frame costs (docs/costs.md).

The costs are ``ctc/conf/costs.yaml``'s, where ``make bench`` measured none on this machine; its
measured ones are in ``<cache>/bench/costs.yaml`` (:data:`MEASURED_FILE`) and win, codec by codec.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ctc.paths import cache_dir
from ctc.sweep.page_frames import page_sequences
from ctc.sweep.plan import SweepPlan, what_runs

DEFAULTS_FILE = Path(__file__).resolve().parent.parent / "conf" / "costs.yaml"
MEASURED_FILE = Path("bench") / "costs.yaml"  # under the cache
# What make bench measures on a cluster (bench/cluster.py), in costs.yaml's slurm section.
CLUSTER_KEYS = ("queue_s", "round_s", "scoring_start_extra_s")


def measured_costs_path() -> Path:
    return cache_dir() / MEASURED_FILE


def load_costs() -> dict[str, Any]:
    """The defaults, with what ``make bench`` measured in their place: each codec's coding cost
    (``coding.<codec>.source`` says which), the harness's cost per job (``job_overhead_source``), a
    cluster task's start."""
    costs = yaml.safe_load(DEFAULTS_FILE.read_text(encoding="utf-8"))
    for entry in costs["coding"].values():
        entry["source"] = "default"
    costs["job_overhead_source"] = "default"
    path = measured_costs_path()
    measured = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}
    for codec, entry in (measured.get("coding") or {}).items():
        costs["coding"][codec] = {**costs["coding"].get(codec, {}), **entry, "source": f"measured {path}"}
    if "job_overhead_s" in measured:
        costs["job_overhead_s"] = float(measured["job_overhead_s"]["cpu_s"])
        costs["job_overhead_source"] = f"measured {path}"
    if "task_start_s" in measured:
        costs["slurm"]["task_start_s"] = float(measured["task_start_s"]["seconds"])
    costs["slurm"]["source"] = "default"
    if measured.get("slurm"):
        costs["slurm"].update((key, float(measured["slurm"][key])) for key in CLUSTER_KEYS)
        costs["slurm"]["source"] = f"measured {path}"
    return costs


@dataclass(frozen=True)
class Launcher:
    """Where the sweep runs: ``cluster`` (SLURM) or this machine with ``workers``."""

    name: str
    workers: int
    cores: int
    cluster: bool = False
    parallel: int | None = None  # a cluster's tasks running at once (array_parallelism; None: all)
    scoring_cpus: int = 4  # CPUs of a cluster's scoring task
    # a cluster's tasks of each array (a codec's name, "scoring") that its nodes have room for at once
    lanes: Mapping[str, int] = field(default_factory=dict)
    unknown_room: str = ""  # why the cluster's room is not known ("": it is, or not asked)

    def at_once(self, array: str, tasks: int) -> int:
        """How many of an array's ``tasks`` run at once on the cluster."""
        return self.lanes.get(array) or self.parallel or max(tasks, 1)


@dataclass(frozen=True)
class StageCost:
    stage: str
    cpu_s: float
    gpu_s: float
    wall_s: float
    note: str = ""


def _per_frame(table: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    return table.get(name) or table["default"]


def estimate(plans: Sequence[SweepPlan], launcher: Launcher, costs: Mapping[str, Any]) -> list[StageCost]:
    """The cost of each stage of the sweep of ``plans`` (one per codec configuration): coding per codec,
    scoring, report; only the jobs that would run count."""
    stages: list[StageCost] = []
    seen: set[str] = set()
    versions: dict[str, float] = {}  # sequence -> frames to score
    gpu_scoring = False
    # a cluster task is a Python process of its own: its start is paid per job, not once per worker, and
    # each round of tasks waits for the cluster to start it (round_s)
    start = float(costs["slurm"]["task_start_s"]) if launcher.cluster else 0.0
    per_round = float(costs["slurm"]["round_s"])
    for plan in plans:
        pending, _ = what_runs(plan)
        for codec in dict.fromkeys(job.codec for job in plan.jobs):
            if codec in seen:
                continue
            seen.add(codec)
            mine = [each for each in pending if each.job.codec == codec]
            cost = _per_frame(costs["coding"], codec)
            cpu = gpu = longest = 0.0
            for each in mine:
                share = 1.0 if each.stage == "code" else float(costs["decode_share"])
                on_gpu = each.job.device.startswith("cuda") and "gpu_s" in cost
                seconds = each.job.sequence.frames * share * float(cost["gpu_s" if on_gpu else "cpu_s"])
                gpu += seconds if on_gpu else 0.0
                cpu += float(costs["job_overhead_s"]) + start + (0.0 if on_gpu else seconds)
                longest = max(longest, seconds + float(costs["job_overhead_s"]))
                versions[each.job.sequence.name] = (
                    versions.get(each.job.sequence.name, 0) + each.job.sequence.frames
                )
                gpu_scoring = gpu_scoring or on_gpu
            wall = _wall(
                cpu + gpu, len(mine), longest + per_round, launcher.at_once(codec, len(mine)), launcher, costs
            )
            stages.append(
                StageCost(
                    f"coding {codec}",
                    cpu,
                    gpu,
                    wall,
                    f"{len(mine)} jobs, {cost['source']} cost, "
                    f"{costs['job_overhead_s']:.2f} s per job of harness ({costs['job_overhead_source']})",
                )
            )
    metrics = plans[-1].metric_names
    unit = "gpu_s" if gpu_scoring else "cpu_s"
    per_frame = sum(float(_per_frame(costs["scoring"], metric)[unit]) for metric in metrics)
    seconds = per_frame * sum(versions.values())
    cpu, gpu = (0.0, seconds) if gpu_scoring else (seconds, 0.0)
    if launcher.cluster:  # one task per sequence, array_parallelism of them at a time
        extra = float(costs["slurm"]["scoring_start_extra_s"])  # a scoring task imports torch, the metrics
        cpu += (start + extra) * len(versions)
        rounds = math.ceil(len(versions) / launcher.at_once("scoring", len(versions)))
        longest = (
            per_frame * max(versions.values(), default=0) / (1 if gpu_scoring else launcher.scoring_cpus)
        )
        wall = float(costs["slurm"]["queue_s"]) + rounds * (extra + longest + per_round)
    else:
        wall = seconds if gpu_scoring else seconds / max(1, launcher.cores)
    stages.append(StageCost("scoring", cpu, gpu, wall, f"{', '.join(metrics)}, {len(versions)} sequences"))
    if launcher.cluster:
        stages = [replace(stage, note=f"{stage.note}; {_cluster_note(costs)}") for stage in stages]
    plan = plans[-1]
    if plan.settings.get("report", True) and "anchor" in plan.sections and versions:
        shown = (
            len(page_sequences(plan))
            * sum(len(s["rate_points"]) for s in plan.sections.values())
            * len(plans)
        )
        seconds = float(costs["report"]["base_s"]) + shown * float(costs["report"]["per_version_s"])
        stages.append(StageCost("report", seconds, 0.0, seconds, f"{shown} versions on the page"))
    return stages


def _wall(
    seconds: float, jobs: int, longest: float, at_once: int, launcher: Launcher, costs: Mapping[str, Any]
) -> float:
    """The wall time of ``jobs`` coding jobs of ``seconds`` in all, the longest ``longest``; on a cluster
    ``at_once`` of them at a time."""
    if not jobs:
        return 0.0
    if launcher.cluster:
        return float(costs["slurm"]["queue_s"]) + math.ceil(jobs / at_once) * longest
    return seconds / max(1, min(launcher.workers, launcher.cores, jobs))


def _cluster_note(costs: Mapping[str, Any]) -> str:
    slurm = costs["slurm"]
    return (
        f"queue {slurm['queue_s']:g} s an array, {slurm['round_s']:g} s a round of tasks besides their jobs "
        f"({slurm['source']})"
    )


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.3f} h"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def describe_costs(stages: Sequence[StageCost], launcher: Launcher) -> str:
    """The estimate as ``--plan`` prints it."""
    workers = min(launcher.workers, launcher.cores)
    if launcher.lanes:
        room = ", ".join(f"{array} {count}" for array, count in launcher.lanes.items())
        where = f"{launcher.name} (a cluster; tasks at once, as its nodes have room: {room})"
    elif launcher.cluster:
        unknown = f"; its room unknown: {launcher.unknown_room}" if launcher.unknown_room else ""
        where = f"{launcher.name} (a cluster, {launcher.parallel or 'all'} tasks at once{unknown})"
    else:
        where = f"{launcher.name}, {workers} workers on {launcher.cores} cores"
    lines = [f"estimated cost on {where} (docs/costs.md):"]
    for stage in stages:
        lines.append(
            f"  {stage.stage}: {_hours(stage.cpu_s)} CPU, {_hours(stage.gpu_s)} GPU, "
            f"wall {_duration(stage.wall_s)} ({stage.note})"
        )
    cpu, gpu = sum(s.cpu_s for s in stages), sum(s.gpu_s for s in stages)
    wall = sum(stage.wall_s for stage in stages)
    lines.append(f"  total: {_hours(cpu)} CPU, {_hours(gpu)} GPU, wall {_duration(wall)}")
    return "\n".join(lines)


def launcher_of(config: Any) -> Launcher:
    """The launcher a composed ``ctc-run`` configuration (with its ``hydra`` section) chooses."""
    from omegaconf import OmegaConf

    from ctc.sweep.plan import default_workers

    name = str(OmegaConf.select(config, "hydra.runtime.choices.launcher") or "joblib")
    target = str(OmegaConf.select(config, "hydra.launcher._target_") or "")
    cores = default_workers()
    jobs = OmegaConf.select(config, "jobs")
    workers = cores if jobs in (None, "auto") else int(jobs)
    if "Slurm" in target:
        parallel = OmegaConf.select(config, "hydra.launcher.array_parallelism")
        cpus = (  # a value set for every job wins over scoring_task's (ctc.slurm.executor.job_resources)
            OmegaConf.select(config, "hydra.launcher.cpus_per_task")
            or OmegaConf.select(config, "hydra.launcher.scoring_task.cpus_per_task")
            or 4
        )
        return Launcher(
            name, workers, cores, cluster=True, parallel=parallel and int(parallel), scoring_cpus=int(cpus)
        )
    return Launcher(name, 1 if "BasicExecutor" in target else workers, cores)
