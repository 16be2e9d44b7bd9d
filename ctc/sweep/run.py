"""The sweep: plan a run's jobs, skip the complete ones, run the rest, tally this sweep's results.

``ctc-run`` (:mod:`ctc.runner`) composes each codec configuration once and hands the composed
configurations in; the sweep plans them, turns the jobs to run into typed tasks
(:mod:`ctc.sweep.tasks`) and hands those to the executor that ``launcher=`` chose
(:mod:`ctc.sweep.executors`). Checking and planning live in :mod:`ctc.sweep.plan`, the tally and the
files written at the end in :mod:`ctc.sweep.results`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from omegaconf import DictConfig, open_dict, read_write

from ctc.conf import without_hydra
from ctc.devices import DeviceError, gpu_count, scoring_devices
from ctc.jobs import Job
from ctc.provenance import now_iso
from ctc.results import ResultStatus, awaits_scoring, read_result
from ctc.store import job_busy, job_dir
from ctc.sweep.executors import Executor, executor_for
from ctc.sweep.page_frames import page_sequences, release_page_frames
from ctc.sweep.plan import (
    SweepConfigError,
    SweepPlan,
    check_variants,
    default_workers,
    has_pending,
    pending_jobs,
    plan_sweep,
)
from ctc.sweep.results import (
    print_failures,
    record_failure,
    report,
    summarise,
    sweep_results,
    write_provenance,
)
from ctc.sweep.scoring import mark_unscored, restore_unscored
from ctc.sweep.tasks import Task, wave_tasks
from ctc.sweep.waves import Wave, plan_all_at_once, plan_waves, threads_per_task


def run_sweep(configs: Sequence[DictConfig]) -> None:
    """Run the sweep of each composed configuration (one per configuration of the codec under test:
    ``codec=a,b``) into one run folder, one after another (the anchor's jobs run once), then report them
    together, on the executor that ``launcher=`` chose; the executor checks what it would ask for (a
    cluster's resources) when a job is to run, before anything is written.

    Raises ``SystemExit(2)`` before anything runs or is written when a configuration is wrong, and
    ``SystemExit(1)`` at the end when a job failed, after every other job ran.
    """
    started = now_iso()
    configs = [_with_workers(config) for config in configs]
    try:
        plans = [plan_sweep(without_hydra(config)) for config in configs]
        check_variants(plans)
        executor = executor_for(configs)
        if any(has_pending(plan) for plan in plans):
            executor.preflight(plans)
    except SweepConfigError as exc:
        print(f"ctc-run: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    batch_size = None if executor.whole_sweep else 2 * int(configs[0].jobs)
    ran, results, seen, decoded = False, [], set(), []
    for plan, config in zip(plans, configs, strict=True):
        pending = pending_jobs(plan)
        _sweep(plan, config, pending, executor, batch_size, started)
        decoded += pending
        results += sweep_results([job for job in plan.jobs if job.label not in seen], plan.run_dir)
        seen.update(job.label for job in plan.jobs)  # the anchor's jobs are every variant's
        ran = ran or bool(pending)
    for each, config in zip(plans, configs, strict=True):
        write_provenance(each, config, results, started=started)
    plan = plans[-1]
    summarise(plan.run_dir, results)
    if plan.settings.get("report", True) and "anchor" in plan.sections:
        report(
            plan.run_dir, plan.sections["anchor"]["name"], refresh=ran, page=plan.settings.get("report_page")
        )
    release_page_frames(decoded, plan.run_dir, page_sequences(plan))
    if any(result.get("status") != ResultStatus.OK for result in results):
        print_failures(results, plan.run_dir)
        raise SystemExit(1)


def _with_workers(config: DictConfig) -> DictConfig:
    """``jobs: auto`` made one worker per core."""
    if config.jobs in (None, "auto"):
        with read_write(config), open_dict(config):
            config.jobs = default_workers()
    return config


def _sweep(
    plan: SweepPlan,
    config: DictConfig,
    pending: list[Job],
    executor: Executor,
    batch_size: int | None,
    started: str,
) -> None:
    """Run one variant's pending jobs, wave after wave."""
    if pending:
        _prepare_metrics(plan.metric_names)
    write_provenance(plan, config, started=started)

    from tqdm import tqdm

    by_sequence = _by_sequence(plan)
    # decoded by an earlier sweep whose scoring did not finish: scored, not coded again
    scoring_only = {
        job.label
        for job in pending
        if by_sequence and restore_unscored(job.directory(plan.run_dir), job.identity_hash, job.sequence)
    }
    for_page = page_sequences(plan)
    with tqdm(
        total=len(plan.jobs),
        initial=len(plan.jobs) - len(pending),
        unit="job",
        file=sys.stderr,
        desc=f"ctc-run {plan.run_dir.name}",
        dynamic_ncols=True,
    ) as progress:
        for planned in _waves(plan, pending, batch_size, by_sequence):
            coding = [job for job in planned.coding if job.label not in scoring_only]
            wave = _decoded_only(replace(planned, coding=coding), plan.run_dir)
            if wave.coding or wave.scoring:
                _launch_wave(wave, wave_tasks(plan, wave, for_page), executor, plan.run_dir)
            # a job is done once its sequence's scoring task had its turn (it may have failed before)
            progress.update(
                sum(len(task.entries) for task in planned.scoring) if by_sequence else len(wave.coding)
            )


def _by_sequence(plan: SweepPlan) -> bool:
    """Whether the sweep scores sequence by sequence (``scoring=sequence``) rather than in each job."""
    return plan.settings.get("scoring", "sequence") == "sequence"


def _waves(plan: SweepPlan, pending: list[Job], batch_size: int | None, by_sequence: bool) -> list[Wave]:
    """The sweep's waves (:mod:`ctc.sweep.waves`): sequence by sequence, or with ``batch_size`` None (the
    launcher takes the whole sweep: a cluster) every coding job then every scoring task; with
    ``scoring=job`` batches of ``batch_size`` jobs (None: all at once) that score themselves."""
    cores = default_workers()
    workers = int(plan.settings["jobs"])  # a number: run_sweep made ``auto`` one (_with_workers)
    if not pending:
        return []
    if not by_sequence:
        size = batch_size or max(len(pending), 1)
        batches = [pending[start : start + size] for start in range(0, len(pending), size)]
        return [Wave(batch, threads=threads_per_task(cores, workers, len(batch))) for batch in batches]
    try:
        devices = scoring_devices(
            str(plan.settings["metrics"].get("device", "auto")), str(plan.settings["device"]), gpu_count()
        )
    except DeviceError as exc:
        print(f"ctc-run: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if batch_size is None:
        return plan_all_at_once(pending, devices, cores, workers)
    return plan_waves(pending, devices, cores, workers)


def _decoded_only(wave: Wave, run_dir: Path) -> Wave:
    """``wave`` with its scoring tasks cut to the jobs that are decoded and waiting to be scored (a job
    whose coding failed has nothing to score; a sequence without any such job gets no task)."""
    tasks = []
    for task in wave.scoring:
        entries = tuple(entry for entry in task.entries if _waiting(run_dir, task.sequence, entry))
        if entries:
            tasks.append(replace(task, entries=entries))
    return replace(wave, scoring=tasks)


def _waiting(run_dir: Path, sequence: str, entry: tuple[str, int, str]) -> bool:
    codec, rate_point, digest = entry
    return awaits_scoring(read_result(job_dir(run_dir, codec, sequence, rate_point)), digest)


def _prepare_metrics(names: Sequence[str]) -> None:
    """Fetch the metrics' backbone weights once here, not in every worker at the same time."""
    from ctc.metrics import MetricError, prepare_metrics
    from ctc.metrics.weights import WeightsError

    try:
        prepare_metrics(names)
    except (MetricError, WeightsError) as exc:
        print(f"ctc-run: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _launch_wave(wave: Wave, tasks: list[Task], executor: Executor, run_dir: Path) -> None:
    """Run one wave; a job that could not even run (or a lost worker) is recorded as failed with
    the executor's reason, unless it wrote a result in this wave or has a complete one of its own
    (an earlier failure of the same job is replaced: the reason shown is this run's). A job left
    decoded by a scoring task that did not finish is recorded as failed, its bitstream kept."""
    before = [read_result(job.directory(run_dir)) for job in wave.coding]
    try:
        errors = list(executor.run(tasks))
    except Exception as exc:  # an executor failure (e.g. a killed worker) fails its wave's unfinished tasks
        errors = [f"the launcher failed: {type(exc).__name__}: {exc}"] * len(tasks)
    for job, error, earlier in zip(wave.coding, errors, before, strict=False):
        result = read_result(job.directory(run_dir)) or {}
        own = result.get("config_hash") == job.identity_hash and result.get("status") in (
            ResultStatus.OK,
            ResultStatus.DECODED,
        )
        if error and result == (earlier or {}) and not own:
            record_failure(job, error, run_dir, overwrite=True)
    for task, error in zip(wave.scoring, errors[len(wave.coding) :], strict=True):
        for codec, rate_point, digest in task.entries:
            directory = job_dir(run_dir, codec, task.sequence, rate_point)
            result = read_result(directory)
            if awaits_scoring(result, digest) and not job_busy(directory):
                mark_unscored(directory, result, f"{task.label} did not finish: {error or 'no reason given'}")
