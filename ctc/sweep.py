"""The sweep: expand a run's jobs, skip the complete ones, launch the rest, summarise.

Driven by the ``ctc`` Hydra sweeper (``hydra_plugins/gfvc_ctc_sweeper``), which hands in the
composed configuration and its launcher's ``launch``; everything here is plain Python so the
plugin stays a thin adapter.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from ctc.codec import codec_class
from ctc.jobs import ROLES, Job, plan_jobs, run_job
from ctc.provenance import collect, now_iso
from ctc.sequences import SequenceError, load_test_set
from ctc.store import (
    COLUMNS,
    PROVENANCE_FILE,
    RESULT_FILE,
    SUMMARY_FILE,
    is_complete,
    load_results,
    read_result,
    results_table,
    write_json_atomic,
)

Launch = Callable[[Sequence[Sequence[str]], int], Sequence[Any]]
SUMMARY_COLUMNS = ["codec", "role", "seq_class", "sequence", "rate_point", "kbps"]
TIME_COLUMNS = ["enc_seconds", "dec_seconds", "status"]


class SweepConfigError(ValueError):
    """The configuration names something that does not exist; raised before any job runs."""


def default_workers() -> int:
    """Workers for ``jobs=auto``: one per CPU core (the codec configs run each encoder on one thread)."""
    return os.cpu_count() or 1


def task_config(config: DictConfig) -> dict[str, Any]:
    """The resolved configuration without Hydra's own node."""
    return {key: OmegaConf.to_container(config[key], resolve=True) if OmegaConf.is_config(config[key])
            else config[key] for key in config if key != "hydra"}


