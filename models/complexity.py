"""Model complexity: parameters per sub-network and MACs per pixel, counted by PyTorch.

MACs are ``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2 (convolutions and matrix products;
element-wise work, sampling and OpenCV's Farneback are not counted), per pixel of a 256 x 256 frame:
* encoder: what the encoder runs per frame (feature extraction; RDAC also codes and reconstructs
  the residual, so it runs the decoder's networks too);
* decoder: generating one frame once the key frame's work is done (what our decoder runs per frame;
  HDAC includes its base-layer encoder, RDAC the residual warp and synthesis; the conventional base
  layer's and the rANS coder's own work is not counted);
* key frame: the decoder's work done once per key frame (its features and encoding);
* a model's own decoder cases (MRDAC: one inter frame from 2, 3 and 4 references).
The common software reruns the key-frame part of the generator for every frame; its per-frame
decoder cost is at most decoder + key frame. Counts do not depend on the weights (random ones are used).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from ctc.conf import ConfigNotFound, load_section
from models.registry import available_models, create_model


def count_macs(fn: Callable[..., Any], *args: Any) -> int:
    """Multiply-accumulates of one call of ``fn`` as PyTorch's flop counter sees them."""
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops() // 2


def parameter_counts(networks: Mapping[str, torch.nn.Module]) -> dict[str, int]:
    """Parameters of each sub-network, and of each of its direct children as ``network.child``."""
    counts = {}
    for name, module in networks.items():
        counts[name] = sum(p.numel() for p in module.parameters())
        for child_name, child in module.named_children():
            size = sum(p.numel() for p in child.parameters())
            if size:
                counts[f"{name}.{child_name}"] = size
    return counts


def model_complexity(name: str, config: Mapping[str, Any] | None = None, size: int = 256) -> dict[str, Any]:
    """Parameter counts (of its ``networks``, when it has torch sub-networks) and MACs per pixel of model
    ``name`` at ``size`` x ``size``."""
    model = create_model(name, config, weights="random")
    frame = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    features = model.extract_features(frame)
    reference = model.prepare_reference(frame)
    pixels = size * size
    macs = {
        "encoder": count_macs(model.encoder_pass, frame) / pixels,
        "decoder": count_macs(model.decoder_pass, frame, reference, features, frame) / pixels,
        "key_frame": count_macs(model.prepare_reference, frame) / pixels,
    }
    cases = getattr(model, "complexity_cases", None)  # more decoder cases (MRDAC: per number of references)
    for label, fn in (cases(frame, reference, features) if cases else {}).items():
        macs[label] = count_macs(fn) / pixels
    return {
        "model": name,
        "frame_size": [size, size],
        "parameters": parameter_counts(getattr(model, "networks", {})),
        "macs_per_pixel": macs,
    }


def format_complexity(result: Mapping[str, Any]) -> str:
    lines = [f"{result['model']}: parameters"]
    lines += [
        f"  {'  ' * key.count('.')}{key:<40} {count:>14,}" for key, count in result["parameters"].items()
    ]
    h, w = result["frame_size"]
    lines.append(f"{result['model']}: kMAC per pixel at {w}x{h}")
    lines += [f"  {part:<40} {macs / 1e3:>14,.2f}" for part, macs in result["macs_per_pixel"].items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ctc-complexity", description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*",
                        help=f"model configs (default: all of {', '.join(available_models())})")
    parser.add_argument("--config-dir", action="append", default=[],
                        help="a folder with model/<name>.yaml of your own (as ctc-run's --config-dir)")
    parser.add_argument("--size", type=int, default=256, help="frame width and height (default 256)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    try:
        configs = {name: load_section("model", name, config_dirs=args.config_dir)
                   for name in args.models or available_models()}
    except ConfigNotFound as exc:
        parser.error(str(exc))
    results = []
    for name, config in configs.items():
        results.append(model_complexity(name, config, size=args.size))
        print(format_complexity(results[-1]), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
