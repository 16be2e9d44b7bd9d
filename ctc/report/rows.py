"""Which results a report may use: a run's results read back, and the gaps found on the way.

A row is usable when its job succeeded, it is the only one of its (codec, sequence, rate point),
it was made by the codec's newest setup (the identity of its newest results), and it is like the
anchor's rows of its sequence (same frames, fps, size and source file). Failed jobs, duplicates,
stale rows, mismatched setups, missing rate points and missing metric values are gaps, listed
with their reason, never BD numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ctc.identity import identity_hash
from ctc.results import ResultStatus, iter_results, results_table
from ctc.store import PROVENANCE_FILE


class ReportError(ValueError):
    """A run folder that cannot be reported on at all (absent, empty, unknown anchor)."""


def read_results(run_dir: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """The run's results (:func:`ctc.results.results_table`, plus the codec version, checkpoint, error
    and creation time of each job) and the metrics' directions.

    An unreadable ``result.json`` becomes a failed row, so that it shows as a gap.
    """
    results = [result for _, result in iter_results(run_dir)]
    table = results_table(results)
    table["codec_version"] = [result.get("codec_version") for result in results]
    table["checkpoint"] = [(result.get("codec_provenance") or {}).get("checkpoint") for result in results]
    table["label"] = [(result.get("codec_provenance") or {}).get("label") for result in results]
    table["error"] = [result.get("error") for result in results]
    table["created"] = [result.get("created") for result in results]
    identities = [result.get("identity") or {} for result in results]
    table["codec_setup"] = [
        identity_hash(identity["codec"]) if "codec" in identity else None for identity in identities
    ]
    table["source_md5"] = [(identity.get("sequence") or {}).get("file_md5") for identity in identities]
    # the bits of each part of the bitstreams (a GFVC codec's key frames, features, base layer...)
    parts = [(result.get("bits") or {}).get("parts") or {} for result in results]
    for part in dict.fromkeys(name for names in parts for name in names):
        table[f"bits_{part}"] = [bits.get(part) for bits in parts]
    table["key_frames"] = [(result.get("encode_details") or {}).get("key_frames") for result in results]
    table["lock"] = [(result.get("made_by") or {}).get("lock_sha256") for result in results]
    configured = configured_rate_points(run_dir)
    table["configured"] = [
        str(result.get("rate_point"))
        in configured.get(str(result.get("codec")), {str(result.get("rate_point"))})
        for result in results
    ]
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


def configured_rate_points(run_dir: Path) -> dict[str, set[str]]:
    """Each codec's rate points as its newest sweep configured them (``<run>/<codec>/provenance.json``);
    a result at another rate point was left by an older configuration."""
    points = {}
    for path in run_dir.glob(f"*/{PROVENANCE_FILE}"):
        try:
            config = json.loads(path.read_text(encoding="utf-8")).get("codec_config") or {}
        except (OSError, json.JSONDecodeError):
            continue
        if config.get("rate_points"):
            points[path.parent.name] = {str(point) for point in config["rate_points"]}
    return points


def natural_key(value: object) -> tuple:
    """Sort ``qp22`` before ``qp100`` and 22 before 100."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(value)))


