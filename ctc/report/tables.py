"""The report's tables: one JVET-style summary per tested codec, as numbers and as Markdown."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ctc.report.bd import quality_label

LOWER_IS_BETTER = "lower_is_better"
# Statuses of a sequence row besides the BD ones (ctc.report.bd.STATUSES).
NO_ANCHOR, NO_TEST = "no_anchor", "no_test_results"
# Statuses of an average row: all its sequences have a value, some, none.
COMPLETE, INCOMPLETE, EMPTY = "ok", "incomplete", "no_data"
STATUS_MARKS = {
    "partial_overlap": "partial overlap",
    "no_overlap": "no overlap",
    "too_few_points": "too few points",
    "non_monotonic": "not monotonic",
    "duplicate_rates": "duplicate rates",
    "invalid_input": "invalid values",
    NO_ANCHOR: "no anchor",
    NO_TEST: "no results",
    EMPTY: "no data",
}


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
        """The codec's name (or the one label its results give, e.g. an interop codec's ``fomm→cfte``),
        flagged where any of its results came from random weights."""
        about = self.info["codecs"].get(codec, {})
        labels = about.get("labels") or []
        shown = labels[0] if len(labels) == 1 else codec
        return f"{shown} [RANDOM WEIGHTS]" if about.get("random_weights") else shown

    def rate_point_columns(self, rates: Sequence[str], details: Sequence[str] = ()) -> list[str]:
        """The columns of a table of rate points, of those the run has: which point, its ``rates``, each
        metric, the seconds and frames, then ``details``."""
        columns = [
            "codec",
            "seq_class",
            "sequence",
            "rate_point",
            *rates,
            *self.metrics,
            "enc_seconds",
            "dec_seconds",
            "frames",
            *details,
        ]
        return [c for c in columns if c in self.rate_points.columns]

    def lower_is_better(self, metric: str) -> bool:
        return self.directions.get(metric) == LOWER_IS_BETTER

    def _rows(self, codec: str) -> list[tuple[str, str, str, dict[str, dict[str, Any]], float, float]]:
        """The table rows of one tested codec: level, class, sequence, BD cells by metric, EncT, DecT."""
        bd = self.bd[self.bd["codec"] == codec]
        cells: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
        for record in bd.to_dict("records"):
            cells.setdefault((record["level"], record["seq_class"], record["sequence"]), {})[
                record["metric"]
            ] = record
        times = self.times[self.times["codec"] == codec].set_index(["level", "seq_class", "sequence"])
        return [
            (*key, by_metric, times["enc_ratio"].get(key, math.nan), times["dec_ratio"].get(key, math.nan))
            for key, by_metric in cells.items()
        ]

    def summary(self, codec: str) -> pd.DataFrame:
        """The JVET-style table of one tested codec: numbers, with a Notes column for the marks."""
        records = []
        for level, seq_class, sequence, cells, enc_ratio, dec_ratio in self._rows(codec):
            record = {"Codec": self.label(codec), "Level": level, "Class": seq_class, "Sequence": sequence}
            record |= {f"BD-rate {m} (%)": cells[m]["bd_rate"] for m in self.metrics}
            record |= {
                f"BD-quality {quality_label(m, self.lower_is_better(m))}": cells[m]["bd_quality"]
                for m in self.metrics
            }
            notes = (self._note(cells[m]) for m in self.metrics)
            records.append(
                record
                | {
                    "EncT": enc_ratio,
                    "DecT": dec_ratio,
                    "Notes": "; ".join(dict.fromkeys(n for n in notes if n)),
                }
            )
        return pd.DataFrame.from_records(records)

    @staticmethod
    def _note(row: Mapping[str, Any]) -> str:
        if row["status"] in ("ok", COMPLETE):
            return ""
        per_metric = row["status"] in ("non_monotonic", "partial_overlap", INCOMPLETE)
        return (f"{row['metric']}: " if per_metric else "") + str(row["reason"])

    def _definitions(self) -> list[str]:
        """The run's metric set and each metric's definition (the CTC's, JVET's or GFVC_Software_v2's)."""
        from ctc.metrics import MetricError, describe_metrics

        chosen = (self.info.get("provenance") or {}).get("choices", {}).get("metrics")
        lines = [f"- metric set: {chosen or 'unknown'}"]
        for metric in self.metrics:
            try:
                lines.append(f"  - {metric}: {describe_metrics([metric])[metric]['description']}")
            except MetricError:
                lines.append(f"  - {metric}: not a metric of this version of the harness")
        return lines

    def markdown(self) -> str:
        """The report as Markdown: provenance, one table per tested codec, the gaps."""
        info = self.info
        lines = [
            f"# BD-rate report: {info['run']}",
            "",
            f"- anchor: {self.label(self.anchor)}; BD method: {self.method} (log10 rate over the "
            "overlapping quality range); averages are arithmetic for BD, geometric for EncT/DecT",
            f"- test set: {info.get('testset') or 'unknown'}; "
            f"git commit: {info.get('git_commit') or 'unknown'}",
        ]
        for codec, codec_info in info["codecs"].items():
            details = [
                f"role {codec_info['role']}",
                f"version {', '.join(codec_info['versions']) or 'unknown'}",
            ]
            if codec_info["checkpoints"]:
                details.append(f"checkpoint {', '.join(codec_info['checkpoints'])}")
            if codec_info.get("container_kbps"):
                container = codec_info["container_kbps"]
                overhead = ", ".join(f"{seq} {rate:.2f}" for seq, rate in container.items())
                details.append(
                    f"kbps counts {', '.join(codec_info['rate_counts'])} (as the GFVC common "
                    f"software counts it); the file's container adds, in kbps: {overhead}"
                )
            lines.append(f"- {self.label(codec)}: {'; '.join(details)}")
        directions = ", ".join(
            f"{m} ({'lower is better: BD on 1 - ' + m if self.lower_is_better(m) else 'higher is better'})"
            for m in self.metrics
        )
        lines += [
            f"- metrics: {directions}; BD-quality > 0 means the tested codec is better",
            *self._definitions(),
            "",
        ]
        if any(c["random_weights"] for c in info["codecs"].values()):
            lines += [
                "**WARNING: results marked [RANDOM WEIGHTS] come from untrained models; their "
                "numbers say nothing about the codec.**",
                "",
            ]
        for codec in self.test_codecs:
            lines += [
                f"## {self.label(codec)} vs anchor {self.label(self.anchor)}",
                "",
                self._markdown_table(codec),
                "",
            ]
        if not self.test_codecs:
            lines += [f"No tested codec besides the anchor {self.anchor}: no BD table.", ""]
        lines += ["## Gaps", ""]
        lines += [f"- {line}" for line in self.gap_lines()] or ["- none"]
        return "\n".join(lines) + "\n"

    def _markdown_table(self, codec: str) -> str:
        header = (
            ["Class", "Sequence"]
            + [f"BD-rate {m}" for m in self.metrics]
            + [f"BD-Q {quality_label(m, self.lower_is_better(m))}" for m in self.metrics]
            + ["EncT", "DecT"]
        )
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for level, seq_class, sequence, cells, enc_ratio, dec_ratio in self._rows(codec):
            row = [
                seq_class if level != "overall" else "all",
                {"sequence": sequence, "class": "average", "overall": "overall average"}[level],
            ]
            row += [_cell(cells[m], "bd_rate", "{:+.2f}%") for m in self.metrics]
            row += [_cell(cells[m], "bd_quality", "{:+.4f}") for m in self.metrics]
            row += ["n/a" if math.isnan(ratio) else f"{ratio:.0%}" for ratio in (enc_ratio, dec_ratio)]
            lines.append("| " + " | ".join(row) + " |")
        return "\n".join(lines)

    def gap_lines(self) -> list[str]:
        lines = [
            " ".join(str(x) for x in (row.kind + ":", row.codec, row.sequence, row.rate_point) if x)
            + f": {row.detail}"
            for row in self.gaps.itertuples()
        ]
        marked = self.bd[(self.bd["level"] == "sequence") & (self.bd["status"] != "ok")]
        for (codec, sequence, status), cells in marked.groupby(["codec", "sequence", "status"], sort=False):
            lines.append(
                f"BD {STATUS_MARKS.get(status, status)}: {codec} {sequence} "
                f"({', '.join(cells['metric'])}): {'; '.join(dict.fromkeys(cells['reason']))}"
            )
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
