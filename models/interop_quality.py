"""``ctc-interop``: how close each translator brings model A's features to model B's, on real frames.

For every frame of the test set (default ``faces``) and every translator (``ctc/conf/translator/``),
model B's own features of the frame are compared with the translation of model A's features of the
same frame (no coding: the translator's error alone). Figures per pair: RMSE and mean absolute error
over the feature values, and the RMSE relative to the spread of B's features over the frames (1.0:
no better than always answering B's mean feature). The models' weights are found as a codec's
(``weights: auto``, ``$GFVC_CHECKPOINTS``): with random A or B weights the figure measures only the
plumbing, and the output says so; with the published checkpoints of both it is the figure the
decoder-interoperability paper reports.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctc.cli import print_rows
from ctc.conf import ConfigNotFound, available, load_section
from ctc.testset.sequences import load_test_set
from models.base import GenerativeModel
from models.gfvc_build import load_model
from models.translators import load_translator

BATCH = 4  # frames per feature-extraction call


def features_of(model: GenerativeModel, clips: Sequence[np.ndarray]) -> torch.Tensor:
    """The model's features ``(N, D)`` of every frame of ``clips`` (each ``(n, 3, H, W)`` uint8)."""
    rows = []
    with torch.inference_mode():
        for frames in clips:
            for start in range(0, len(frames), BATCH):
                chunk = torch.from_numpy(np.array(frames[start : start + BATCH], np.uint8)).float() / 255
                rows.append(model.extract_features(chunk).float().cpu())
    return torch.cat(rows)


def translation_error(translated: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """RMSE, mean absolute error, and RMSE over the spread (RMS deviation from the mean) of ``target``."""
    difference = (translated - target).double()
    rmse = difference.pow(2).mean().sqrt().item()
    spread = (target.double() - target.double().mean(0)).pow(2).mean().sqrt().item()
    return {
        "rmse": rmse,
        "mae": difference.abs().mean().item(),
        "relative_rmse": rmse / spread if spread > 0 else math.nan,
    }


def pair_quality(
    translator_name: str,
    clips: Sequence[np.ndarray],
    analyses: dict[str, tuple[bool, torch.Tensor]],
    device: str = "cpu",
) -> dict[str, Any]:
    """The figures of one translator on the frames of ``clips``; ``analyses`` keeps each model's
    (random weights?, features of the frames) by name, for the next pairs."""
    config = load_section("translator", translator_name)
    translator = load_translator(config, device=device)
    source, target = translator.source, translator.target
    for name in (source, target):
        if name not in analyses:
            model = load_model(name, load_section("model", name), "auto", device)
            analyses[name] = (bool(model.random_weights), features_of(model, clips))
    translated = translator.translate(analyses[source][1]).float().cpu()
    figures = translation_error(translated, analyses[target][1])
    random = [name for name in (source, target) if analyses[name][0]]
    if translator.random_weights:
        random.append(f"translator {translator_name}")
    return {
        "translator": translator_name,
        "source": source,
        "target": target,
        "frames": sum(map(len, clips)),
        "translator_weights": Path(translator.weights).name,
        **figures,
        "random_weights": random,
    }


def format_row(row: dict[str, Any]) -> str:
    line = (
        f"{row['source']}→{row['target']}: RMSE {row['rmse']:.4f}, MAE {row['mae']:.4f}, "
        f"relative RMSE {row['relative_rmse']:.3f} over {row['frames']} frames"
    )
    if row["random_weights"]:
        line += (
            f"  [RANDOM weights: {', '.join(row['random_weights'])}; this measures the plumbing only, "
            "not the translator's quality]"
        )
    return line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ctc-interop", description=__doc__.splitlines()[0])
    parser.add_argument(
        "translators",
        nargs="*",
        help=f"translator configs (default: all of {', '.join(available('translator'))})",
    )
    parser.add_argument("--testset", default="faces", help="test set of the frames (default faces)")
    parser.add_argument("--frames", type=int, default=8, help="first frames of each sequence (default 8)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error(f"--frames {args.frames}: expected a positive count")
    try:
        testset = load_section("testset", args.testset)
        names = args.translators or available("translator")
        for name in names:
            load_section("translator", name)
    except ConfigNotFound as exc:
        parser.error(str(exc))
    specs = load_test_set({**testset, "frames": args.frames})
    clips = [np.asarray(spec.read()) for spec in specs]
    analyses: dict[str, tuple[bool, torch.Tensor]] = {}
    rows = (pair_quality(name, clips, analyses, args.device) for name in names)
    print_rows(rows, format_row, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
