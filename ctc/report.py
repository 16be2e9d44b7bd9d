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
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctc.bd import METHODS, MIN_OVERLAP, BDResult, bd_rate, quality_label
from ctc.plots import write_rd_curves
from ctc.sequences import SequenceError, declared_specs
from ctc.store import PROVENANCE_FILE, RESULT_FILE, read_result, results_table

REPORT_DIR = "report"
LOWER_IS_BETTER = "lower_is_better"
# Statuses of a sequence row besides the BD ones (ctc.bd.STATUSES).
NO_ANCHOR, NO_TEST = "no_anchor", "no_test_results"
# Statuses of an average row: all its sequences have a value, some, none.
COMPLETE, INCOMPLETE, EMPTY = "ok", "incomplete", "no_data"
STATUS_MARKS = {"partial_overlap": "partial overlap", "no_overlap": "no overlap",
                "too_few_points": "too few points", "non_monotonic": "not monotonic",
                "duplicate_rates": "duplicate rates", "invalid_input": "invalid values",
                NO_ANCHOR: "no anchor", NO_TEST: "no results", EMPTY: "no data"}


class ReportError(ValueError):
    """A run folder that cannot be reported on at all (absent, empty, unknown anchor)."""


def read_results(run_dir: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """The run's results (:func:`ctc.store.results_table`, plus the codec version, checkpoint, error
    and creation time of each job) and the metrics' directions.

    An unreadable ``result.json`` becomes a failed row, so that it shows as a gap.
    """
    results = []
    for path in sorted(run_dir.glob(f"*/*/*/{RESULT_FILE}")):
        result = read_result(path.parent)
        if result is None:
            codec, sequence, rate_point = path.parent.relative_to(run_dir).parts
            result = {"codec": codec, "sequence": sequence, "rate_point": rate_point, "status": "failed",
                      "error": f"{path} is not readable JSON"}
        results.append(result)
    table = results_table(results)
    table["codec_version"] = [result.get("codec_version") for result in results]
    table["checkpoint"] = [(result.get("codec_provenance") or {}).get("checkpoint") for result in results]
    table["error"] = [result.get("error") for result in results]
    table["created"] = [result.get("created") for result in results]
    directions: dict[str, str] = {}
    for result in results:
        directions.update(result.get("metric_directions") or {})
    return table, directions


def read_provenance(run_dir: Path) -> dict[str, Any]:
    path = run_dir / PROVENANCE_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ReportError(f"{path} is not valid JSON: {error}") from error


def _natural_key(value: object) -> tuple:
    """Sort ``qp22`` before ``qp100`` and 22 before 100."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(value)))


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
    return known + sorted(set(sequences) - set(known), key=_natural_key)


@dataclass
class Report:
    """Everything a report holds, as tables; :func:`write_report` writes it out."""

    anchor: str
    metrics: list[str]
    directions: dict[str, str]
    method: str
    bd: pd.DataFrame  # one row per codec, table row (sequence, class average, overall) and metric
    times: pd.DataFrame  # one row per codec and table row: EncT, DecT
    rate_points: pd.DataFrame  # the usable rate points of every codec, anchor included
    gaps: pd.DataFrame  # kind, codec, sequence, rate_point, detail
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def test_codecs(self) -> list[str]:
        return list(dict.fromkeys(self.bd["codec"]))

    def label(self, codec: str) -> str:
        """The codec's name, flagged where any of its results came from random weights."""
        random = self.info["codecs"].get(codec, {}).get("random_weights")
        return f"{codec} [RANDOM WEIGHTS]" if random else codec

    def lower_is_better(self, metric: str) -> bool:
        return self.directions.get(metric) == LOWER_IS_BETTER

    def _rows(self, codec: str) -> list[tuple[str, str, str, dict[str, dict[str, Any]], float, float]]:
        """The table rows of one tested codec: level, class, sequence, BD cells by metric, EncT, DecT."""
        bd = self.bd[self.bd["codec"] == codec]
        cells: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
        for record in bd.to_dict("records"):
            cells.setdefault((record["level"], record["seq_class"], record["sequence"]), {})[
                record["metric"]] = record
        times = self.times[self.times["codec"] == codec].set_index(["level", "seq_class", "sequence"])
        return [(*key, by_metric, times["enc_ratio"].get(key, math.nan),
                 times["dec_ratio"].get(key, math.nan)) for key, by_metric in cells.items()]

    def summary(self, codec: str) -> pd.DataFrame:
        """The JVET-style table of one tested codec: numbers, with a Notes column for the marks."""
        records = []
        for level, seq_class, sequence, cells, enc_ratio, dec_ratio in self._rows(codec):
            record = {"Codec": self.label(codec), "Level": level, "Class": seq_class, "Sequence": sequence}
            record |= {f"BD-rate {m} (%)": cells[m]["bd_rate"] for m in self.metrics}
            record |= {f"BD-quality {quality_label(m, self.lower_is_better(m))}": cells[m]["bd_quality"]
                       for m in self.metrics}
            notes = (self._note(cells[m]) for m in self.metrics)
            records.append(record | {"EncT": enc_ratio, "DecT": dec_ratio,
                                     "Notes": "; ".join(dict.fromkeys(n for n in notes if n))})
        return pd.DataFrame.from_records(records)

    @staticmethod
    def _note(row: Mapping[str, Any]) -> str:
        if row["status"] in ("ok", COMPLETE):
            return ""
        per_metric = row["status"] in ("non_monotonic", "partial_overlap", INCOMPLETE)
        return (f"{row['metric']}: " if per_metric else "") + str(row["reason"])

    def markdown(self) -> str:
        """The report as Markdown: provenance, one table per tested codec, the gaps."""
        info = self.info
        lines = [f"# BD-rate report: {info['run']}", "",
                 f"- anchor: {self.label(self.anchor)}; BD method: {self.method} (log10 rate over the "
                 "overlapping quality range); averages are arithmetic for BD, geometric for EncT/DecT",
                 f"- test set: {info.get('testset') or 'unknown'}; "
                 f"git commit: {info.get('git_commit') or 'unknown'}"]
        for codec, codec_info in info["codecs"].items():
            details = [f"role {codec_info['role']}",
                       f"version {', '.join(codec_info['versions']) or 'unknown'}"]
            if codec_info["checkpoints"]:
                details.append(f"checkpoint {', '.join(codec_info['checkpoints'])}")
            lines.append(f"- {self.label(codec)}: {'; '.join(details)}")
        directions = ", ".join(
            f"{m} ({'lower is better: BD on 1 - ' + m if self.lower_is_better(m) else 'higher is better'})"
            for m in self.metrics)
        lines += [f"- metrics: {directions}; BD-quality > 0 means the tested codec is better", ""]
        if any(c["random_weights"] for c in info["codecs"].values()):
            lines += ["**WARNING: results marked [RANDOM WEIGHTS] come from untrained models; their "
                      "numbers say nothing about the codec.**", ""]
        for codec in self.test_codecs:
            lines += [f"## {self.label(codec)} vs anchor {self.label(self.anchor)}", "",
                      self._markdown_table(codec), ""]
        if not self.test_codecs:
            lines += [f"No tested codec besides the anchor {self.anchor}: no BD table.", ""]
        lines += ["## Gaps", ""]
        lines += [f"- {line}" for line in self.gap_lines()] or ["- none"]
        return "\n".join(lines) + "\n"

    def _markdown_table(self, codec: str) -> str:
        header = (["Class", "Sequence"] + [f"BD-rate {m}" for m in self.metrics]
                  + [f"BD-Q {quality_label(m, self.lower_is_better(m))}" for m in self.metrics]
                  + ["EncT", "DecT"])
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for level, seq_class, sequence, cells, enc_ratio, dec_ratio in self._rows(codec):
            row = [seq_class if level != "overall" else "all",
                   {"sequence": sequence, "class": "average", "overall": "overall average"}[level]]
            row += [_cell(cells[m], "bd_rate", "{:+.2f}%") for m in self.metrics]
            row += [_cell(cells[m], "bd_quality", "{:+.4f}") for m in self.metrics]
            row += ["n/a" if math.isnan(ratio) else f"{ratio:.0%}" for ratio in (enc_ratio, dec_ratio)]
            lines.append("| " + " | ".join(row) + " |")
        return "\n".join(lines)

    def gap_lines(self) -> list[str]:
        lines = [" ".join(str(x) for x in (row.kind + ":", row.codec, row.sequence, row.rate_point) if x)
                 + f": {row.detail}" for row in self.gaps.itertuples()]
        marked = self.bd[(self.bd["level"] == "sequence") & (self.bd["status"] != "ok")]
        for (codec, sequence, status), cells in marked.groupby(["codec", "sequence", "status"], sort=False):
            lines.append(f"BD {STATUS_MARKS.get(status, status)}: {codec} {sequence} "
                         f"({', '.join(cells['metric'])}): {'; '.join(dict.fromkeys(cells['reason']))}")
        return lines


def _cell(result: Mapping[str, Any], value: str, fmt: str) -> str:
    """A BD number with its mark: partial overlap, an incomplete average, or why it is missing."""
    number, status = result[value], result["status"]
    text = "n/a" if pd.isna(number) else fmt.format(number)
    if result["level"] != "sequence":
        count = result["rate_sequences" if value == "bd_rate" else "quality_sequences"]
        return text if count == result["sequences"] else f"{text} [{count}/{result['sequences']} sequences]"
    if value == "bd_quality" and pd.isna(number) and result["rate_overlap"] == 0:
        return f"{text} [no rate overlap]"
    if value == "bd_rate" and status == "partial_overlap":
        return f"{text} [overlap {result['overlap']:.0%}]"
    if pd.isna(number) and status in STATUS_MARKS:
        return f"{text} [{STATUS_MARKS[status]}]"
    return text


def _codec_info(results: pd.DataFrame, anchor: str) -> dict[str, dict[str, Any]]:
    info = {}
    for codec, rows in results.groupby("codec", sort=False):
        def distinct(column: str, rows: pd.DataFrame = rows) -> list[str]:
            return sorted({str(v) for v in rows.get(column, pd.Series(dtype=object)).dropna()})

        info[codec] = {"role": "anchor" if codec == anchor else "test", "versions": distinct("codec_version"),
                       "checkpoints": distinct("checkpoint"),
                       "random_weights": bool(rows.get("random_weights", pd.Series(dtype=bool))
                                              .fillna(False).astype(bool).any())}
    return dict(sorted(info.items(), key=lambda item: (item[0] != anchor, item[0])))


def _clean_rows(results: pd.DataFrame, metrics: Sequence[str]) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """The usable rows (one per codec, sequence and rate point) and the gaps found on the way."""
    gaps = []
    failed = results[results["status"] != "ok"]
    for row in failed.itertuples():
        detail = str(getattr(row, "error", "") or "no error message").strip().splitlines()
        gaps.append({"kind": "failed job", "codec": row.codec, "sequence": row.sequence,
                     "rate_point": row.rate_point, "detail": detail[-1] if detail else ""})
    rows = results[results["status"] == "ok"]
    if "created" in rows:
        rows = rows.sort_values("created", kind="stable", na_position="first")
    key = ["codec", "sequence", "rate_point"]
    duplicated = rows[rows.duplicated(key, keep=False)]
    for (codec, sequence, rate_point), group in duplicated.groupby(key, sort=False):
        gaps.append({"kind": "duplicate rows", "codec": codec, "sequence": sequence, "rate_point": rate_point,
                     "detail": f"{len(group)} results for one rate point; kept the newest"})
    rows = rows.drop_duplicates(key, keep="last")
    expected = results.groupby("codec")["rate_point"].agg(lambda points: set(points.dropna()))
    for (codec, sequence), group in results.groupby(["codec", "sequence"], sort=False):
        missing = sorted(expected[codec] - set(group["rate_point"]), key=_natural_key)
        if missing:
            gaps.append({"kind": "missing rate points", "codec": codec, "sequence": sequence,
                         "rate_point": "",
                         "detail": f"no result for {', '.join(map(str, missing))}, "
                                   f"which {codec} has elsewhere"})
    for metric in metrics:
        for row in rows[rows[metric].isna()].itertuples():
            gaps.append({"kind": "missing metric", "codec": row.codec, "sequence": row.sequence,
                         "rate_point": row.rate_point, "detail": f"no {metric} value"})
    return rows, gaps


def _bd_rows(rows: pd.DataFrame, anchor: str, codec: str, order: Sequence[str], classes: Mapping[str, str],
             metrics: Sequence[str], lower: set[str], method: str) -> list[dict[str, Any]]:
    records = []
    for sequence in order:
        anchor_curve = rows[(rows["codec"] == anchor) & (rows["sequence"] == sequence)]
        test_curve = rows[(rows["codec"] == codec) & (rows["sequence"] == sequence)]
        for metric in metrics:
            if test_curve.empty:
                result = BDResult(math.nan, math.nan, math.nan, math.nan, NO_TEST,
                                  f"{codec} has no usable result for this sequence")
            elif anchor_curve.empty:
                result = BDResult(math.nan, math.nan, math.nan, math.nan, NO_ANCHOR,
                                  f"anchor {anchor} has no usable result for this sequence")
            else:
                result = bd_rate(anchor_curve["kbps"], anchor_curve[metric], test_curve["kbps"],
                                 test_curve[metric], method=method, lower_is_better=metric in lower)
            records.append({"codec": codec, "level": "sequence", "seq_class": classes[sequence],
                            "sequence": sequence, "metric": metric, **vars(result), "sequences": 1,
                            "rate_sequences": int(not math.isnan(result.bd_rate)),
                            "quality_sequences": int(not math.isnan(result.bd_quality))})
    return records


def _averages(sequence_rows: pd.DataFrame, class_order: Sequence[str]) -> list[dict[str, Any]]:
    """Class and overall averages of the per-sequence BD values (arithmetic, as the JVET templates)."""
    records = []
    groups = [("class", c, "average", sequence_rows[sequence_rows["seq_class"] == c]) for c in class_order]
    groups.append(("overall", "", "overall average", sequence_rows))
    for level, seq_class, name, group in groups:
        for metric, cells in group.groupby("metric", sort=False):
            usable = cells[cells["bd_rate"].notna()]
            count = f"{len(usable)}/{len(cells)} sequences"
            status = COMPLETE if len(usable) == len(cells) else (INCOMPLETE if len(usable) else EMPTY)
            left_out = cells[cells["bd_rate"].isna()]["sequence"].tolist()
            reason = ("" if status == COMPLETE
                      else f"BD-rate average of {count}; left out: {', '.join(left_out)}")
            records.append({"codec": cells["codec"].iloc[0], "level": level, "seq_class": seq_class,
                            "sequence": name, "metric": metric, "bd_rate": usable["bd_rate"].mean(),
                            "bd_quality": cells["bd_quality"].mean(), "overlap": usable["overlap"].mean(),
                            "rate_overlap": cells["rate_overlap"].mean(), "status": status, "reason": reason,
                            "sequences": len(cells), "rate_sequences": len(usable),
                            "quality_sequences": int(cells["bd_quality"].notna().sum())})
    return records


def _time_ratios(rows: pd.DataFrame, bd: pd.DataFrame, anchor: str) -> pd.DataFrame:
    """EncT and DecT: geometric mean of the test's times over its rate points / the anchor's."""
    means = rows.groupby(["codec", "sequence"]).agg(enc=("enc_seconds", _geomean),
                                                    dec=("dec_seconds", _geomean))
    records = []
    for (codec, level, seq_class, sequence), _ in bd.groupby(["codec", "level", "seq_class", "sequence"],
                                                               sort=False):
        if level == "sequence":
            members = [sequence]
        else:
            members = bd[(bd["codec"] == codec) & (bd["level"] == "sequence")
                         & ((bd["seq_class"] == seq_class) | (level == "overall"))]["sequence"].unique()
        ratios = {}
        for column in ("enc", "dec"):
            per_sequence = [means[column].get((codec, s), math.nan) / means[column].get((anchor, s), math.nan)
                            for s in members]
            ratios[f"{column}_ratio"] = _geomean(pd.Series(per_sequence, dtype=float))
        records.append({"codec": codec, "level": level, "seq_class": seq_class, "sequence": sequence,
                        **ratios})
    return pd.DataFrame.from_records(records, columns=["codec", "level", "seq_class", "sequence",
                                                       "enc_ratio", "dec_ratio"])


def build_report(results: pd.DataFrame, directions: Mapping[str, str], anchor: str, *,
                 metrics: Sequence[str] | None = None, method: str = "pchip",
                 provenance: Mapping[str, Any] | None = None, run: str = "") -> Report:
    """The report of ``results`` (one row per job, as :func:`read_results` gives) against ``anchor``."""
    if method not in METHODS:
        raise ReportError(f"unknown BD method {method!r}; expected one of {', '.join(METHODS)}")
    provenance = provenance or {}
    metrics = list(metrics) if metrics else list(directions)
    unknown = [m for m in metrics if m not in results.columns]
    if unknown:
        raise ReportError(f"no results for metric(s) {', '.join(unknown)}; "
                          f"the run has {', '.join(directions)}")
    rows, gaps = _clean_rows(results, metrics)
    testset = _testset_name(provenance)
    order = _sequence_order(results["sequence"].dropna().unique().tolist(), testset)
    classes = (results.dropna(subset=["seq_class"]).drop_duplicates("sequence")
               .set_index("sequence")["seq_class"].reindex(order).fillna("unknown").to_dict())
    class_order = list(dict.fromkeys(classes[s] for s in order))
    order = sorted(order, key=lambda s: class_order.index(classes[s]))
    lower = {m for m in metrics if directions.get(m) == LOWER_IS_BETTER}
    codecs = _codec_info(results, anchor)
    if anchor not in codecs:
        gaps.append({"kind": "no anchor", "codec": anchor, "sequence": "", "rate_point": "",
                     "detail": f"the run has no result for the anchor; codecs found: {', '.join(codecs)}"})
    records = []
    for codec in (c for c in codecs if c != anchor):
        sequence_rows = _bd_rows(rows, anchor, codec, order, classes, metrics, lower, method)
        records += sequence_rows + _averages(pd.DataFrame.from_records(sequence_rows), class_order)
    columns = ["codec", "level", "seq_class", "sequence", "metric", "bd_rate", "bd_quality", "overlap",
               "rate_overlap", "status", "reason", "sequences", "rate_sequences", "quality_sequences"]
    bd = pd.DataFrame.from_records(records, columns=columns)
    level_rank = bd["level"].map({"sequence": 0, "class": 1, "overall": 2})
    bd = bd.assign(_rank=level_rank).sort_values(["codec", "_rank"], kind="stable").drop(columns="_rank")
    bd = bd.reset_index(drop=True)
    rate_points = rows.assign(_order=rows["sequence"].map({s: i for i, s in enumerate(order)}),
                              _point=rows["rate_point"].map(_natural_key))
    rate_points = (rate_points.sort_values(["codec", "_order", "_point"]).drop(columns=["_order", "_point"])
                   .reset_index(drop=True))
    git = provenance.get("git")
    info = {"run": run, "anchor": anchor, "method": method, "min_overlap": MIN_OVERLAP, "testset": testset,
            "git_commit": git.get("commit") if isinstance(git, Mapping) else provenance.get("git_commit"),
            "codecs": codecs, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return Report(anchor=anchor, metrics=metrics, directions={m: directions.get(m, "") for m in metrics},
                  method=method, bd=bd, times=_time_ratios(rows, bd, anchor), rate_points=rate_points,
                  gaps=pd.DataFrame.from_records(gaps, columns=["kind", "codec", "sequence", "rate_point",
                                                                "detail"]),
                  info={**info, "provenance": dict(provenance)})


def _sheet_name(text: str, taken: set[str]) -> str:
    """An Excel sheet name: at most 31 characters, none of []:*?/\\, unique in the workbook."""
    name = re.sub(r"[\[\]:*?/\\]", "_", text)[:31]
    suffix = 2
    while name in taken:
        name = f"{name[:28]}~{suffix}"
        suffix += 1
    taken.add(name)
    return name


def _rate_point_columns(report: Report) -> list[str]:
    columns = ["codec", "seq_class", "sequence", "rate_point", "kbps", *report.metrics, "enc_seconds",
               "dec_seconds", "frames", "bits", "random_weights", "codec_version", "checkpoint"]
    return [c for c in columns if c in report.rate_points.columns]


# Excel number formats of the summary's columns, by the start of their title (as the JVET templates show).
SUMMARY_FORMATS = {"BD-rate": '0.00"%"', "BD-quality": "0.0000", "EncT": "0%", "DecT": "0%"}


def _format_summary_sheet(sheet: Any, summary: pd.DataFrame, first_row: int) -> None:
    """Number formats and column widths for the table written at ``first_row`` (1-based)."""
    from openpyxl.utils import get_column_letter

    for index, title in enumerate(summary.columns, start=1):
        letter = get_column_letter(index)
        width = max([len(str(title))] + [len(str(v)) for v in summary[title] if isinstance(v, str)])
        sheet.column_dimensions[letter].width = min(width, 60) + 2
        number_format = next((f for prefix, f in SUMMARY_FORMATS.items() if title.startswith(prefix)), None)
        if number_format:
            for row in range(first_row, first_row + len(summary)):
                sheet[f"{letter}{row}"].number_format = number_format


def _summaries(report: Report) -> pd.DataFrame:
    """The summary tables of all tested codecs, one under the other."""
    tables = [report.summary(codec) for codec in report.test_codecs]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["Codec"])


def _write_workbook(report: Report, path: Path) -> None:
    summary = _summaries(report)
    header = [f"BD-rate report: {report.info['run']}", f"Anchor: {report.label(report.anchor)}",
              f"Test set: {report.info.get('testset') or 'unknown'}", f"BD method: {report.method}",
              "Metrics: " + ", ".join(f"{m} ({report.directions[m] or 'direction unknown'})"
                                      for m in report.metrics)]
    if any(c["random_weights"] for c in report.info["codecs"].values()):
        header.append("WARNING: codecs marked [RANDOM WEIGHTS] ran with untrained weights")
    taken = {"Summary", "BD details", "Gaps", "Provenance"}
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        pd.DataFrame({"": header}).to_excel(writer, sheet_name="Summary", index=False, header=False)
        summary.to_excel(writer, sheet_name="Summary", index=False, startrow=len(header) + 1)
        _format_summary_sheet(writer.sheets["Summary"], summary, first_row=len(header) + 3)
        for codec in report.info["codecs"]:
            points = report.rate_points[report.rate_points["codec"] == codec][_rate_point_columns(report)]
            points.to_excel(writer, sheet_name=_sheet_name(f"{codec} rate points", taken), index=False)
        report.bd.to_excel(writer, sheet_name="BD details", index=False)
        report.gaps.to_excel(writer, sheet_name="Gaps", index=False)
        provenance = pd.DataFrame({"key": list(report.info), "value": [
            json.dumps(v, default=str) if isinstance(v, (dict, list)) else v for v in report.info.values()]})
        provenance.to_excel(writer, sheet_name="Provenance", index=False)


def _json_ready(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def load_report(run_dir: str | Path, *, anchor: str | None = None, metrics: Sequence[str] | None = None,
                method: str = "pchip") -> Report:
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
    return build_report(results, directions, anchor, metrics=metrics, method=method, provenance=provenance,
                        run=run_dir.name)


def plot_options(report: Report) -> dict[str, Any]:
    """The keyword arguments of :mod:`ctc.plots` for this report: directions and codec labels."""
    return {"lower_is_better": [m for m in report.metrics if report.lower_is_better(m)],
            "labels": {codec: report.label(codec) for codec in report.info["codecs"]}}


def write_report(run_dir: str | Path, *, anchor: str | None = None, metrics: Sequence[str] | None = None,
                 method: str = "pchip", log_rate: bool = False, plots: bool = True,
                 echo: bool = True) -> Report:
    """Write a run's report under ``<run_dir>/report`` (tables, RD curves); print it when ``echo``."""
    run_dir = Path(run_dir)
    report = load_report(run_dir, anchor=anchor, metrics=metrics, method=method)
    out = run_dir / REPORT_DIR
    out.mkdir(exist_ok=True)
    report.bd.to_csv(out / "bd.csv", index=False)
    _summaries(report).to_csv(out / "summary.csv", index=False)
    report.rate_points[_rate_point_columns(report)].to_csv(out / "rate_points.csv", index=False)
    report.gaps.to_csv(out / "gaps.csv", index=False)
    markdown = report.markdown()
    (out / "summary.md").write_text(markdown, encoding="utf-8")
    document = {"info": report.info, "metrics": report.directions, "bd": report.bd.to_dict("records"),
                "times": report.times.to_dict("records"), "gaps": report.gaps.to_dict("records"),
                "rate_points": report.rate_points[_rate_point_columns(report)].to_dict("records")}
    (out / "report.json").write_text(json.dumps(_json_ready(document), indent=2, default=str) + "\n",
                                     encoding="utf-8")
    _write_workbook(report, out / "report.xlsx")
    if plots:
        write_rd_curves(report.rate_points, report.anchor, report.metrics, out / "rd_curves",
                        log_rate=log_rate, **plot_options(report))
    if echo:
        print(markdown)
        gaps = report.gap_lines()
        print(f"{len(gaps)} gap(s) in {run_dir}; see {out / 'gaps.csv'}" if gaps else "no gaps")
        print(f"report written to {out}")
    return report


def _anchor_by_role(results: pd.DataFrame, run_dir: Path) -> str:
    anchors = sorted(set(results.loc[results.get("role") == "anchor", "codec"].dropna()))
    if len(anchors) != 1:
        raise ReportError(f"cannot tell the anchor of {run_dir}: provenance.json names none and the "
                          f"results have {len(anchors)} codecs with role 'anchor' ({', '.join(anchors)}); "
                          "pass --anchor")
    return anchors[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ctc-report", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder, e.g. results/demo")
    parser.add_argument("--anchor", help="anchor codec (default: the run's anchor)")
    parser.add_argument("--metrics", nargs="+", help="metrics to report (default: all the run has)")
    parser.add_argument("--method", choices=METHODS, default="pchip",
                        help="pchip: JVET CTC template (default); cubic: VCEG-M33 polynomial fit")
    parser.add_argument("--log-rate", action="store_true", help="log rate axis in the RD curves")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    args = parser.parse_args(argv)
    try:
        write_report(args.run_dir, anchor=args.anchor, metrics=args.metrics, method=args.method,
                     log_rate=args.log_rate, plots=not args.no_plots)
    except ReportError as error:
        print(f"ctc-report: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
