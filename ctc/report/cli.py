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
import math
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctc.provenance import use_plugin_paths
from ctc.report.bd import METHODS, MIN_OVERLAP, BDResult, bd_rate
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
    comparable_rows,
    natural_key,
    read_provenance,
    read_results,
    usable_rows,
)
from ctc.report.tables import COMPLETE, EMPTY, INCOMPLETE, LOWER_IS_BETTER, NO_ANCHOR, NO_TEST, Report
from ctc.testset.sequences import SequenceError, declared_specs

REPORT_DIR = "report"


def _geomean(values: pd.Series) -> float:
    values = pd.to_numeric(values, errors="coerce")
    values = values[values > 0]
    return float(np.exp(np.log(values).mean())) if len(values) else math.nan


def _testset_name(provenance: Mapping[str, Any]) -> str:
    config = provenance.get("config", provenance)
    testset = config.get("testset") if isinstance(config, Mapping) else None
    if isinstance(testset, Mapping):
        return str(testset.get("name", ""))
    return str(testset or "")


def _sequence_order(sequences: Sequence[str], testset: str) -> list[str]:
    """The test set's order from ``sequences.yaml`` where it is known, else by name."""
    try:
        declared = [spec.name for spec in declared_specs(testset)] if testset else []
    except SequenceError:
        declared = []
    known = [name for name in declared if name in set(sequences)]
    return known + sorted(set(sequences) - set(known), key=natural_key)


def _container_overhead(rows: pd.DataFrame) -> dict[str, float]:
    """Per sequence, the mean rate of what the codec's ``kbps`` leaves out (a GFVC file's container)."""
    if "file_kbps" not in rows:
        return {}
    file_kbps, kbps = (pd.to_numeric(rows[column], errors="coerce") for column in ("file_kbps", "kbps"))
    overhead = file_kbps - kbps
    means = overhead.groupby(rows["sequence"]).mean()
    return {str(sequence): round(float(value), 4) for sequence, value in means.items() if value > 0}


def _codec_info(results: pd.DataFrame, used: pd.DataFrame, anchor: str) -> dict[str, dict[str, Any]]:
    """Each codec's versions, checkpoints, ... as its rows in the tables (``used``) say, or all its
    results where none is used."""
    info = {}
    for codec, every in results.groupby("codec", sort=False):
        mine = used[used["codec"] == codec]
        rows = mine if not mine.empty else every

        def distinct(column: str, rows: pd.DataFrame = rows) -> list[str]:
            return sorted({str(v) for v in rows.get(column, pd.Series(dtype=object)).dropna()})

        info[codec] = {
            "role": "anchor" if codec == anchor else "test",
            "versions": distinct("codec_version"),
            "checkpoints": distinct("checkpoint"),
            "rate_counts": distinct("rate_counts"),
            "labels": distinct("label"),
            "container_kbps": _container_overhead(rows),
            "random_weights": bool(
                rows.get("random_weights", pd.Series(dtype=bool)).fillna(False).astype(bool).any()
            ),
        }
    return dict(sorted(info.items(), key=lambda item: (item[0] != anchor, item[0])))


def _lock_gaps(rows: pd.DataFrame, anchor: str) -> list[dict[str, str]]:
    """A note for each codec whose table rows (its own and the anchor's) were made under different lock
    files (``made_by.lock_sha256``): the packages, torch included, may differ between them."""
    if "lock" not in rows:
        return []
    gaps = []
    for codec in (c for c in dict.fromkeys(rows["codec"]) if c != anchor):
        locks = rows.loc[rows["codec"].isin([codec, anchor]), "lock"].dropna().unique()
        if len(locks) > 1:
            gaps.append(
                {
                    "kind": "different locks",
                    "codec": codec,
                    "sequence": "",
                    "rate_point": "",
                    "detail": f"its rows and anchor {anchor}'s were made under {len(locks)} lock files "
                    f"({', '.join(sorted(lock[:12] for lock in locks))}): the packages that "
                    "made them may differ; rerun the older ones to compare like with like",
                }
            )
    return gaps


