"""The scoring task of one sequence: every decoded version the sweep made of it, scored together.

The sweep's coding jobs stop after decoding (status ``decoded``, the decoded file kept); then one
task per sequence takes the locks of that sequence's jobs, scores every decoded version against the
reference frames with the reference's backbone features computed once, and completes each job's result
(:func:`ctc.scores.score_decoded`). A version that cannot be scored is
a failure of its own job only; its bitstream is kept, so the next sweep decodes it again instead of
coding it again.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctc.jobs import Job
from ctc.provenance import now_iso
from ctc.results import RESULT_FILE, ResultStatus, decoded_file, read_result
from ctc.scores import DecodedVersion, score_decoded
from ctc.store import job_dir, job_lock, write_json_atomic
from ctc.testset.sequences import SequenceSpec


@dataclass(frozen=True)
class ScoreTask:
    """Score the jobs ``entries`` (codec, rate point, identity hash) of sequence ``sequence``."""

    sequence: str
    entries: tuple[tuple[str, int, str], ...]
    device: str = "cpu"
    threads: int = 1

    @classmethod
    def of(cls, jobs: Sequence[Job], device: str, threads: int) -> ScoreTask:
        (sequence,) = {job.sequence.name for job in jobs}
        entries = tuple((job.codec, job.rate_point, job.identity_hash) for job in jobs)
        return cls(sequence, entries, device, threads)

    @property
    def label(self) -> str:
        return f"scoring {self.sequence}"


def score_sequence(
    spec: SequenceSpec,
    entries: Sequence[Sequence[Any]],
    metrics: Mapping[str, Any],
    run_dir: Path,
    keep_decoded: bool,
    device: str,
    batch_size: int,
) -> list[dict[str, Any]]:
    """Score the decoded versions of ``spec`` that the jobs ``entries`` left, on ``device``,
    ``batch_size`` frames at a time; returns their results.

    Entries without a decoded result of their hash (their coding failed, or another process scored
    them meanwhile) are left as they are.
    """
    directories = sorted(job_dir(run_dir, codec, spec.name, rate_point) for codec, rate_point, _ in entries)
    hashes = {job_dir(run_dir, codec, spec.name, rate_point): digest for codec, rate_point, digest in entries}
    with ExitStack() as locks:
        ready = []
        for directory in directories:  # in this order: two sweeps never wait for each other in a cycle
            label = f"{directory.parent.parent.name}/{spec.name}/{directory.name}"
            locks.enter_context(job_lock(directory, label))
            result = read_result(directory)
            path = decoded_file(result, hashes[directory], directory, spec)
            if path is not None:
                ready.append(DecodedVersion(directory, result, path))
        if not ready:
            return []
        started = time.perf_counter()
        failures = score_decoded(spec, ready, metrics, device, batch_size, keep_decoded)
        share = round((time.perf_counter() - started) / len(ready), 3)  # the task's seconds per version
        for version, failure in zip(ready, failures, strict=True):
            version.result["timing"] = {**version.result.get("timing", {}), "scoring_s": share}
            if failure is None:
                version.result["created"] = now_iso()
                write_json_atomic(version.directory / RESULT_FILE, version.result)
            else:
                trace = "".join(traceback.format_exception(failure))
                mark_unscored(version.directory, version.result, str(failure), trace)
        return [version.result for version in ready]


def mark_unscored(directory: Path, result: dict[str, Any], error: str, trace: str = "") -> None:
    """Record a decoded job that was not scored as failed (``error``, and ``trace``, its traceback, for
    its log), keeping its coding's record (and bitstream)."""
    result.update(
        status=ResultStatus.FAILED,
        error=error.splitlines()[0],
        log_tail=trace or error,
        created=now_iso(),
        unscored=True,
    )
    write_json_atomic(directory / RESULT_FILE, result)


def restore_unscored(directory: Path, expected_hash: str, spec: SequenceSpec) -> bool:
    """Make a job that :func:`mark_unscored` recorded decoded again when its decoded file is whole: it
    needs its scoring only, not its coding; returns whether it did."""
    result = read_result(directory)
    if not result or result.get("status") != ResultStatus.FAILED or not result.get("unscored"):
        return False
    decoded = {key: value for key, value in result.items() if key not in ("error", "log_tail", "unscored")}
    decoded["status"] = ResultStatus.DECODED
    if decoded_file(decoded, expected_hash, directory, spec) is None:
        return False
    write_json_atomic(directory / RESULT_FILE, decoded)
    return True
