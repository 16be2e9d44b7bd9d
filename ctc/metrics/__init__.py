"""The metric stage: a registry of frame metrics and the scoring of a decoded sequence.

Every metric scores batches of 8-bit RGB frames ``(B, 3, H, W)`` against the originals and
returns one value per frame; a sequence's value is the mean over all its frames, the first
(key) frame included, as in the GFVC common software.

Frames are scored in batches; the conversions that several metrics need (a float32 tensor on the
device, YUV 4:2:0) are made once per batch in a :class:`FrameBatch` and shared between metrics.

A metric of the user's own is a :class:`Metric` subclass decorated ``@register_metric("name")`` in
any importable module, named in the metrics config's ``modules`` (:func:`use_metric_modules`).
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from ctc.conf import ConfigNotFound, load_section
from ctc.devices import resolve_device
from ctc.frames import Yuv420, rgb_to_yuv420
from ctc.registry import Registry

if TYPE_CHECKING:
    import torch


class MetricError(ValueError):
    """Bad input to a metric (mismatched sizes, out-of-range values, unknown name)."""


class FrameBatch:
    """Reference and distorted uint8 frames ``(B, 3, H, W)`` with their conversions, each made once."""

    def __init__(self, reference: np.ndarray, distorted: np.ndarray) -> None:
        self.reference = reference
        self.distorted = distorted
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._shared: dict[Hashable, Any] = {}

    def __len__(self) -> int:
        return self.reference.shape[0]

    def tensors(self, device: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Both batches as float32 tensors in [0, 1] on ``device`` (RGB scaled as DISTS and LPIPS take it)."""
        if device not in self._tensors:
            import torch

            pair = np.stack([self.reference, self.distorted])  # one host-to-device copy for both
            scaled = torch.from_numpy(pair).to(device, non_blocking=True).float().div_(255.0)
            self._tensors[device] = (scaled[0], scaled[1])
        return self._tensors[device]

    def shared(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """``make()``, made once per batch for every metric that asks with the same ``key``."""
        if key not in self._shared:
            self._shared[key] = make()
        return self._shared[key]

    @cached_property
    def yuv(self) -> tuple[Yuv420, Yuv420]:
        """Both batches in YUV 4:2:0, converted as the harness converts (:func:`ctc.frames.rgb_to_yuv420`)."""
        return rgb_to_yuv420(self.reference), rgb_to_yuv420(self.distorted)


class Metric(ABC):
    name: ClassVar[str]
    lower_is_better: ClassVar[bool] = False
    unit: ClassVar[str] = ""
    description: ClassVar[str] = ""
    backbones: ClassVar[tuple[str, ...]] = ()  # ImageNet backbones it needs (ctc.metrics.weights)
    # Scored over the whole sequence at once (VMAF's motion feature looks at the previous frame)
    whole_sequence: ClassVar[bool] = False
    # Scores decoded frames against reference features computed once (reference_features, score_against)
    shares_reference: ClassVar[bool] = False

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    @abstractmethod
    def score_batch(self, batch: FrameBatch) -> np.ndarray:
        """Per-frame values, float64 ``(B,)``."""

    def score(self, reference: np.ndarray, distorted: np.ndarray) -> np.ndarray:
        """Per-frame values, float64 ``(B,)``, for uint8 batches ``(B, 3, H, W)``."""
        return self.score_batch(FrameBatch(*_checked_pair(reference, distorted)))

    @classmethod
    def sequence_value(cls, per_frame: np.ndarray) -> float:
        """A sequence's value from its per-frame values: their mean, unless the definition pools otherwise."""
        return float(np.mean(per_frame))


METRICS: Registry[type[Metric]] = Registry("metric")


def register_metric(name: str) -> Callable[[type[Metric]], type[Metric]]:
    """Class decorator: make a metric available as ``name`` in ``metrics.names``."""

    def decorator(cls: type[Metric]) -> type[Metric]:
        cls.name = name
        return METRICS.add(name, cls)

    return decorator


def _load_metric_modules() -> None:
    """Import every module of this package, on first use: a built-in metric is a module here whose
    class registers itself (``@register_metric``); no list names them."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def use_metric_modules(modules: Sequence[str] | None) -> None:
    """Import the modules that register the user's own metrics (the metrics config's ``modules``), in
    each process that scores or describes them."""
    for module in modules or ():
        try:
            importlib.import_module(str(module))
        except ImportError as exc:
            raise MetricError(
                f"metrics.modules: cannot import {module!r}: {exc} (is its package installed "
                "or on PYTHONPATH?)"
            ) from exc


def metric_class(name: str) -> type[Metric]:
    """The class registered as ``name`` (no model is built)."""
    _load_metric_modules()
    if name not in METRICS:
        raise MetricError(
            f"unknown metric {name!r}; available: {', '.join(sorted(METRICS))} (a metric of "
            "your own: its module in metrics.modules)"
        )
    return METRICS[name]


def metric_config(name: str) -> dict[str, object]:
    """The metrics config ``ctc/conf/metrics/<name>.yaml`` (``ctc``: the CTC set) as a dict."""
    try:
        return load_section("metrics", name)
    except ConfigNotFound as exc:
        raise MetricError(str(exc)) from None


def prepare_metrics(names: Sequence[str]) -> None:
    """Resolve (fetch and convert once) the backbone weights the metrics need, before workers start."""
    from ctc.metrics.weights import resolve_backbone

    for backbone in sorted({b for name in names for b in metric_class(name).backbones}):
        resolve_backbone(backbone)


def metric_set(name: str) -> list[str]:
    """The metric names of the config ``ctc/conf/metrics/<name>.yaml``."""
    return list(metric_config(name)["names"])


def describe_metrics(names: Sequence[str]) -> dict[str, dict[str, object]]:
    """Direction, unit and definition of each metric, for result files and tables."""
    return {
        name: {"lower_is_better": cls.lower_is_better, "unit": cls.unit, "description": cls.description}
        for name in names
        for cls in [metric_class(name)]
    }


# The scoring loops every metric's values pass through (one job's frames, a sequence's versions).
SCORING_MODULES = ("ctc.metrics",)


def metric_code(names: Sequence[str]) -> dict[str, dict[str, str]]:
    """Each metric's code fingerprint (:func:`ctc.fingerprint.code_fingerprint`): its class's module and
    the scoring loops, with what they import. A score is redone when its metric's code changed."""
    from ctc.fingerprint import code_fingerprint

    return {name: code_fingerprint([metric_class(name).__module__, *SCORING_MODULES]) for name in names}


