"""One job of a sweep: code one sequence at one rate point with one codec, decode it, score it.

The job writes into its own directory (``<run>/<codec>/<sequence>/<rate point>/``): the bitstream,
``job.log`` (the codec's log, and the traceback when it fails), ``per_frame.csv`` and, last and
atomically, ``result.json``, which records the job's identity (:mod:`ctc.identity`) and what made
it (git commit, package versions). One process works on a job at a time (:func:`ctc.store.job_lock`);
one that waited for another sweep's process takes that result when it is complete. Any exception
is recorded as a failed result; nothing escapes to the other jobs of the sweep.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctc.codec import EncodeResult, cached_codec, check_closed_loop, check_decoded_size
from ctc.devices import batch_size_for, job_scoring_device
from ctc.hashing import compute_digest, payload_hash
from ctc.identity import identity_hash, job_identity, sequence_identity
from ctc.provenance import made_by, now_iso
from ctc.rates import coded_rates
from ctc.results import RESULT_FILE, ResultStatus, decoded_file, is_complete, read_result
from ctc.scores import DecodedVersion, score_decoded
from ctc.stopwatch import Stopwatch
from ctc.store import JOB_LOG, job_dir, job_lock, write_json_atomic
from ctc.testset.sequences import SequenceSpec

# The config key of each role's codec section.
ROLES = {"test": "codec", "anchor": "anchor"}
LOG_TAIL_LINES = 30
STAGES = ("encode", "decode")  # the coding stages whose codec may report its own split of their time
# What a result's config_hash (the job's identity_hash) covers, said in every result.json (README: What
# makes a result reused).
HASHED = (
    "config_hash: sha256 of identity, i.e. the codec's config (less timeout_s, slurm, rate_points) "
    "and what it resolves to: code (a digest of each source file's syntax tree) for codecs in Python, "
    "binaries (sha256) and command lines for external ones, weights, the key-frame codec; the "
    "sequence file's md5 and frames; the rate point. Scores apart: metric_code, per metric."
)


@dataclass(frozen=True)
class Job:
    role: str  # "test" or "anchor"
    codec: str
    sequence: SequenceSpec
    rate_point: int
    identity: Mapping[str, Any] = field(compare=False, repr=False)  # what makes the bitstream
    device: str = "cpu"
    # metric name -> its code fingerprint (ctc.metrics.metric_code): a score made by other code is redone
    metric_code: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(self.metric_code)

    @property
    def identity_hash(self) -> str:
        """The hash of the job's identity; the metrics are not part of it (a new metric re-scores a
        complete job from its bitstream, it is not coded again)."""
        return identity_hash(self.identity)

    @property
    def label(self) -> str:
        return f"{self.codec}/{self.sequence.name}/{self.rate_point}"

    def result_fields(self, status: ResultStatus) -> dict[str, Any]:
        """The fields every ``result.json`` of this job opens with: what it is, its sequence's setup and its
        identity, with ``status``."""
        spec = self.sequence
        return {
            "status": status,
            "codec": self.codec,
            "role": self.role,
            "sequence": spec.name,
            "seq_class": spec.seq_class,
            "rate_point": self.rate_point,
            "frames": spec.frames,
            "fps": spec.fps,
            "width": spec.width,
            "height": spec.height,
            # the identity's hash; "config_hash" is the result.json field name (a file format: keep it)
            "config_hash": self.identity_hash,
            "identity": self.identity,
        }

    def directory(self, run_dir: str | Path) -> Path:
        return job_dir(run_dir, self.codec, self.sequence.name, self.rate_point)


def plan_jobs(
    sections: Mapping[str, Mapping[str, Any]],
    identities: Mapping[str, Mapping[str, Any]],
    specs: Sequence[SequenceSpec],
    metric_code: Mapping[str, Any],
    devices: Mapping[str, list[str]],
) -> list[Job]:
    """Every (codec, sequence, rate point) of a sweep, with ``identities[role]`` (the codec's resolved
    identity, :func:`ctc.identity.codec_identity`); ``devices[role]`` is cycled over that role's jobs;
    ``metric_code``: the metrics to score, each with its code fingerprint."""
    sequences = {spec.name: sequence_identity(spec) for spec in specs}
    jobs = []
    for role, section in sections.items():
        index = 0
        for spec in specs:
            for rate_point in section["rate_points"]:
                device = devices[role][index % len(devices[role])]
                index += 1
                identity = job_identity(identities[role], sequences[spec.name], rate_point)
                jobs.append(
                    Job(role, section["name"], spec, int(rate_point), identity, device, dict(metric_code))
                )
    return jobs


def run_job(
    job: Job,
    section: Mapping[str, Any],
    metrics: Mapping[str, Any],
    run_dir: str | Path,
    keep_decoded: bool = False,
    score: bool = True,
) -> dict[str, Any]:
    """Run ``job`` and write its ``result.json``; returns the result (status ``ok`` or ``failed``, or
    ``decoded`` without ``score``: its decoded file is kept for its sequence's scoring task,
    :mod:`ctc.sweep.scoring`).

    Holds the job folder's lock while it works; when another sweep's process did the job meanwhile
    (its complete result is there once the lock is free), that result is taken as it is.
    """
    directory = job.directory(run_dir)
    clock = Stopwatch()
    with ExitStack() as lock:
        with clock("lock_wait"):
            lock.enter_context(job_lock(directory, job.label))
        previous = read_result(directory)
        if is_complete(previous, job.identity_hash, job.metric_code):
            return previous
        if not score and decoded_file(previous, job.identity_hash, directory, job.sequence):
            return previous  # decoded by an interrupted sweep, still to be scored
        return _run_locked(job, section, metrics, directory, previous, keep_decoded, score, clock)


def _run_locked(
    job: Job,
    section: Mapping[str, Any],
    metrics: Mapping[str, Any],
    directory: Path,
    previous: Mapping[str, Any] | None,
    keep_decoded: bool,
    score: bool,
    clock: Stopwatch,
) -> dict[str, Any]:
    spec = job.sequence
    result: dict[str, Any] = {
        **job.result_fields(ResultStatus.FAILED),
        "codec_version": None,
        "codec_provenance": {},
        "random_weights": False,
        "device": job.device,
        "hashed": HASHED,
        "made_by": made_by(),
    }
    codec_key = payload_hash({"section": section, "identity": job.identity["codec"]})
    coded = EncodeResult.recorded(previous, job.identity_hash, directory)
    (directory / RESULT_FILE).unlink(missing_ok=True)  # an old result must not look like this run's
    logs: list[str] = []
    try:
        with clock("codec_setup"):  # network construction and weight loading: once per worker and codec
            codec, result["codec_built"] = cached_codec(section, job.device, codec_key)
        provenance = codec.provenance()
        result.update(
            codec_version=provenance.get("version") or codec.version(),
            codec_provenance=provenance,
            random_weights=bool(provenance.get("random_weights", False)),
        )
        with clock("encode"):
            encoded = coded or codec.encode(spec, job.rate_point, directory)
        logs.append(encoded.log)
        with clock("decode"):
            decoded = codec.decode(encoded.bitstream, spec, directory)
        logs.append(decoded.log)
        with clock("io"):
            check_decoded_size(decoded, spec)
            check_closed_loop(encoded, decoded)
        result.update(
            status=ResultStatus.DECODED,
            decoded_file=decoded.frames_file.name,
            decoded_md5=compute_digest(decoded.frames_file, "md5"),  # what a cross-check must reproduce
            bits={"total": encoded.total_bits, "parts": dict(encoded.bits)},
            **coded_rates(encoded.bits, type(codec).container_bit_parts, spec.frames, spec.fps),
            encode_details=dict(encoded.details),
            decode_details=dict(decoded.details),
            enc_seconds=encoded.seconds,
            dec_seconds=decoded.seconds,
            bitstream=encoded.bitstream.name,
            reused_bitstream=coded is not None,
            commands={
                "encode": [[str(arg) for arg in command] for command in encoded.commands],
                "decode": [[str(arg) for arg in command] for command in decoded.commands],
            },
        )
        if score:
            device = job_scoring_device(str(metrics.get("device", "auto")), job.device)
            batch_size = batch_size_for(metrics, device)
            with clock("scoring"):
                version = DecodedVersion(directory, result, decoded.frames_file)
                (failure,) = score_decoded(spec, [version], metrics, device, batch_size, keep_decoded)
            if failure:
                raise failure
    except Exception as exc:  # recorded in result.json: one failing job never stops the others
        logs.append(traceback.format_exc())
        log = "\n".join(part for part in logs if part)
        result.update(
            status=ResultStatus.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            log_tail="\n".join(log.strip().splitlines()[-LOG_TAIL_LINES:]),
        )
    result["created"] = now_iso()
    with clock("io"):
        (directory / JOB_LOG).write_text("\n".join(part for part in logs if part), encoding="utf-8")
    result["timing"] = clock.timing(
        {stage: result.get(f"{stage}_details", {}).get("seconds") for stage in STAGES}
    )
    write_json_atomic(directory / RESULT_FILE, result)
    return result
