"""The cross-check's BD tables, recomputed from the recomputed rates and metrics, and its report files.

The recomputed numbers go through the report's own code (:func:`ctc.report.cli.load_report`) from a
temporary run folder, so the tables are made exactly as the proposer's were; each tested codec's
table is then compared with the package's ``tables/bd.csv``, row by row.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined

from ctc.crosscheck.checks import FAIL, NOT_CHECKED, PASS, TOLERANCES, JobCheck
from ctc.package import TABLES_DIR
from ctc.report.cli import load_report
from ctc.results import RESULT_FILE
from ctc.store import PROVENANCE_FILE, job_dir, write_json_atomic

# BD values may differ only where the metrics may (within TOLERANCES): a hundredth of a percentage point
# of BD-rate is below what the JVET tables print (two decimals); BD-quality within the metric tolerance.
BD_TOLERANCES = {"bd_rate": 0.01, "bd_quality": TOLERANCES["default"]}
KEYS = ["codec", "level", "seq_class", "sequence", "metric"]


def recomputed_bd(index: Mapping[str, Any], checks: Sequence[JobCheck]) -> pd.DataFrame:
    """The BD table of the package's jobs with this machine's rates and metrics (the package's own
    numbers for the jobs not decoded here)."""
    with tempfile.TemporaryDirectory(prefix="ctc-crosscheck-run-") as folder:
        run_dir = Path(folder) / str(index["run"])
        for check in checks:
            result = dict(check.record)
            if check.recomputed.get("metrics"):
                result.update(
                    kbps=check.recomputed["kbps"],
                    bits=check.recomputed["bits"],
                    metrics=check.recomputed["metrics"],
                )
            write_json_atomic(
                job_dir(run_dir, check.codec, check.sequence, check.rate_point) / RESULT_FILE, result
            )
        write_json_atomic(
            run_dir / PROVENANCE_FILE,
            {"anchor": index["anchor"], "config": {"testset": {"name": index["testset"]}}},
        )
        report = load_report(
            run_dir,
            anchor=index["anchor"],
            metrics=list(index["metrics"]),
            method=index.get("bd_method", "pchip"),
        )
    return report.bd


def _difference(package: Any, local: Any) -> float:
    """|package - local|; 0 when both are missing, infinite when only one is."""
    package_missing, local_missing = pd.isna(package), pd.isna(local)
    if package_missing or local_missing:
        return 0.0 if package_missing and local_missing else math.inf
    return abs(float(package) - float(local))


def compare_tables(
    package_bd: pd.DataFrame, local_bd: pd.DataFrame, checks: Sequence[JobCheck], anchor: str
) -> list[dict[str, Any]]:
    """Per tested codec: the largest BD-rate and BD-quality difference and the table's verdict."""
    package_bd, local_bd = (
        table.assign(**{key: table[key].fillna("").astype(str) for key in KEYS})
        for table in (package_bd, local_bd)
    )
    merged = package_bd.merge(local_bd, on=KEYS, how="outer", suffixes=("_package", "_local"), indicator=True)
    tables = []
    for codec, rows in merged.groupby("codec", sort=False):
        largest = {
            column: max(
                (_difference(row[f"{column}_package"], row[f"{column}_local"]) for _, row in rows.iterrows()),
                default=0.0,
            )
            for column in BD_TOLERANCES
        }
        unchecked = [
            check for check in checks if check.codec in (codec, anchor) and "metrics" not in check.recomputed
        ]
        rows_differ = bool((rows["_merge"] != "both").any())
        within = all(largest[column] <= limit for column, limit in BD_TOLERANCES.items()) and not rows_differ
        verdict = PASS if within else FAIL
        if unchecked and within:
            verdict = NOT_CHECKED
        tables.append(
            {
                "codec": codec,
                "verdict": verdict,
                "rows": len(rows),
                "largest_bd_rate_difference": largest["bd_rate"],
                "largest_bd_quality_difference": largest["bd_quality"],
                "jobs_not_decoded": len(unchecked),
                "note": "rows differ between the tables" if rows_differ else "",
            }
        )
    return tables


