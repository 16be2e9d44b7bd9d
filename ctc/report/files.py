"""The report's files: CSV, Markdown, JSON and an Excel workbook under ``<run>/report/``."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctc.report.tables import Report


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
    parts = [c for c in report.rate_points.columns if c.startswith("bits_")]
    details = ["bits", *parts, "key_frames", "random_weights", "codec_version", "checkpoint"]
    return report.rate_point_columns(["kbps", "file_kbps"], details)


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
    header = [
        f"BD-rate report: {report.info['run']}",
        f"Anchor: {report.label(report.anchor)}",
        f"Test set: {report.info.get('testset') or 'unknown'}",
        f"BD method: {report.method}",
        "Metrics: "
        + ", ".join(f"{m} ({report.directions[m] or 'direction unknown'})" for m in report.metrics),
    ]
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
        provenance = pd.DataFrame(
            {
                "key": list(report.info),
                "value": [
                    json.dumps(v, default=str) if isinstance(v, (dict, list)) else v
                    for v in report.info.values()
                ],
            }
        )
        provenance.to_excel(writer, sheet_name="Provenance", index=False)


def _json_ready(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def write_files(report: Report, out: Path) -> str:
    """Write the report's tables into ``out``; returns the Markdown summary."""
    out.mkdir(exist_ok=True)
    report.bd.to_csv(out / "bd.csv", index=False)
    _summaries(report).to_csv(out / "summary.csv", index=False)
    report.rate_points[_rate_point_columns(report)].to_csv(out / "rate_points.csv", index=False)
    report.gaps.to_csv(out / "gaps.csv", index=False)
    markdown = report.markdown()
    (out / "summary.md").write_text(markdown, encoding="utf-8")
    document = {
        "info": report.info,
        "metrics": report.directions,
        "bd": report.bd.to_dict("records"),
        "times": report.times.to_dict("records"),
        "gaps": report.gaps.to_dict("records"),
        "rate_points": report.rate_points[_rate_point_columns(report)].to_dict("records"),
    }
    (out / "report.json").write_text(
        json.dumps(_json_ready(document), indent=2, default=str) + "\n", encoding="utf-8"
    )
    _write_workbook(report, out / "report.xlsx")
    return markdown
