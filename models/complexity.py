"""Model complexity: parameters per sub-network and MACs per pixel, counted by PyTorch.

MACs are ``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2: convolutions and matrix products as
PyTorch counts them, and what it does not count but the networks run (:data:`SAMPLING_OPS`): sampling
(``grid_sample``: 4 MACs per output value bilinear, 8 trilinear, 16 bicubic), interpolation (bilinear 4,
trilinear 8, bicubic 16, nearest 0), pooling (one per window element; adaptive average pooling one per
input value) and normalisation (batch norm 2 per value, group and layer norm 4). Not counted: element-wise
activations and arithmetic, OpenCV's Farneback, the entropy coders and the conventional codecs. Per pixel
of a 256 x 256 frame:
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
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from ctc.cli import print_rows
from ctc.conf import ConfigNotFound, load_section
from models.registry import available_models, create_model

NOT_COUNTED = (
    "element-wise activations and arithmetic, OpenCV's Farneback, the entropy coders, the conventional codecs"
)
SAMPLE_TAPS = {0: 4, 1: 0, 2: 16}  # grid_sample's interpolation_mode: bilinear, nearest, bicubic


def _output_values(out_shape: Any) -> int:
    shape = (
        out_shape[0]
        if isinstance(out_shape, tuple | list)
        and out_shape
        and isinstance(out_shape[0], torch.Size | tuple | list)
        else out_shape
    )
    return int(torch.Size(shape).numel())


def _per_output(macs: int) -> Callable[..., int]:
    def flops(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return 2 * macs * _output_values(out_shape)

    return flops


def _grid_sample(dims: int) -> Callable[..., int]:
    def flops(
        input_shape: Any, grid_shape: Any, mode: int = 0, *args: Any, out_shape: Any = None, **kwargs: Any
    ) -> int:
        taps = SAMPLE_TAPS.get(int(mode), 4) * (2 if dims == 3 and int(mode) == 0 else 1)
        return 2 * taps * _output_values(out_shape)

    return flops


def _pooling(input_shape: Any, kernel_size: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """aten's kernel size is a list: a size per spatial dimension, or one size for all of them."""
    sizes = [int(size) for size in kernel_size]
    window = math.prod(sizes) if len(sizes) > 1 else sizes[0] ** (len(input_shape) - 2)
    return 2 * window * _output_values(out_shape)


def _per_input(macs: int) -> Callable[..., int]:
    def flops(input_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return 2 * macs * int(torch.Size(input_shape).numel())

    return flops


aten = torch.ops.aten
# What PyTorch's flop counter does not count, as MACs (see the module's docstring).
SAMPLING_OPS = {
    aten.grid_sampler_2d: _grid_sample(2),
    aten.grid_sampler_3d: _grid_sample(3),
    aten.upsample_bilinear2d: _per_output(4),
    aten.upsample_trilinear3d: _per_output(8),
    aten.upsample_bicubic2d: _per_output(16),
    aten.upsample_nearest2d: _per_output(0),
    aten.upsample_nearest3d: _per_output(0),
    aten.avg_pool2d: _pooling,
    aten.avg_pool3d: _pooling,
    aten.max_pool2d_with_indices: _pooling,
    aten.max_pool3d_with_indices: _pooling,
    aten._adaptive_avg_pool2d: _per_input(1),
    aten._adaptive_avg_pool3d: _per_input(1),
    aten.native_batch_norm: _per_input(2),
    aten._native_batch_norm_legit_no_training: _per_input(2),
    aten._native_batch_norm_legit: _per_input(2),
    aten.native_group_norm: _per_input(4),
    aten.native_layer_norm: _per_input(4),
}


def count_macs(fn: Callable[..., Any], *args: Any) -> int:
    """Multiply-accumulates of one call of ``fn``: PyTorch's flop counter with :data:`SAMPLING_OPS`."""
    with FlopCounterMode(display=False, custom_mapping=SAMPLING_OPS) as counter:
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
    lines.append(f"{result['model']}: kMAC per pixel at {w}x{h} (not counted: {NOT_COUNTED})")
    lines += [f"  {part:<40} {_kilo(macs):>14}" for part, macs in result["macs_per_pixel"].items()]
    return "\n".join(lines)


def _kilo(macs: float) -> str:
    """kMAC with two decimals, or three significant digits below one (a warp costs a few MAC a pixel)."""
    value = macs / 1e3
    return f"{value:,.2f}" if value >= 1 or value == 0 else f"{value:.3g}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ctc-complexity", description=__doc__.splitlines()[0])
    parser.add_argument(
        "models", nargs="*", help=f"model configs (default: all of {', '.join(available_models())})"
    )
    parser.add_argument(
        "--config-dir",
        action="append",
        default=[],
        help="a folder with model/<name>.yaml of your own (as ctc-run's --config-dir)",
    )
    parser.add_argument("--size", type=int, default=256, help="frame width and height (default 256)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    try:
        configs = {
            name: load_section("model", name, config_dirs=args.config_dir)
            for name in args.models or available_models()
        }
    except ConfigNotFound as exc:
        parser.error(str(exc))
    results = (model_complexity(name, config, size=args.size) for name, config in configs.items())
    print_rows(results, format_complexity, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
