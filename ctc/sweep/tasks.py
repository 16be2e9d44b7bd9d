"""A sweep's tasks as its executors get them: typed, picklable, each complete in itself.

The sweep composes its configuration once and plans it (:mod:`ctc.sweep.plan`); each task carries
what its worker needs from that (the job and its resolved identity, the codec's section, the metrics'
settings, the run folder), so a worker (a joblib process, a submitit job on a SLURM node) runs it as it
is: nothing is composed, encoded or decoded again. An executor (:mod:`ctc.sweep.executors`,
:mod:`ctc.slurm.executor`) calls :func:`run_task` on each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ctc.devices import batch_size_for, limit_threads, release_freed_memory
from ctc.jobs import Job, run_job
from ctc.paths import harness_environment, use_harness_environment
from ctc.sweep.plan import SweepPlan
from ctc.sweep.scoring import ScoreTask, score_sequence
from ctc.sweep.waves import Wave
from ctc.testset.sequences import SequenceSpec


@dataclass(frozen=True)
class CodingTask:
    """Code, decode (and with ``score``, scoring=job, score) one job."""

    job: Job
    section: Mapping[str, Any]  # the codec's configuration, the sweep's timeout_s included
    metrics: Mapping[str, Any]
    run_dir: Path
    keep_decoded: bool
    score: bool
    threads: int
    environment: Mapping[str, str]  # the harness's variables as the sweep planned with them (ctc.paths)

    @property
    def name(self) -> str:
        """The codec: on a cluster the tasks of one name share an array and its resources."""
        return self.job.codec

    @property
    def sequence(self) -> str:
        return self.job.sequence.name

    def on_node(self, device: str | None, threads: int) -> CodingTask:
        """This task on a cluster node: its ``threads``, and ``device`` unless None (the sweep's stays)."""
        return replace(self, job=replace(self.job, device=device or self.job.device), threads=threads)

    def run(self) -> None:
        limit_threads(self.threads)
        run_job(self.job, self.section, self.metrics, self.run_dir, self.keep_decoded, score=self.score)


@dataclass(frozen=True)
class ScoringTask:
    """Score the decoded versions of one sequence that ``score`` names (:mod:`ctc.sweep.scoring`)."""

    score: ScoreTask
    spec: SequenceSpec
    metrics: Mapping[str, Any]
    run_dir: Path
    keep_decoded: bool
    environment: Mapping[str, str]

    name = "scoring"

    @property
    def sequence(self) -> str:
        return self.score.sequence

    def on_node(self, device: str | None, threads: int) -> ScoringTask:
        return replace(self, score=replace(self.score, device=device or self.score.device, threads=threads))

    def run(self) -> None:
        limit_threads(self.score.threads)
        batch_size = batch_size_for(self.metrics, self.score.device)
        score_sequence(
            self.spec,
            self.score.entries,
            self.metrics,
            self.run_dir,
            self.keep_decoded,
            self.score.device,
            batch_size,
        )
        release_freed_memory()


Task = CodingTask | ScoringTask


def wave_tasks(plan: SweepPlan, wave: Wave, for_page: set[str]) -> list[Task]:
    """A wave's tasks, its coding jobs first, then its scoring tasks; ``for_page``: the sequences whose
    decoded files stay until the report page is written (:mod:`ctc.sweep.page_frames`)."""
    settings = plan.settings
    specs = {spec.name: spec for spec in plan.specs}
    environment = harness_environment()

    def keep(sequence: str) -> bool:
        return bool(settings["keep_decoded"]) or sequence in for_page

    coding = [
        CodingTask(
            job,
            {"timeout_s": settings["timeout_s"], **plan.sections[job.role]},
            settings["metrics"],
            plan.run_dir,
            keep(job.sequence.name),
            score=settings.get("scoring", "sequence") == "job",
            threads=wave.threads,
            environment=environment,
        )
        for job in wave.coding
    ]
    scoring = [
        ScoringTask(
            task, specs[task.sequence], settings["metrics"], plan.run_dir, keep(task.sequence), environment
        )
        for task in wave.scoring
    ]
    return [*coding, *scoring]


def run_task(task: Task) -> str | None:
    """Run ``task`` in this process, with the sweep's harness environment: None, or why it failed (a job's
    own failure is in its result.json)."""
    try:
        use_harness_environment(task.environment)
        task.run()
    except Exception as exc:  # reported by the sweep for the task's jobs; the others go on
        return f"{type(exc).__name__}: {exc}"
    return None