def _bd_rows(
    rows: pd.DataFrame,
    anchor: str,
    codec: str,
    order: Sequence[str],
    classes: Mapping[str, str],
    metrics: Sequence[str],
    lower: set[str],
    method: str,
) -> list[dict[str, Any]]:
    records = []
    for sequence in order:
        anchor_curve = rows[(rows["codec"] == anchor) & (rows["sequence"] == sequence)]
        test_curve = rows[(rows["codec"] == codec) & (rows["sequence"] == sequence)]
        for metric in metrics:
            if test_curve.empty:
                result = BDResult(
                    math.nan,
                    math.nan,
                    math.nan,
                    math.nan,
                    NO_TEST,
                    f"{codec} has no usable result for this sequence",
                )
            elif anchor_curve.empty:
                result = BDResult(
                    math.nan,
                    math.nan,
                    math.nan,
                    math.nan,
                    NO_ANCHOR,
                    f"anchor {anchor} has no usable result for this sequence",
                )
            else:
                result = bd_rate(
                    anchor_curve["kbps"],
                    anchor_curve[metric],
                    test_curve["kbps"],
                    test_curve[metric],
                    method=method,
                    lower_is_better=metric in lower,
                )
            records.append(
                {
                    "codec": codec,
                    "level": "sequence",
                    "seq_class": classes[sequence],
                    "sequence": sequence,
                    "metric": metric,
                    **vars(result),
                    "sequences": 1,
                    "rate_sequences": int(not math.isnan(result.bd_rate)),
                    "quality_sequences": int(not math.isnan(result.bd_quality)),
                }
            )
    return records


def _averages(sequence_rows: pd.DataFrame, class_order: Sequence[str]) -> list[dict[str, Any]]:
    """Class and overall averages of the per-sequence BD values (arithmetic, as the JVET templates)."""
    if sequence_rows.empty:  # no sequence had a result: nothing to average (its gaps say why)
        return []
    records = []
    groups = [("class", c, "average", sequence_rows[sequence_rows["seq_class"] == c]) for c in class_order]
    groups.append(("overall", "", "overall average", sequence_rows))
    for level, seq_class, name, group in groups:
        for metric, cells in group.groupby("metric", sort=False):
            usable = cells[cells["bd_rate"].notna()]
            count = f"{len(usable)}/{len(cells)} sequences"
            status = COMPLETE if len(usable) == len(cells) else (INCOMPLETE if len(usable) else EMPTY)
            left_out = cells[cells["bd_rate"].isna()]["sequence"].tolist()
            reason = (
                "" if status == COMPLETE else f"BD-rate average of {count}; left out: {', '.join(left_out)}"
            )
            records.append(
                {
                    "codec": cells["codec"].iloc[0],
                    "level": level,
                    "seq_class": seq_class,
                    "sequence": name,
                    "metric": metric,
                    "bd_rate": usable["bd_rate"].mean(),
                    "bd_quality": cells["bd_quality"].mean(),
                    "overlap": usable["overlap"].mean(),
                    "rate_overlap": cells["rate_overlap"].mean(),
                    "status": status,
                    "reason": reason,
                    "sequences": len(cells),
                    "rate_sequences": len(usable),
                    "quality_sequences": int(cells["bd_quality"].notna().sum()),
                }
            )
    return records


def _time_ratios(rows: pd.DataFrame, bd: pd.DataFrame, anchor: str) -> pd.DataFrame:
    """EncT and DecT: geometric mean of the test's times over its rate points / the anchor's."""
    means = rows.groupby(["codec", "sequence"]).agg(
        enc=("enc_seconds", _geomean), dec=("dec_seconds", _geomean)
    )
    records = []
    for (codec, level, seq_class, sequence), _ in bd.groupby(
        ["codec", "level", "seq_class", "sequence"], sort=False
    ):
        if level == "sequence":
            members = [sequence]
        else:
            members = bd[
                (bd["codec"] == codec)
                & (bd["level"] == "sequence")
                & ((bd["seq_class"] == seq_class) | (level == "overall"))
            ]["sequence"].unique()
        ratios = {}
        for column in ("enc", "dec"):
            per_sequence = [
                means[column].get((codec, s), math.nan) / means[column].get((anchor, s), math.nan)
                for s in members
            ]
            ratios[f"{column}_ratio"] = _geomean(pd.Series(per_sequence, dtype=float))
        records.append(
            {"codec": codec, "level": level, "seq_class": seq_class, "sequence": sequence, **ratios}
        )
    return pd.DataFrame.from_records(
        records, columns=["codec", "level", "seq_class", "sequence", "enc_ratio", "dec_ratio"]
    )


