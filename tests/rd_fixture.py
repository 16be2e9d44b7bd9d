"""A small run folder with known BD values, for the report and notebook tests.

Every curve is linear in log2(rate), which PCHIP reproduces exactly, so the BD values are known:
``cfte`` reaches the anchor's quality at half the rate (BD-rate -50 %, +2 dB PSNR at equal rate),
``x265`` needs twice the rate (+100 %) and its curves overlap the anchor's on only 20 % of the
quality range. Gaps: ``cfte`` failed at qp52 on VOXCELEB_002, ``x265`` has no qp47 on CFVQA_001,
the anchor has no results for CFVQA_002.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

ANCHOR = "vvenc"
SEQUENCES = {
    "VOXCELEB_001": "VOXCELEB",
    "VOXCELEB_002": "VOXCELEB",
    "CFVQA_001": "CFVQA",
    "CFVQA_002": "CFVQA",
}
# codec: (rate points -> kbps, rate factor: the anchor's rate for the same quality / this codec's)
CURVES = {
    "vvenc": ({"qp37": 40.0, "qp42": 20.0, "qp47": 10.0, "qp52": 5.0}, 1.0),
    "cfte": ({"qp22": 16.0, "qp32": 8.0, "qp42": 4.0, "qp52": 2.0}, 2.0),
    "x265": ({"qp32": 320.0, "qp37": 160.0, "qp42": 80.0, "qp47": 40.0}, 0.5),
}
CONTAINER_KBPS = 0.5  # what cfte's file header and length fields add to its kbps
SECONDS = {"vvenc": (10.0, 1.0), "cfte": (1.0, 4.0), "x265": (2.0, 0.5)}  # encoder, decoder per job
DIRECTIONS = {"dists": "lower_is_better", "lpips": "lower_is_better", "psnr": "higher_is_better"}
MISSING = {
    ("cfte", "VOXCELEB_002", "qp52"): "failed",
    ("x265", "CFVQA_001", "qp47"): "absent",
    ("vvenc", "CFVQA_002", None): "absent",
}


def metrics_at(kbps: float, factor: float, offset: float) -> dict[str, float]:
    """Quality of a codec at ``kbps``: a line in log2 of the anchor-equivalent rate."""
    level = math.log2(kbps * factor)
    return {
        "dists": 0.30 - 0.02 * level - offset / 100,
        "lpips": 0.40 - 0.03 * level - offset / 100,
        "psnr": 30.0 + 2.0 * level + offset,
    }


def parts(codec: str, bits: float) -> dict[str, float]:
    """A GFVC codec's bits split into its bitstream's parts; an anchor's one video stream."""
    if codec == "cfte":
        return {"header": 200, "key_frame": bits * 0.75, "features": bits * 0.25 - 200}
    return {"video": bits}


def write_run(run_dir: Path) -> Path:
    """Write the run (result.json files and provenance.json) into ``run_dir``; return it."""
    for codec, (points, factor) in CURVES.items():
        for index, (sequence, seq_class) in enumerate(SEQUENCES.items()):
            if MISSING.get((codec, sequence, None)) == "absent":
                continue
            for rate_point, kbps in points.items():
                gap = MISSING.get((codec, sequence, rate_point))
                if gap == "absent":
                    continue
                result = {
                    "status": "failed" if gap else "ok",
                    "codec": codec,
                    "role": "anchor" if codec == ANCHOR else "test",
                    "codec_version": f"{codec} 1.0",
                    "codec_provenance": {"random_weights": codec == "cfte"}
                    | ({"checkpoint": "cfte-random.pth"} if codec == "cfte" else {}),
                    "random_weights": codec == "cfte",
                    "sequence": sequence,
                    "seq_class": seq_class,
                    "rate_point": rate_point,
                    "frames": 10,
                    "fps": 25,
                    "width": 64,
                    "height": 64,
                    "bits": {"total": kbps * 400, "parts": parts(codec, kbps * 400)},
                    "encode_details": {"key_frames": 1} if codec == "cfte" else {},
                    "kbps": None if gap else kbps,
                    "enc_seconds": SECONDS[codec][0],
                    "dec_seconds": SECONDS[codec][1],
                    "commands": [],
                    "metrics": {} if gap else metrics_at(kbps, factor, offset=index),
                    "metric_directions": DIRECTIONS,
                    "config_hash": "abc123",
                    "error": "decoder crashed\nCodecError: out of memory" if gap else None,
                    "log_tail": "",
                    "created": "2026-01-01T00:00:00+00:00",
                }
                if codec == "cfte" and not gap:  # a GFVC file: its container is not in kbps
                    result |= {"file_kbps": kbps + CONTAINER_KBPS, "rate_counts": "key_frame+features"}
                folder = run_dir / codec / sequence / rate_point
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "result.json").write_text(json.dumps(result), encoding="utf-8")
    provenance = {"anchor": ANCHOR, "config": {"testset": {"name": "fixture"}}, "git": {"commit": "0123abc"}}
    (run_dir / "provenance.json").write_text(json.dumps(provenance), encoding="utf-8")
    return run_dir