def sequence_values(table: pd.DataFrame) -> dict[str, float]:
    """Each metric's value for the sequence scored in ``table`` (one column per metric)."""
    return {name: metric_class(str(name)).sequence_value(table[name].to_numpy()) for name in table.columns}


def get_metric(name: str, device: str = "cpu") -> Metric:
    """The metric ``name`` on ``device``, built once per process (backbones are not rebuilt per job)."""
    return _build_metric(name, resolve_device(device))


@cache
def _build_metric(name: str, device: str) -> Metric:
    return metric_class(name)(device=device)


def _check_shapes(reference: np.ndarray, distorted: np.ndarray, prefix: str) -> None:
    for role, frames in (("reference", reference), ("decoded", distorted)):
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise MetricError(f"{prefix}{role} frames have shape {frames.shape}, expected (N, 3, H, W) RGB")
    if reference.shape[0] != distorted.shape[0]:
        raise MetricError(
            f"{prefix}reference has {reference.shape[0]} frames, decoded has {distorted.shape[0]}"
        )
    if reference.shape[0] == 0:
        raise MetricError(f"{prefix}no frames to score")
    if reference.shape[2:] != distorted.shape[2:]:
        raise MetricError(
            f"{prefix}reference frames are {reference.shape[3]}x{reference.shape[2]}, "
            f"decoded frames are {distorted.shape[3]}x{distorted.shape[2]}"
        )


def _as_uint8(frames: np.ndarray, role: str, prefix: str) -> np.ndarray:
    """``frames`` as uint8, or a :class:`MetricError` when they hold anything but integers 0..255."""
    if frames.dtype == np.uint8:
        return frames
    if not (np.issubdtype(frames.dtype, np.integer) or np.issubdtype(frames.dtype, np.floating)):
        raise MetricError(f"{prefix}{role} have dtype {frames.dtype}, expected 8-bit samples")
    if np.isnan(frames).any():
        raise MetricError(f"{prefix}{role} contain NaN")
    low, high = frames.min(), frames.max()
    if low < 0 or high > 255 or not np.array_equal(frames, np.round(frames)):
        raise MetricError(f"{prefix}{role} hold values in [{low}, {high}]; expected 8-bit integers 0..255")
    return frames.astype(np.uint8)


