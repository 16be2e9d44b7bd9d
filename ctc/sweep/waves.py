"""The order a sweep runs its tasks in: sequence by sequence, coding then scoring, within the cores.

Each sequence's coding jobs (every codec and rate point) run in one wave; the sequence's scoring task
(:mod:`ctc.sweep.scoring`) follows once they are done. On the CPU the scoring waits for its coding wave
and has the cores to itself; with GPUs the scoring of one group of sequences (one per GPU) runs while
the next group is coded. Either way the decoded files on disk are those of about one sequence per
scoring worker, not the whole sweep's. Every task of a wave is told how many threads it may use, so
that the workers together never run more threads than the cores given to the sweep.

An executor that schedules the whole sweep itself (a cluster: :mod:`ctc.slurm.executor`) gets
two waves instead: every coding job, then every sequence's scoring task, each task a job of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ctc.jobs import Job
from ctc.sweep.scoring import ScoreTask


@dataclass
class Wave:
    coding: list[Job] = field(default_factory=list)
    scoring: list[ScoreTask] = field(default_factory=list)
    threads: int = 1  # CPU threads per task


def threads_per_task(cores: int, workers: int, tasks: int) -> int:
    """CPU threads for each of ``tasks`` tasks on ``workers`` workers sharing ``cores`` cores."""
    return max(1, cores // max(1, min(workers, tasks)))


def _by_sequence(pending: Sequence[Job]) -> list[list[Job]]:
    sequences: dict[str, list[Job]] = {}
    for job in pending:
        sequences.setdefault(job.sequence.name, []).append(job)
    return list(sequences.values())


def plan_all_at_once(pending: Sequence[Job], devices: Sequence[str], cores: int, workers: int) -> list[Wave]:
    """Two waves: every job of ``pending`` coded, then each sequence's scoring task (on ``devices`` in
    turn; a cluster's launcher gives each task its node's device and threads)."""
    groups = _by_sequence(pending)
    threads = threads_per_task(cores, workers, len(groups))
    tasks = [
        ScoreTask.of(group, devices[index % len(devices)], threads) for index, group in enumerate(groups)
    ]
    return [Wave(list(pending), [], threads_per_task(cores, workers, len(pending))), Wave([], tasks, threads)]


def plan_waves(pending: Sequence[Job], devices: Sequence[str], cores: int, workers: int) -> list[Wave]:
    """The waves that code and score ``pending``, sequence by sequence in their order: on GPUs
    ``[code 1] [score 1 + code 2] ... [score n]``, on the CPU ``[code 1] [score 1] [code 2] ...``
    (a group is one sequence per scoring device)."""
    groups = _by_sequence(pending)
    pipelined = all(device.startswith("cuda") for device in devices)
    waves: list[tuple[list[Job], list[tuple[list[Job], str]]]] = []
    for start in range(0, len(groups), len(devices)):
        chunk = groups[start : start + len(devices)]
        coding = [job for group in chunk for job in group]
        if pipelined and waves:
            waves[-1][0].extend(coding)  # coded while the previous group is scored on the GPUs
        else:
            waves.append((coding, []))
        waves.append(([], list(zip(chunk, devices, strict=False))))
    planned = []
    for coding, scoring in waves:
        threads = threads_per_task(cores, workers, len(coding) + len(scoring))
        tasks = [ScoreTask.of(group, device, threads) for group, device in scoring]
        planned.append(Wave(coding, tasks, threads))
    return planned
