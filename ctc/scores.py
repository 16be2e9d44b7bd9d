"""Decoded versions scored and their scores recorded in their results: the one scoring loop of a sweep.

A coding job that scores its own decoding (``scoring: job``, :mod:`ctc.jobs`) and a sequence's scoring
task (every decoded version of one sequence at once, :mod:`ctc.sweep.scoring`) both hand their decoded
versions to :func:`score_decoded`. It scores them against the sequence's frames
(:func:`ctc.metrics.score_versions`) and completes each version's result: ``per_frame.csv``, the
sequence values, the metrics' definitions and code fingerprints, status ``ok``; the decoded file goes
unless it is kept. The callers write the results, each under its job folder's lock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctc.frames import read_rgb444
from ctc.results import ResultStatus
from ctc.store import PER_FRAME_FILE
from ctc.testset.sequences import SequenceSpec


class ScoringFailed(RuntimeError):
    """The scoring of a sequence's versions failed as a whole (weights, memory, an unknown metric)."""


@dataclass(frozen=True)
class DecodedVersion:
    """A job's decoding, to be scored: its folder, its result (status ``decoded``; completed in place
    when it is scored) and its decoded frames."""

    directory: Path
    result: dict[str, Any]
    frames_file: Path

    @property
    def label(self) -> str:
        return f"{self.result['codec']}/{self.result['sequence']}/{self.result['rate_point']}"


def score_decoded(
    spec: SequenceSpec,
    versions: Sequence[DecodedVersion],
    metrics: Mapping[str, Any],
    device: str,
    batch_size: int,
    keep_decoded: bool,
) -> list[Exception | None]:
    """Score ``versions`` of ``spec`` on ``device``, ``batch_size`` frames at a time, and complete each
    one's result (see the module doc); returns, per version, None, or why it was not scored (its result
    unchanged): its own :class:`ctc.metrics.MetricError`, or one :class:`ScoringFailed` for all."""
    names = list(metrics["names"])
    try:
        reference = spec.read()
        decoded = [
            read_rgb444(version.frames_file, spec.width, spec.height, spec.frames) for version in versions
        ]
        from ctc.metrics import (  # imports torch: in the workers only
            describe_metrics,
            metric_code,
            score_versions,
            sequence_values,
            use_metric_modules,
        )

        use_metric_modules(metrics.get("modules"))
        tables = score_versions(
            reference, decoded, names, device, batch_size, labels=[version.label for version in versions]
        )
        values = [None if isinstance(table, Exception) else sequence_values(table[names]) for table in tables]
        definitions, code = describe_metrics(names), metric_code(names)
    except Exception as exc:  # the whole scoring failed: each version says so
        failure = ScoringFailed(f"scoring {spec.name} failed: {type(exc).__name__}: {exc}")
        failure.__cause__ = exc
        return [failure] * len(versions)
    for version, table, sequence_value in zip(versions, tables, values, strict=True):
        if sequence_value is None:
            continue
        if metrics.get("keep_per_frame", True):
            table.to_csv(version.directory / PER_FRAME_FILE)
        if not keep_decoded:
            version.frames_file.unlink(missing_ok=True)
        version.result.update(
            status=ResultStatus.OK,
            metrics=sequence_value,
            metrics_device=device,
            metric_directions={
                name: "lower_is_better" if about["lower_is_better"] else "higher_is_better"
                for name, about in definitions.items()
            },
            metric_definitions=definitions,
            metric_code=code,
        )
    return [table if isinstance(table, Exception) else None for table in tables]