def codec_sections(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The codec section of each role in this sweep (``anchor=none`` sweeps the codec alone)."""
    sections = {role: dict(config[key]) for role, key in ROLES.items() if config.get(key)}
    for role, section in sections.items():
        for key in ("name", "module", "rate_points"):
            if not section.get(key):
                raise SweepConfigError(f"the {ROLES[role]} config lacks '{key}' (ctc/conf/{ROLES[role]}/"
                                       "<name>.yaml must give name, module and rate_points)")
        try:
            codec_class(section)
        except KeyError as exc:
            raise SweepConfigError(exc.args[0]) from None
    if "anchor" in sections and sections["anchor"]["name"] == sections["test"]["name"]:
        if sections["anchor"] != sections["test"]:
            raise SweepConfigError(f"codec and anchor are both named {sections['test']['name']!r} but are "
                                   "configured differently; their results would share one folder")
        del sections["anchor"]  # the same codec: its jobs are the anchor's
    return sections


def job_devices(sections: Mapping[str, Mapping[str, Any]], device: str) -> dict[str, list[str]]:
    """The devices each role's jobs cycle over: GPU codecs round-robin over the visible GPUs."""
    devices: dict[str, list[str]] = {}
    for role, section in sections.items():
        if device == "cpu" or not codec_class(section).uses_gpu:
            devices[role] = ["cpu"]
            continue
        import torch  # only GPU codecs pay for importing torch here

        count = torch.cuda.device_count()
        if device.startswith("cuda:"):
            devices[role] = [device]
        elif count:
            devices[role] = [f"cuda:{index}" for index in range(count)]
        elif device == "cuda":
            raise SweepConfigError("device=cuda but no CUDA device is visible (use device=auto or cpu)")
        else:
            devices[role] = ["cpu"]
    return devices


def quote(value: str) -> str:
    """A Hydra override value that stays one string whatever characters a path holds."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def run_sweep(config: DictConfig, arguments: Sequence[str], launch: Launch, batch_size: int) -> None:
    """Run the sweep that ``config`` describes; ``arguments`` are the user's task overrides.

    Raises ``SystemExit(1)`` at the end when a job failed, after every other job ran.
    """
    settings = task_config(config)
    results_dir = Path(settings["results_dir"]).expanduser().resolve()  # workers may start elsewhere
    run_dir = results_dir / str(settings["run"])
    try:
        sections = codec_sections(settings)
        specs = load_test_set(settings["testset"])
        devices = job_devices(sections, str(settings["device"]))
    except (SweepConfigError, SequenceError) as exc:
        print(f"ctc-run: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    metric_names = list(settings["metrics"]["names"])
    jobs = plan_jobs(sections, specs, metric_names, devices)
    pending = [job for job in jobs if not _reuse(job, run_dir)]
    if pending:
        _prepare_metrics(metric_names)
    _write_provenance(run_dir, config, settings, sections)

    from tqdm import tqdm

    common = [arg for arg in arguments if not arg.lstrip("+").startswith("results_dir=")]
    common.append(f"results_dir={quote(str(results_dir))}")
    with tqdm(total=len(jobs), initial=len(jobs) - len(pending), desc=f"ctc-run {settings['run']}",
              unit="job", file=sys.stderr, dynamic_ncols=True) as progress:
        for start in range(0, len(pending), batch_size):
            batch = pending[start:start + batch_size]
            _launch_batch(batch, [common + job.overrides() for job in batch], start, launch, run_dir)
            progress.update(len(batch))

    results = [read_result(job.directory(run_dir)) or {} for job in jobs]
    _summarise(run_dir, results)
    _write_provenance(run_dir, config, settings, sections, results)
    if settings.get("report", True) and "anchor" in sections:
        _report(run_dir, sections["anchor"]["name"], refresh=bool(pending))
    failures = [result for result in results if result.get("status") != "ok"]
    if failures:
        print(f"\n{len(failures)} of {len(jobs)} jobs failed:", file=sys.stderr)
        for result in failures:
            error = (result.get("error") or "no result").splitlines()[0]
            print(f"  {result.get('codec')}/{result.get('sequence')}/{result.get('rate_point')}: {error}",
                  file=sys.stderr)
        print(f"logs: {run_dir}/<codec>/<sequence>/<rate point>/job.log", file=sys.stderr)
        raise SystemExit(1)


def _prepare_metrics(names: Sequence[str]) -> None:
    """Fetch the metrics' backbone weights once here, not in every worker at the same time."""
    from ctc.metrics import MetricError, prepare_metrics
    from ctc.metrics.weights import WeightsError

    try:
        prepare_metrics(names)
    except (MetricError, WeightsError) as exc:
        print(f"ctc-run: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def run_task(config: DictConfig) -> dict[str, Any]:
    """The Hydra task of one job: the sweeper sets ``job.*`` to choose it."""
    choice = config.job
    if choice.role not in ROLES:
        raise SweepConfigError("ctc-run jobs are chosen by its sweeper (hydra/sweeper=ctc); "
                               f"job.role={choice.role!r} is not one of {sorted(ROLES)}")
    settings = task_config(config)
    section = settings[ROLES[choice.role]]
    (spec,) = load_test_set({**settings["testset"], "sequences": [str(choice.sequence)]})
    metric_names = list(settings["metrics"]["names"])
    jobs = plan_jobs({choice.role: section}, [spec], metric_names, {choice.role: [choice.device]})
    (job,) = [job for job in jobs if job.rate_point == int(choice.rate_point)]
    run_dir = Path(settings["results_dir"]) / str(settings["run"])
    codec_settings = {"timeout_s": settings["timeout_s"], **section}
    return run_job(job, codec_settings, settings["metrics"], run_dir, bool(settings["keep_decoded"]))


def _reuse(job: Job, run_dir: Path) -> bool:
    """Whether ``job`` is complete; a complete result made under another role takes this one."""
    result = read_result(job.directory(run_dir))
    if not is_complete(result, job.config_hash, job.metric_names):
        return False
    if result["role"] != job.role:
        write_json_atomic(job.directory(run_dir) / RESULT_FILE, {**result, "role": job.role})
    return True


def _launch_batch(batch: list[Job], overrides: list[list[str]], first_index: int, launch: Launch,
                  run_dir: Path) -> None:
    """Launch one batch; a job that could not even run (or a lost worker) is recorded as failed."""
    try:
        returns = list(launch(overrides, first_index))
        errors = [_job_error(ret) for ret in returns]
    except Exception as exc:  # a launcher failure (e.g. a killed worker) fails its batch's unfinished jobs
        errors = [f"the launcher failed: {type(exc).__name__}: {exc}"] * len(batch)
    for job, error in zip(batch, errors, strict=True):
        if error and read_result(job.directory(run_dir)) is None:
            _record_failure(job, error, run_dir)


def _job_error(job_return: Any) -> str | None:
    from hydra.core.utils import JobStatus

    if job_return.status == JobStatus.COMPLETED:
        return None
    error = job_return._return_value  # Hydra keeps the task's exception here (return_value re-raises)
    return f"{type(error).__name__}: {error}"


def _record_failure(job: Job, error: str, run_dir: Path) -> None:
    spec = job.sequence
    directory = job.directory(run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomic(directory / RESULT_FILE, {
        "status": "failed", "codec": job.codec, "role": job.role, "sequence": spec.name,
        "seq_class": spec.seq_class, "rate_point": job.rate_point, "frames": spec.frames, "fps": spec.fps,
        "width": spec.width, "height": spec.height, "config_hash": job.config_hash, "error": error,
        "log_tail": error, "created": now_iso()})


def _summarise(run_dir: Path, results: list[dict[str, Any]]) -> None:
    """Print this sweep's rows; write every result of the run (all codecs) to summary.csv."""
    table = results_table(results)
    metric_columns = [column for column in table.columns if column not in COLUMNS]
    random = sorted(set(table.codec[table.random_weights]))
    shown = table[SUMMARY_COLUMNS + metric_columns + TIME_COLUMNS + (["random_weights"] if random else [])]
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.float_format",
                           "{:.4f}".format):
        print(shown.to_string(index=False))
    if random:
        print(f"\nWARNING: {', '.join(random)} ran with RANDOM weights: their scores are not those of the "
              "published models")
    load_results(run_dir).to_csv(run_dir / SUMMARY_FILE, index=False)
    print(f"\nresults: {run_dir} (summary: {run_dir / SUMMARY_FILE})")


def _report(run_dir: Path, anchor: str, refresh: bool) -> None:
    """The BD-rate tables and RD curves of the run (every codec in it against the anchor), written
    again when a job ran (a fully cached rerun keeps the report it has; ``make report`` redraws it)."""
    from ctc.report import REPORT_DIR, ReportError, write_report

    if not refresh and (run_dir / REPORT_DIR / "summary.md").is_file():
        print(f"report (unchanged): {run_dir / REPORT_DIR / 'summary.md'}")
        return
    try:
        write_report(run_dir, anchor=anchor)
    except ReportError as exc:
        print(f"ctc-run: no report: {exc}", file=sys.stderr)


def _write_provenance(run_dir: Path, config: DictConfig, settings: Mapping[str, Any],
                      sections: Mapping[str, Mapping[str, Any]],
                      results: Sequence[Mapping[str, Any]] = ()) -> None:
    """``<run>/provenance.json`` for this sweep and ``<run>/<codec>/provenance.json`` per codec."""
    versions: dict[str, set[str]] = {section["name"]: set() for section in sections.values()}
    for result in results:
        if result.get("codec_version") and result.get("codec") in versions:
            versions[result["codec"]].add(str(result["codec_version"]))
    codec_versions = {name: sorted(found) for name, found in versions.items()}
    choices = OmegaConf.to_container(config.hydra.runtime.choices) if "hydra" in config else {}
    anchor = sections.get("anchor", sections["test"] if settings.get("anchor") else None)
    record = collect(dict(settings), run=settings["run"], codec=sections["test"]["name"],
                     anchor=anchor["name"] if anchor else None, codec_versions=codec_versions,
                     choices=choices)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / PROVENANCE_FILE, record)
    for role, section in sections.items():
        codec_dir = run_dir / section["name"]
        codec_dir.mkdir(exist_ok=True)
        write_json_atomic(codec_dir / PROVENANCE_FILE, {**record, "role": role, "codec_config": section})