def build_report(
    results: pd.DataFrame,
    directions: Mapping[str, str],
    anchor: str,
    *,
    metrics: Sequence[str] | None = None,
    method: str = "pchip",
    provenance: Mapping[str, Any] | None = None,
    run: str = "",
) -> Report:
    """The report of ``results`` (one row per job, as :func:`read_results` gives) against ``anchor``."""
    if method not in METHODS:
        raise ReportError(f"unknown BD method {method!r}; expected one of {', '.join(METHODS)}")
    provenance = provenance or {}
    metrics = list(metrics) if metrics else list(directions)
    unknown = [m for m in metrics if m not in results.columns]
    if unknown:
        raise ReportError(
            f"no results for metric(s) {', '.join(unknown)}; the run has {', '.join(directions)}"
        )
    rows, gaps = usable_rows(results, metrics)
    rows, unlike = comparable_rows(rows, anchor)
    gaps += unlike
    testset = _testset_name(provenance)
    order = _sequence_order(results["sequence"].dropna().unique().tolist(), testset)
    classes = (
        results.dropna(subset=["seq_class"])
        .drop_duplicates("sequence")
        .set_index("sequence")["seq_class"]
        .reindex(order)
        .fillna("unknown")
        .to_dict()
    )
    class_order = list(dict.fromkeys(classes[s] for s in order))
    order = sorted(order, key=lambda s: class_order.index(classes[s]))
    lower = {m for m in metrics if directions.get(m) == LOWER_IS_BETTER}
    codecs = _codec_info(results, rows, anchor)
    gaps += _lock_gaps(rows, anchor)
    if anchor not in codecs:
        gaps.append(
            {
                "kind": "no anchor",
                "codec": anchor,
                "sequence": "",
                "rate_point": "",
                "detail": f"the run has no result for the anchor; codecs found: {', '.join(codecs)}",
            }
        )
    records = []
    for codec in (c for c in codecs if c != anchor):
        sequence_rows = _bd_rows(rows, anchor, codec, order, classes, metrics, lower, method)
        records += sequence_rows + _averages(pd.DataFrame.from_records(sequence_rows), class_order)
    columns = [
        "codec",
        "level",
        "seq_class",
        "sequence",
        "metric",
        "bd_rate",
        "bd_quality",
        "overlap",
        "rate_overlap",
        "status",
        "reason",
        "sequences",
        "rate_sequences",
        "quality_sequences",
    ]
    bd = pd.DataFrame.from_records(records, columns=columns)
    level_rank = bd["level"].map({"sequence": 0, "class": 1, "overall": 2})
    bd = bd.assign(_rank=level_rank).sort_values(["codec", "_rank"], kind="stable").drop(columns="_rank")
    bd = bd.reset_index(drop=True)
    rate_points = rows.assign(
        _order=rows["sequence"].map({s: i for i, s in enumerate(order)}),
        _point=rows["rate_point"].map(natural_key),
    )
    rate_points = (
        rate_points.sort_values(["codec", "_order", "_point"])
        .drop(columns=["_order", "_point"])
        .reset_index(drop=True)
    )
    git = provenance.get("git")
    info = {
        "run": run,
        "anchor": anchor,
        "method": method,
        "min_overlap": MIN_OVERLAP,
        "testset": testset,
        "git_commit": git.get("commit") if isinstance(git, Mapping) else provenance.get("git_commit"),
        "codecs": codecs,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return Report(
        anchor=anchor,
        metrics=metrics,
        directions={m: directions.get(m, "") for m in metrics},
        method=method,
        bd=bd,
        times=_time_ratios(rows, bd, anchor),
        rate_points=rate_points,
        gaps=pd.DataFrame.from_records(gaps, columns=["kind", "codec", "sequence", "rate_point", "detail"]),
        info={**info, "provenance": dict(provenance)},
    )


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
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="pchip",
        help="pchip: JVET CTC template (default); cubic: VCEG-M33 polynomial fit",
    )
    parser.add_argument("--log-rate", action="store_true", help="log rate axis in the RD curves")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    add_page_arguments(parser)
    args = parser.parse_args(argv)
    try:
        write_report(
            args.run_dir,
            anchor=args.anchor,
            metrics=args.metrics,
            method=args.method,
            log_rate=args.log_rate,
            plots=not args.no_plots,
            page=settings_from_arguments(args),
        )
    except (ReportError, PageSettingsError) as error:
        print(f"ctc-report: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
