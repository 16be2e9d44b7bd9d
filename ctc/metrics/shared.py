"""Scoring every decoded version of one sequence against its reference at once.

A sweep decodes each sequence once per codec and rate point (8 versions in a CTC-shaped sweep), and
every version is scored against the same reference frames. The perceptual metrics
(``shares_reference``) run the backbone on each batch of reference frames once and score every
version against those features, so a scored frame costs one backbone pass per network instead of
two: the VGG passes per scored frame of DISTS + LPIPS go from 4 to 2 + 2/versions. The features are
the reference packages' own, computed with the same operations and batch sizes as a pair at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ctc.metrics import FrameBatch, MetricError, _as_uint8, _check_shapes, get_metric


def score_versions(
    reference: np.ndarray,
    versions: Sequence[np.ndarray],
    metrics: Sequence[str],
    device: str = "cpu",
    batch_size: int = 16,
    labels: Sequence[str] = (),
) -> list[pd.DataFrame | MetricError]:
    """Per-frame tables of each decoded version against ``reference`` (``(N, 3, H, W)`` 8-bit arrays,
    memory maps are fine), one column per metric; a version with bad input gets its
    :class:`MetricError` (naming ``labels[i]``) in its place and the others are scored all the same."""
    if batch_size < 1:
        raise MetricError(f"batch_size must be at least 1, got {batch_size}")
    labels = list(labels) or [f"version {index}" for index in range(len(versions))]
    outcome: list[dict[str, list[np.ndarray]] | MetricError] = []
    for label, distorted in zip(labels, versions, strict=True):
        try:
            _check_shapes(reference, distorted, f"{label}: ")
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
                outcome[index] = MetricError(f"{labels[index]}: {error}")
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
            tables.append(MetricError(f"{labels[index]}: {error}"))
            continue
        table = pd.DataFrame({name: np.concatenate(parts) for name, parts in columns.items()})
        table.index.name = "frame"
        tables.append(table)
    return tables
