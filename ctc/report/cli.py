"""The report stage: BD-rate tables and RD curves of a run, laid out like the JVET CTC templates.

For every tested codec against the anchor: BD-rate and BD-quality per metric per sequence, per
class average and overall average, the encoder and decoder time ratios (EncT, DecT: test/anchor,
geometric mean over rate points), and the rate points themselves. Written under
``<run>/report/`` as CSV, Markdown (also printed), JSON and an Excel workbook, with RD curves as
PNG and SVG. Gaps (failed jobs, missing anchor or test results, missing rate points, duplicate
rows, curves BD cannot use) are marked in the tables and listed; the report always comes out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ctc.cli import finish
from ctc.provenance import use_plugin_paths
from ctc.report.bd import add_method_argument
from ctc.report.build import build_report
from ctc.report.files import write_files
from ctc.report.page import (
    PageSettingsError,
    add_page_arguments,
    describe,
    settings_from_arguments,
    write_page,
)
from ctc.report.plots import write_rd_curves
from ctc.report.rows import (
    ReportError,
    read_provenance,
    read_results,
)
from ctc.report.tables import Report

REPORT_DIR = "report"


def load_report(
    run_dir: str | Path,
    *,
    anchor: str | None = None,
    metrics: Sequence[str] | None = None,
    method: str = "pchip",
) -> Report:
    """The report of a run folder, in memory (:func:`write_report` also writes it out).

    The anchor defaults to the one the run's provenance names, else to the codec whose results
    have the role ``anchor``. Raises :class:`ReportError` only when there is nothing to report.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"run folder {run_dir} does not exist (run `make ctc` first?)")
    results, directions = read_results(run_dir)
    if results.empty:
        raise ReportError(f"run folder {run_dir} holds no <codec>/<sequence>/<rate_point>/result.json")
    provenance = read_provenance(run_dir)
    anchor = anchor or provenance.get("anchor") or _anchor_by_role(results, run_dir)
    return build_report(
        results, directions, anchor, metrics=metrics, method=method, provenance=provenance, run=run_dir.name
    )


def plot_options(report: Report) -> dict[str, Any]:
    """The keyword arguments of :mod:`ctc.report.plots` for this report: directions and codec labels."""
    return {
        "lower_is_better": [m for m in report.metrics if report.lower_is_better(m)],
        "labels": {codec: report.label(codec) for codec in report.info["codecs"]},
    }


def write_report(
    run_dir: str | Path,
    *,
    anchor: str | None = None,
    metrics: Sequence[str] | None = None,
    method: str = "pchip",
    log_rate: bool = False,
    plots: bool = True,
    echo: bool = True,
    page: Mapping[str, Any] | None = None,
) -> Report:
    """Write a run's report under ``<run_dir>/report`` (tables, RD curves, the HTML page with its
    visual comparisons: ``page`` settings, default ``ctc/conf/html_report.yaml``); print it when ``echo``."""
    run_dir = Path(run_dir)
    if run_dir.is_dir():
        use_plugin_paths(read_provenance(run_dir))  # the run's own codec and metric modules
    report = load_report(run_dir, anchor=anchor, metrics=metrics, method=method)
    # written beside the previous report, which it replaces only once whole: a failure keeps that one
    building = run_dir / f".{REPORT_DIR}-{os.getpid()}.tmp"
    shutil.rmtree(building, ignore_errors=True)
    try:
        markdown = write_files(report, building)
        if plots:
            write_rd_curves(
                report.rate_points,
                report.anchor,
                report.metrics,
                building / "rd_curves",
                log_rate=log_rate,
                **plot_options(report),
            )
        built_page = write_page(report, run_dir, building, page)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    out = run_dir / REPORT_DIR
    _replace_folder(building, out)
    page_file = out / built_page.relative_to(building) if built_page else None
    if echo:
        print(markdown)
        gaps = report.gap_lines()
        print(f"{len(gaps)} gap(s) in {run_dir}; see {out / 'gaps.csv'}" if gaps else "no gaps")
        print(f"report written to {out}")
        if page_file:
            print(describe(page_file))
    return report


def _replace_folder(new: Path, folder: Path) -> None:
    """Move each file and folder of ``new`` into ``folder`` in place of its namesake (an earlier report's
    files that this one did not make, e.g. its page with ``--no-page``, stay), then remove ``new``."""
    folder.mkdir(parents=True, exist_ok=True)
    for entry in sorted(new.iterdir()):
        target = folder / entry.name
        old = folder / f".{entry.name}-{os.getpid()}.old"
        if target.exists():
            target.rename(old)
        entry.rename(target)
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    new.rmdir()


def _anchor_by_role(results: pd.DataFrame, run_dir: Path) -> str:
    anchors = sorted(set(results.loc[results.get("role") == "anchor", "codec"].dropna()))
    if len(anchors) != 1:
        raise ReportError(
            f"cannot tell the anchor of {run_dir}: provenance.json names none and the "
            f"results have {len(anchors)} codecs with role 'anchor' ({', '.join(anchors)}); "
            "pass --anchor"
        )
    return anchors[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ctc-report", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder, e.g. results/demo")
    parser.add_argument("--anchor", help="anchor codec (default: the run's anchor)")
    parser.add_argument("--metrics", nargs="+", help="metrics to report (default: all the run has)")
    add_method_argument(parser)
    parser.add_argument("--log-rate", action="store_true", help="log rate axis in the RD curves")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    add_page_arguments(parser)
    args = parser.parse_args(argv)
    return finish(
        "ctc-report",
        lambda: write_report(
            args.run_dir,
            anchor=args.anchor,
            metrics=args.metrics,
            method=args.method,
            log_rate=args.log_rate,
            plots=not args.no_plots,
            page=settings_from_arguments(args),
        ),
        (ReportError, PageSettingsError),
    )


if __name__ == "__main__":
    sys.exit(main())
