"""The end of a sweep: its own results tallied, the run's summary, provenance and report written.

Only this sweep's results count: a job's ``result.json`` is taken when it carries the job's
identity hash; an older file (another setup, or a job whose worker was lost before it started) is
reported as failed for this sweep, and overwritten unless another sweep is doing that job now.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from ctc.fingerprint import config_modules
from ctc.hashing import write_atomically
from ctc.jobs import Job
from ctc.provenance import collect, now_iso, plugin_paths
from ctc.results import COLUMNS, RESULT_FILE, ResultStatus, load_results, read_result, results_table
from ctc.store import PROVENANCE_FILE, SUMMARY_FILE, job_busy, write_json_atomic
from ctc.sweep.plan import SweepPlan

SUMMARY_COLUMNS = ["codec", "role", "seq_class", "sequence", "rate_point", "kbps"]
TIME_COLUMNS = ["enc_seconds", "dec_seconds", "status"]
PROVENANCE_DIR = "provenance"  # one file per sweep; provenance.json is the newest sweep's


def sweep_results(jobs: Sequence[Job], run_dir: Path) -> list[dict[str, Any]]:
    """The result of each job made under its identity; any other result is a failure of this sweep."""
    results = []
    for job in jobs:
        result = read_result(job.directory(run_dir))
        if result and result.get("config_hash") == job.identity_hash:
            results.append(result)
            continue
        error = (
            "no result of this sweep: the job did not run (a lost worker?)"
            if result is None
            else "no result of this sweep: the job did not run, and its folder holds a result made by "
            "another setup (stale)"
        )
        results.append(record_failure(job, error, run_dir, overwrite=result is not None))
    return results


def record_failure(job: Job, error: str, run_dir: Path, overwrite: bool = False) -> dict[str, Any]:
    """A failed result for ``job``, written to its folder unless a result is there (and ``overwrite`` is
    off) or another process is doing the job now."""
    directory = job.directory(run_dir)
    result = {
        **job.result_fields(ResultStatus.FAILED),
        "error": error,
        "log_tail": error,
        "created": now_iso(),
    }
    exists = (directory / RESULT_FILE).is_file()
    if (overwrite or not exists) and not job_busy(directory):
        directory.mkdir(parents=True, exist_ok=True)
        write_json_atomic(directory / RESULT_FILE, result)
    return result


def summarise(run_dir: Path, results: list[dict[str, Any]]) -> None:
    """Print this sweep's rows; write every result of the run (all codecs) to summary.csv."""
    table = results_table(results)
    metric_columns = [column for column in table.columns if column not in COLUMNS]
    random = sorted(set(table.codec[table.random_weights]))
    shown = table[SUMMARY_COLUMNS + metric_columns + TIME_COLUMNS + (["random_weights"] if random else [])]
    with pd.option_context(
        "display.max_rows", None, "display.width", 200, "display.float_format", "{:.4f}".format
    ):
        print(shown.to_string(index=False))
    if random:
        print(
            f"\nWARNING: {', '.join(random)} ran with RANDOM weights: their scores are not those of the "
            "published models"
        )
    summary = load_results(run_dir).to_csv(index=False)
    write_atomically(run_dir / SUMMARY_FILE, summary.encode("utf-8"))
    print(f"\nresults: {run_dir} (summary: {run_dir / SUMMARY_FILE})")


def write_provenance(
    plan: SweepPlan, config: DictConfig, results: Sequence[Mapping[str, Any]] = (), started: str | None = None
) -> Path:
    """This sweep's provenance: ``<run>/provenance/<start>-<host>-<pid>.json`` (kept per sweep),
    ``<run>/provenance.json`` (the newest sweep's) and ``<run>/<codec>/provenance.json``."""
    settings, sections = plan.settings, plan.sections
    versions: dict[str, set[str]] = {section["name"]: set() for section in sections.values()}
    for result in results:
        if result.get("codec_version") and result.get("codec") in versions:
            versions[result["codec"]].add(str(result["codec_version"]))
    choices = OmegaConf.to_container(config.hydra.runtime.choices) if "hydra" in config else {}
    anchor = sections.get("anchor", sections["test"] if settings.get("anchor") else None)
    started = started or now_iso()
    record = collect(
        dict(settings),
        run=settings["run"],
        codec=sections["test"]["name"],
        anchor=anchor["name"] if anchor else None,
        codec_versions={name: sorted(found) for name, found in versions.items()},
        codec_identities={section["name"]: plan.identities[role] for role, section in sections.items()},
        choices=choices,
        started=started,
        plugin_paths=plugin_paths(
            [
                *(module for section in sections.values() for module in config_modules(section)),
                *(settings["metrics"].get("modules") or []),
            ]
        ),
    )
    stamp = started.replace(":", "").replace("+0000", "Z").replace("+00:00", "Z")
    label = sections["test"]["name"]  # a sweep of several codec configurations writes one file each
    path = plan.run_dir / PROVENANCE_DIR / f"{stamp}-{socket.gethostname()}-{os.getpid()}-{label}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, record)
    write_json_atomic(plan.run_dir / PROVENANCE_FILE, record)
    for role, section in sections.items():
        codec_dir = plan.run_dir / section["name"]
        codec_dir.mkdir(exist_ok=True)
        write_json_atomic(codec_dir / PROVENANCE_FILE, {**record, "role": role, "codec_config": section})
    return path


def report(run_dir: Path, anchor: str, refresh: bool, page: Mapping[str, Any] | None = None) -> None:
    """The BD-rate tables and RD curves of the run (every codec in it against the anchor), written
    again when a job ran (a fully cached rerun keeps the report it has; ``make report`` redraws it);
    ``page``: the report page's settings (``report_page``)."""
    from ctc.report.cli import REPORT_DIR, ReportError, write_report

    if not refresh and (run_dir / REPORT_DIR / "summary.md").is_file():
        print(f"report (unchanged): {run_dir / REPORT_DIR / 'summary.md'}")
        return
    try:
        write_report(run_dir, anchor=anchor, page=page)
    except ReportError as exc:
        print(f"ctc-run: no report: {exc}", file=sys.stderr)


def print_failures(results: Sequence[Mapping[str, Any]], run_dir: Path) -> None:
    failures = [result for result in results if result.get("status") != ResultStatus.OK]
    print(f"\n{len(failures)} of {len(results)} jobs failed:", file=sys.stderr)
    for result in failures:
        error = (result.get("error") or "no result").splitlines()[0]
        print(
            f"  {result.get('codec')}/{result.get('sequence')}/{result.get('rate_point')}: {error}",
            file=sys.stderr,
        )
    print(f"logs: {run_dir}/<codec>/<sequence>/<rate point>/job.log", file=sys.stderr)
