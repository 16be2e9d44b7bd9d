"""From a run's result rows to its report: BD-rate and BD-quality per metric per sequence (JVET CTC
layout), class and overall averages, the encoder and decoder time ratios (EncT, DecT: test/anchor,
geometric mean over rate points), the codecs' details and the gaps."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from ctc.report.bd import METHODS, MIN_OVERLAP, BDResult, bd_rate
from ctc.report.rows import (
    ReportError,
    comparable_rows,
    natural_key,
    usable_rows,
)
from ctc.report.tables import COMPLETE, EMPTY, INCOMPLETE, LOWER_IS_BETTER, NO_ANCHOR, NO_TEST, Report
from ctc.testset.sequences import SequenceError, declared_specs


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
    # in table order already: the codecs by name (_codec_info's order), each one's sequences then averages
    bd = pd.DataFrame.from_records(records, columns=columns)
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