def _checked_pair(
    reference: np.ndarray, distorted: np.ndarray, label: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as uint8 ``(N, 3, H, W)`` of one shape, or a :class:`MetricError` naming what is wrong."""
    prefix = f"{label}: " if label else ""
    _check_shapes(reference, distorted, prefix)
    return (
        _as_uint8(np.asarray(reference), "reference frames", prefix),
        _as_uint8(np.asarray(distorted), "decoded frames", prefix),
    )


def score_frames(
    reference: np.ndarray,
    distorted: np.ndarray,
    metrics: Sequence[str],
    device: str = "cpu",
    batch_size: int = 16,
    label: str = "",
) -> pd.DataFrame:
    """Score two ``(N, 3, H, W)`` 8-bit sequences frame by frame; one column per metric.

    The arrays may be memory-mapped files: frames are read one batch at a time. ``label`` (e.g. the
    job's name) starts every error message.
    """
    try:
        (table,) = score_versions(reference, [distorted], metrics, device, batch_size, [label], bool(label))
    except MetricError as error:  # not about the frames: an unknown metric, a bad batch size
        raise MetricError(f"{label}: {error}" if label else str(error)) from None
    if isinstance(table, MetricError):
        raise table
    return table


def score_versions(
    reference: np.ndarray,
    versions: Sequence[np.ndarray],
    metrics: Sequence[str],
    device: str = "cpu",
    batch_size: int = 16,
    labels: Sequence[str] = (),
    prefix: bool = True,
) -> list[pd.DataFrame | MetricError]:
    """Per-frame tables of each decoded version against ``reference`` (``(N, 3, H, W)`` 8-bit arrays,
    memory maps are fine), one column per metric; a version with bad input gets its
    :class:`MetricError` (naming ``labels[i]``, unless ``prefix`` is false) in its place and the others are
    scored all the same. :func:`score_frames` is this loop with one version.

    A sweep decodes each sequence once per codec and rate point (8 versions in a CTC-shaped sweep), and
    every version is scored against the same reference frames. The perceptual metrics
    (``shares_reference``) run the backbone on each batch of reference frames once and score every
    version against those features, so a scored frame costs one backbone pass per network instead of
    two: the VGG passes per scored frame of DISTS + LPIPS go from 4 to 2 + 2/versions. The features are
    the reference packages' own, computed with the same operations and batch sizes as a pair at a time.
    """
    if batch_size < 1:
        raise MetricError(f"batch_size must be at least 1, got {batch_size}")
    labels = list(labels) or [f"version {index}" for index in range(len(versions))]
    starts = [f"{label}: " if prefix else "" for label in labels]
    outcome: list[dict[str, list[np.ndarray]] | MetricError] = []
    for start, distorted in zip(starts, versions, strict=True):
        try:
            _check_shapes(reference, distorted, start)
            outcome.append({name: [] for name in metrics})
        except MetricError as error:
            outcome.append(error)
    scorers = [get_metric(name, device) for name in metrics]
    batched = [metric for metric in scorers if not metric.whole_sequence]
    for start in range(0, reference.shape[0] if batched else 0, batch_size):
        stop = min(start + batch_size, reference.shape[0])
        frames = f"frames {start}-{stop - 1}"
        ref = _as_uint8(np.asarray(reference[start:stop]), f"reference {frames}", "")
        features = {}
        for index, distorted in enumerate(versions):
            columns = outcome[index]
            if isinstance(columns, MetricError):
                continue
            try:
                batch = FrameBatch(ref, _as_uint8(np.asarray(distorted[start:stop]), f"decoded {frames}", ""))
                for metric in batched:
                    if metric.shares_reference:
                        if metric.name not in features:
                            features[metric.name] = metric.reference_features(batch)
                        values = metric.score_against(features[metric.name], batch)
                    else:
                        values = metric.score_batch(batch)
                    columns[metric.name].append(np.asarray(values, np.float64))
            except MetricError as error:
                outcome[index] = MetricError(f"{starts[index]}{error}")
    tables: list[pd.DataFrame | MetricError] = []
    for index, columns in enumerate(outcome):
        if isinstance(columns, MetricError):
            tables.append(columns)
            continue
        try:
            for metric in scorers:
                if metric.whole_sequence:
                    values = metric.score(reference, versions[index])
                    columns[metric.name].append(np.asarray(values, np.float64))
        except MetricError as error:
            tables.append(MetricError(f"{starts[index]}{error}"))
            continue
        table = pd.DataFrame({name: np.concatenate(parts) for name, parts in columns.items()})
        table.index.name = "frame"
        tables.append(table)
    return tables