def usable_rows(results: pd.DataFrame, metrics: Sequence[str]) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """The usable rows (one per codec, sequence and rate point) and the gaps found on the way."""
    gaps = []
    failed = results[results["status"] != ResultStatus.OK]
    for row in failed.itertuples():
        error = getattr(row, "error", None)
        detail = str(error if isinstance(error, str) and error else "no error message").strip().splitlines()
        gaps.append(
            {
                "kind": "failed job",
                "codec": row.codec,
                "sequence": row.sequence,
                "rate_point": row.rate_point,
                "detail": detail[-1] if detail else "",
            }
        )
    rows = results[results["status"] == ResultStatus.OK]
    if "created" in rows:
        rows = rows.sort_values("created", kind="stable", na_position="first")
    key = ["codec", "sequence", "rate_point"]
    duplicated = rows[rows.duplicated(key, keep=False)]
    for (codec, sequence, rate_point), group in duplicated.groupby(key, sort=False):
        gaps.append(
            {
                "kind": "duplicate rows",
                "codec": codec,
                "sequence": sequence,
                "rate_point": rate_point,
                "detail": f"{len(group)} results for one rate point; kept the newest",
            }
        )
    rows = rows.drop_duplicates(key, keep="last")
    expected = results.groupby("codec")["rate_point"].agg(lambda points: set(points.dropna()))
    for (codec, sequence), group in results.groupby(["codec", "sequence"], sort=False):
        missing = sorted(expected[codec] - set(group["rate_point"]), key=natural_key)
        if missing:
            gaps.append(
                {
                    "kind": "missing rate points",
                    "codec": codec,
                    "sequence": sequence,
                    "rate_point": "",
                    "detail": f"no result for {', '.join(map(str, missing))}, which {codec} has elsewhere",
                }
            )
    for metric in metrics:
        for row in rows[rows[metric].isna()].itertuples():
            gaps.append(
                {
                    "kind": "missing metric",
                    "codec": row.codec,
                    "sequence": row.sequence,
                    "rate_point": row.rate_point,
                    "detail": f"no {metric} value",
                }
            )
    return rows, gaps


# What a test row must share with the anchor's rows of its sequence to be compared with them.
SETUP_COLUMNS = ("frames", "fps", "width", "height", "source_md5")


def comparable_rows(rows: pd.DataFrame, anchor: str) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """The rows made by each codec's newest setup and like the anchor's of their sequence; the others
    as gaps. ``rows`` are :func:`usable_rows`, oldest first."""
    newest = rows.groupby("codec", sort=False)["codec_setup"].last()
    stale = rows["codec_setup"].ne(rows["codec"].map(newest)) & rows["codec_setup"].notna()
    gaps = _stale_gaps(
        rows[stale],
        "made by another setup of {codec} than its newest results (weights, binaries or config changed); "
        "rerun the sweep to redo them",
    )
    rows = rows[~stale]
    dropped = ~rows["configured"].astype(bool) if "configured" in rows else pd.Series(False, index=rows.index)
    gaps += _stale_gaps(
        rows[dropped],
        "rate points no longer in {codec}'s configuration (its newest sweep's); kept on disk, "
        "left out of the tables",
    )
    rows = rows[~dropped]
    columns = [column for column in SETUP_COLUMNS if column in rows]
    anchor_rows = rows[rows["codec"] == anchor]
    anchor_setups = anchor_rows.drop_duplicates("sequence", keep="last").set_index("sequence")
    unlike = pd.Series(False, index=rows.index)
    for index, row in rows[rows["codec"] != anchor].iterrows():
        if row["sequence"] not in anchor_setups.index:
            continue
        reference = anchor_setups.loc[row["sequence"]]
        differences = [
            f"{column} {row[column]} vs the anchor's {reference[column]}"
            for column in columns
            if not _same(row[column], reference[column])
        ]
        if differences:
            unlike[index] = True
            gaps.append(
                {
                    "kind": "setup mismatch",
                    "codec": row["codec"],
                    "sequence": row["sequence"],
                    "rate_point": row["rate_point"],
                    "detail": f"not comparable with anchor {anchor}: {', '.join(differences)}",
                }
            )
    return rows[~unlike], gaps


def _stale_gaps(rows: pd.DataFrame, detail: str) -> list[dict[str, str]]:
    """One "stale results" gap per codec and sequence of ``rows``; ``detail`` may name ``{codec}``."""
    return [
        {
            "kind": "stale results",
            "codec": codec,
            "sequence": sequence,
            "rate_point": ", ".join(map(str, group["rate_point"])),
            "detail": detail.format(codec=codec),
        }
        for (codec, sequence), group in rows.groupby(["codec", "sequence"], sort=False)
    ]


def _same(value: Any, reference: Any) -> bool:
    """Equal, where a value the older results do not record (NaN, None) matches anything."""
    return pd.isna(value) or pd.isna(reference) or value == reference
