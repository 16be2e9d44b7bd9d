"""The report as one HTML page, ``<run>/report/index.html``, that opens from the file system.

It holds the summary and BD tables, the RD curves, the rate points, the gaps, the provenance and
the visual comparisons (:mod:`ctc.report.showcase`); pictures and videos lie beside it under
``rd_curves/`` and ``visuals/`` and are linked relatively, so the folder can be copied or zipped
as it is, and nothing is fetched from a network. Settings: ``ctc/conf/html_report.yaml``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ctc.conf import compose, without_hydra
from ctc.report.comparisons import BITRATE, QUALITY, ComparisonError
from ctc.report.plots import figure_name
from ctc.report.showcase import Showcase, make_showcase, panel_title, value_text
from ctc.store import job_lock

if TYPE_CHECKING:
    from ctc.report.tables import Report

PAGE_FILE = "index.html"
SETTINGS_FILE = Path(__file__).parent.parent / "conf" / "html_report.yaml"
TEMPLATE = "report.html.j2"
KINDS = {BITRATE: "similar bitrate", QUALITY: "similar quality"}


class PageSettingsError(ValueError):
    """A page settings file or override that does not fit ``ctc/conf/html_report.yaml``."""


def page_settings(path: str | Path | None = None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The page settings: ``ctc/conf/html_report.yaml`` (composed as ``ctc-run`` composes it into
    ``report_page``), then the file ``path``, then ``KEY=VALUE`` overrides."""
    base = OmegaConf.create(without_hydra(compose(config_name=SETTINGS_FILE.stem)))
    OmegaConf.set_struct(base, True)  # a misspelt key is an error, not a silently ignored setting
    try:
        layers = [OmegaConf.load(path)] if path else []
        merged = OmegaConf.merge(base, *layers, OmegaConf.from_dotlist(list(overrides)))
    except (OmegaConfBaseException, OSError) as error:
        where = f"{path} or " if path else ""
        raise PageSettingsError(
            f"page settings ({where}--page {' '.join(overrides)}): {error} "
            f"(the keys are those of {SETTINGS_FILE})"
        ) from None
    return OmegaConf.to_container(merged, resolve=True)


def add_page_arguments(parser: argparse.ArgumentParser) -> None:
    """The page's command-line options, for ``ctc-report``."""
    parser.add_argument("--no-page", action="store_true", help=f"no {PAGE_FILE}")
    parser.add_argument("--page-config", type=Path, help=f"page settings file (default {SETTINGS_FILE.name})")
    parser.add_argument(
        "--page",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="page setting overrides, e.g. comparisons.sequences=[DEMO_001] video.crf=28",
    )


def settings_from_arguments(args: argparse.Namespace) -> dict[str, Any]:
    settings = page_settings(args.page_config, args.page)
    if args.no_page:
        settings["enabled"] = False
    return settings


def _format(value: Any, fmt: str) -> str:
    return "n/a" if value is None or pd.isna(value) else fmt.format(value)


def _table(frame: pd.DataFrame, formats: Mapping[str, str]) -> str:
    """``frame`` as an HTML table, numbers formatted by the first matching column prefix in ``formats``."""
    formatters = {
        column: (lambda v, f=fmt: _format(v, f))
        for column in frame.columns
        for prefix, fmt in reversed(list(formats.items()))
        if str(column).startswith(prefix)
    }
    return frame.to_html(
        index=False, formatters=formatters, na_rep="n/a", border=0, classes="numbers", escape=True
    )


def _summary_tables(report: Report) -> list[tuple[str, str]]:
    formats = {"BD-rate": "{:+.2f}", "BD-quality": "{:+.4f}", "EncT": "{:.0%}", "DecT": "{:.0%}"}
    return [
        (
            f"{report.label(codec)} vs anchor {report.label(report.anchor)}",
            _table(report.summary(codec), formats),
        )
        for codec in report.test_codecs
    ]


def _rate_point_table(report: Report) -> str:
    points = report.rate_points[report.rate_point_columns(["kbps"])].copy()
    points["codec"] = points["codec"].map(report.label)
    formats = {"kbps": "{:.2f}", "enc_seconds": "{:.2f}", "dec_seconds": "{:.2f}", "frames": "{:.0f}"}
    formats |= {m: "{:.2f}" if value_text(m, 0.0).endswith("dB") else "{:.4f}" for m in report.metrics}
    return _table(points, formats)