def verdict_line(checks: Sequence[JobCheck], tables: Sequence[Mapping[str, Any]]) -> str:
    counts = {
        verdict: sum(check.verdict == verdict for check in checks) for verdict in (PASS, FAIL, NOT_CHECKED)
    }
    failed_tables = [table["codec"] for table in tables if table["verdict"] == FAIL]
    summary = (
        f"{counts[PASS]} of {len(checks)} jobs pass, {counts[FAIL]} fail, "
        f"{counts[NOT_CHECKED]} not checked; "
        + (f"BD tables differ: {', '.join(failed_tables)}" if failed_tables else "BD tables equal")
    )
    if counts[FAIL] or failed_tables:
        return f"FAIL: {summary}"
    return f"PASS: {summary}" if counts[PASS] else f"NOT CHECKED: {summary}"


def _markdown(
    index: Mapping[str, Any], checks: Sequence[JobCheck], tables: Sequence[Mapping[str, Any]], verdict: str
) -> str:
    lines = [
        f"# Cross-check of run {index['run']}",
        "",
        f"**{verdict}**",
        "",
        "## Tolerances",
        "",
        "- decoded md5: equal; bits per part and kbps: equal",
        *[f"- {name}: {value:g} per frame" for name, value in TOLERANCES.items() if name != "default"],
        f"- any other metric (float32 networks, SSIM): {TOLERANCES['default']:g} per frame",
        *[f"- BD table {column}: {value:g}" for column, value in BD_TOLERANCES.items()],
        "",
        "## Jobs",
        "",
        "| codec | sequence | rate point | verdict | reason |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {c.codec} | {c.sequence} | {c.rate_point} | {c.verdict} | {c.reason} |" for c in checks]
    lines += [
        "",
        "## BD tables",
        "",
        "| codec | verdict | largest BD-rate difference | largest BD-quality "
        "difference | jobs not decoded | note |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    lines += [
        f"| {t['codec']} | {t['verdict']} | {t['largest_bd_rate_difference']:.3g} | "
        f"{t['largest_bd_quality_difference']:.3g} | {t['jobs_not_decoded']} | {t['note']} |"
        for t in tables
    ]
    notes = sorted({note for check in checks for note in check.notes})
    if notes:
        lines += ["", "## Decoders here differ from the proposer's (the md5 decides)", ""]
        lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def _html(
    index: Mapping[str, Any], checks: Sequence[JobCheck], tables: Sequence[Mapping[str, Any]], verdict: str
) -> str:
    """The report as one page in the report page's style (``ctc/report/templates/crosscheck.html.j2``)."""
    environment = Environment(
        loader=PackageLoader("ctc.report", "templates"), autoescape=True, undefined=StrictUndefined
    )
    tolerances = {f"{name} (per frame)": value for name, value in TOLERANCES.items() if name != "default"}
    tolerances |= {"any other metric (per frame)": TOLERANCES["default"]}
    tolerances |= {f"BD table {column}": value for column, value in BD_TOLERANCES.items()}
    return environment.get_template("crosscheck.html.j2").render(
        run=index["run"],
        verdict=verdict,
        jobs=checks,
        tables=tables,
        tolerances=tolerances,
        notes=sorted({note for check in checks for note in check.notes}),
    )


def write_crosscheck(package: Path, index: Mapping[str, Any], checks: Sequence[JobCheck], out: Path) -> str:
    """Recompute the BD tables, write ``crosscheck.md``, ``.html``, ``.csv`` and ``.json`` into ``out``;
    returns the verdict line."""
    package_bd = pd.read_csv(package / TABLES_DIR / "bd.csv")
    local_bd = recomputed_bd(index, checks)
    tables = compare_tables(package_bd, local_bd, checks, str(index["anchor"]))
    verdict = verdict_line(checks, tables)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([check.row() for check in checks]).to_csv(out / "crosscheck.csv", index=False)
    local_bd.to_csv(out / "bd_recomputed.csv", index=False)
    (out / "crosscheck.md").write_text(_markdown(index, checks, tables, verdict), encoding="utf-8")
    (out / "crosscheck.html").write_text(_html(index, checks, tables, verdict), encoding="utf-8")
    document = {
        "run": index["run"],
        "verdict": verdict,
        "tolerances": {"metrics_per_frame": TOLERANCES, "bd": BD_TOLERANCES},
        "jobs": [{**check.row(), "recomputed": check.recomputed} for check in checks],
        "tables": tables,
    }
    (out / "crosscheck.json").write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    return verdict