def _rd_curves(report: Report, out_dir: Path) -> list[dict[str, Any]]:
    """Per metric: the class averages, then every sequence, as (title, png, svg) that exist."""
    points = report.rate_points
    classes = list(dict.fromkeys(points["seq_class"]))
    sequences = list(dict.fromkeys(points["sequence"]))
    curves = []
    for metric in report.metrics:

        def files(stems: list[tuple[str, str]], metric: str = metric) -> list[tuple[str, str, str]]:
            found = []
            for title, stem in stems:
                name = figure_name(metric, stem)
                if (out_dir / "rd_curves" / f"{name}.png").is_file():
                    found.append((title, f"rd_curves/{name}.png", f"rd_curves/{name}.svg"))
            return found

        averages = files([(f"class {c}: average", f"{c}_average") for c in classes])
        by_sequence = files([(s, s) for s in sequences])
        if averages or by_sequence:
            curves.append({"metric": metric, "averages": averages, "sequences": by_sequence})
    return curves


def _provenance(report: Report) -> dict[str, Any]:
    provenance = report.info.get("provenance") or {}
    git = provenance.get("git") or {}
    codecs = [{"name": codec, **about} for codec, about in report.info["codecs"].items()]
    return {
        "git_commit": report.info.get("git_commit") or "unknown",
        "dirty": git.get("dirty"),
        "host": provenance.get("host"),
        "python": provenance.get("python"),
        "created": provenance.get("created"),
        "command": " ".join(map(str, provenance.get("command") or [])),
        "packages": provenance.get("packages") or {},
        "codecs": codecs,
    }


def _comparisons(showcase: Showcase) -> list[dict[str, Any]]:
    """The comparisons by sequence, then kind, for the template."""
    by_sequence: dict[str, dict[str, Any]] = {}
    for item in showcase.shown:
        comparison = item.comparison
        entry = by_sequence.setdefault(
            comparison.sequence,
            {
                "sequence": comparison.sequence,
                "seq_class": comparison.seq_class,
                "kinds": {title: [] for title in KINDS.values()},
            },
        )
        reference = panel_title(comparison.reference, flag_random=False)  # the title flags it once
        entry["kinds"][KINDS[comparison.kind]].append(
            {
                "title": f"{KINDS[comparison.kind]}: {comparison.target} ({reference})",
                "panels": ", ".join(panel_title(p) for p in comparison.panels),
                "random": any(p.random_weights for p in comparison.panels),
                "item": item,
            }
        )
    return list(by_sequence.values())


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("ctc.report.cli", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def write_page(
    report: Report, run_dir: Path, out_dir: Path, settings: Mapping[str, Any] | None = None
) -> Path | None:
    """Write ``out_dir/index.html`` for ``report`` (a :class:`ctc.report.cli.Report` of ``run_dir``) with its
    visual comparisons; returns its path (None when the settings turn the page off)."""
    settings = settings or page_settings()
    if not settings["enabled"]:
        return None
    with job_lock(out_dir, f"the report page in {out_dir}"):  # two sweeps of one run may end together
        return _write_page(report, run_dir, out_dir, settings)


def _write_page(report: Report, run_dir: Path, out_dir: Path, settings: Mapping[str, Any]) -> Path:
    start = time.perf_counter()
    showcase, problem = None, ""
    if settings["comparisons"]["enabled"] and not report.rate_points.empty:
        try:
            showcase = make_showcase(report, run_dir, out_dir, settings)
        except ComparisonError as error:
            problem = str(error)
    random = [report.label(c) for c, about in report.info["codecs"].items() if about["random_weights"]]
    context = {
        "info": report.info,
        "anchor": report.label(report.anchor),
        "method": report.method,
        "metrics": [(m, "lower" if report.lower_is_better(m) else "higher") for m in report.metrics],
        "random": random,
        "summaries": _summary_tables(report),
        "rd_curves": _rd_curves(report, out_dir),
        "rate_points": _rate_point_table(report),
        "gaps": report.gap_lines(),
        "provenance": _provenance(report),
        "showcase": showcase,
        "comparisons": _comparisons(showcase) if showcase else [],
        "comparison_problem": problem,
        "comparisons_enabled": settings["comparisons"]["enabled"],
        "files": [
            name
            for name in (
                "summary.md",
                "summary.csv",
                "bd.csv",
                "rate_points.csv",
                "gaps.csv",
                "report.json",
                "report.xlsx",
            )
            if (out_dir / name).is_file()
        ],
    }
    page = out_dir / PAGE_FILE
    seconds = time.perf_counter() - start  # what the page took to make (rendering it is a few ms)
    text = _environment().get_template(TEMPLATE).render(**context, seconds=seconds)
    page.write_text(text, encoding="utf-8")
    return page


def describe(page: Path) -> str:
    """Where the page is, how large it is with its pictures and videos, and how to open it."""
    files = [page, *(page.parent / "visuals").rglob("*"), *(page.parent / "rd_curves").glob("*.png")]
    size = sum(path.stat().st_size for path in files if path.is_file())
    return f"page: {page.resolve().as_uri()} ({size / 1e6:.1f} MB with its pictures and videos)"
