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

from ctc.codec import Codec, CodecError, DecodeResult, EncodeResult, create_codec
from ctc.devices import batch_size_for, job_scoring_device
from ctc.frames import read_rgb444
from ctc.hashing import compute_digest, payload_hash
from ctc.identity import identity_hash, job_identity, sequence_identity
from ctc.provenance import made_by, now_iso
from ctc.rates import kbps
from ctc.results import RESULT_FILE, ResultStatus, awaits_scoring, is_complete, read_result
from ctc.stopwatch import Stopwatch
from ctc.store import JOB_LOG, PER_FRAME_FILE, job_dir, job_lock, write_json_atomic
from ctc.testset.sequences import SequenceSpec

# The config key of each role's codec section.
ROLES = {"test": "codec", "anchor": "anchor"}
LOG_TAIL_LINES = 30
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


_codec_cache: dict[tuple[str, str], Codec] = {}


def cached_codec(section: Mapping[str, Any], device: str, identity: Mapping[str, Any]) -> Codec:
    """One codec instance per resolved identity and device in each worker process (models load once);
    the same config resolving to other weights or binaries (a checkpoint installed since) builds anew."""
    key = (payload_hash({"section": section, "identity": identity}), device)
    if key not in _codec_cache:
        _codec_cache[key] = create_codec(section, device)
    return _codec_cache[key]


def is_cached(section: Mapping[str, Any], device: str, identity: Mapping[str, Any]) -> bool:
    """Whether this worker has built the codec of ``section`` already (:func:`cached_codec`)."""
    return (payload_hash({"section": section, "identity": identity}), device) in _codec_cache


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
    coded = _coded_before(previous, job, directory)
    (directory / RESULT_FILE).unlink(missing_ok=True)  # an old result must not look like this run's
    result: dict[str, Any] = {
        **job.result_fields(ResultStatus.FAILED),
        "codec_version": None,
        "codec_provenance": {},
        "random_weights": False,
        "device": job.device,
        "hashed": HASHED,
        "made_by": made_by(),
    }
    logs: list[str] = []
    try:
        built = not is_cached(section, job.device, job.identity["codec"])
        with clock("codec_setup"):  # network construction and weight loading: once per worker and codec
            codec = cached_codec(section, job.device, job.identity["codec"])
        result["codec_built"] = built
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
            _check_decoded(decoded.frames_file, spec)
        _check_closed_loop(encoded, decoded)
        result.update(
            status=ResultStatus.DECODED,
            decoded_file=decoded.frames_file.name,
            decoded_md5=compute_digest(decoded.frames_file, "md5"),  # what a cross-check must reproduce
            bits={"total": encoded.total_bits, "parts": dict(encoded.bits)},
            **rates(encoded, type(codec).container_bit_parts, spec),
            encode_details=dict(encoded.details),
            decode_details=dict(decoded.details),
            enc_seconds=encoded.seconds,
            dec_seconds=decoded.seconds,
            bitstream=encoded.bitstream.name,
            reused_bitstream=coded is not None,
            commands={"encode": _command_lines(encoded.commands), "decode": _command_lines(decoded.commands)},
        )
        if score:
            from ctc.metrics import score_frames, use_metric_modules  # imports torch: in the workers

            use_metric_modules(metrics.get("modules"))
            device = job_scoring_device(str(metrics.get("device", "auto")), job.device)
            with clock("scoring"):
                reconstruction = read_rgb444(decoded.frames_file, spec.width, spec.height, spec.frames)
                table = score_frames(
                    spec.read(),
                    reconstruction,
                    list(metrics["names"]),
                    device,
                    batch_size_for(metrics, device),
                    label=job.label,
                )
                record_scores(result, table, metrics, directory, keep_decoded, device)
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
    result["timing"] = job_timing(clock, result)
    write_json_atomic(directory / RESULT_FILE, result)
    return result


def job_timing(clock: Stopwatch, result: Mapping[str, Any]) -> dict[str, Any]:
    """Where a job's wall time went (docs/costs.md): the job's wall time, the seconds of each of its
    stages (lock_wait, codec_setup, encode, decode, scoring, io; ``other``: the rest), and within encode
    and decode the codec's own split where it reports one (a GFVC codec: key_frame, features,
    generation, io). EncT/DecT stay ``enc_seconds``/``dec_seconds``, the coding alone."""
    wall = clock.elapsed()
    seconds = clock.take()
    timing: dict[str, Any] = {"wall_s": round(wall, 3)}
    timing.update((f"{part}_s", value) for part, value in seconds.items())
    timing["other_s"] = round(max(0.0, wall - sum(seconds.values())), 3)
    for stage in ("encode", "decode"):
        split = (result.get(f"{stage}_details") or {}).get("seconds")
        if split:
            timing[f"{stage}_split_s"] = dict(split)
    return timing


def record_scores(
    result: dict[str, Any],
    table: Any,
    metrics: Mapping[str, Any],
    directory: Path,
    keep_decoded: bool,
    device: str,
) -> None:
    """Complete a decoded job's ``result`` with its per-frame ``table``: ``per_frame.csv``, the sequence
    values and definitions, status ``ok``; the decoded file goes unless ``keep_decoded``."""
    from ctc.metrics import describe_metrics, metric_code, sequence_values

    names = list(metrics["names"])
    definitions = describe_metrics(names)
    if metrics.get("keep_per_frame", True):
        table.to_csv(directory / PER_FRAME_FILE)
    if not keep_decoded:
        (directory / result["decoded_file"]).unlink(missing_ok=True)
    result.update(
        status=ResultStatus.OK,
        metrics=sequence_values(table[names]),
        metrics_device=device,
        metric_directions={name: _direction(about["lower_is_better"]) for name, about in definitions.items()},
        metric_definitions=definitions,
        metric_code=metric_code(names),
    )


def decoded_file(
    result: Mapping[str, Any] | None, expected_hash: str, directory: Path, spec: SequenceSpec
) -> Path | None:
    """The decoded file of a job decoded under ``expected_hash`` and not scored yet, when it is whole."""
    if not awaits_scoring(result, expected_hash):
        return None
    path = directory / str(result.get("decoded_file"))
    whole = path.is_file() and path.stat().st_size == spec.frames * spec.frame_bytes
    return path if whole else None


def rates(encoded: EncodeResult, container_parts: Sequence[str], spec: SequenceSpec) -> dict[str, Any]:
    """``kbps``, the rate BD-rate uses, counted as the codec's field counts it (every part of the
    bitstream but the container's, e.g. a GFVC file's header), and the whole file's ``file_kbps``."""
    container = sum(bits for part, bits in encoded.bits.items() if part in container_parts)
    counted = [part for part in encoded.bits if part not in container_parts]
    return {
        "kbps": kbps(encoded.total_bits - container, spec.frames, spec.fps),
        "file_kbps": kbps(encoded.total_bits, spec.frames, spec.fps),
        "rate_counts": "+".join(counted) if container else "the whole bitstream file",
    }


def _coded_before(previous: Mapping[str, Any] | None, job: Job, directory: Path) -> EncodeResult | None:
    """The encoding of an earlier result of the same job that got past decoding (same hash, bitstream
    still there), so that scoring it (again) decodes that bitstream instead of coding it again."""
    if (
        not previous
        or previous.get("config_hash") != job.identity_hash
        or not previous.get("bits")
        or not previous.get("bitstream")
    ):
        return None
    bitstream = directory / previous["bitstream"]
    if not bitstream.is_file():
        return None
    return EncodeResult(
        bitstream,
        dict(previous["bits"]["parts"]),
        previous["enc_seconds"],
        previous["commands"]["encode"],
        log=f"reused {bitstream.name} of an earlier run",
        details=dict(previous.get("encode_details", {})),
    )


def _command_lines(commands: Sequence[Sequence[Any]]) -> list[list[str]]:
    return [[str(arg) for arg in command] for command in commands]


def _check_decoded(path: Path, spec: SequenceSpec) -> None:
    expected = spec.frames * spec.frame_bytes
    if not path.is_file():
        raise CodecError(f"the decoder wrote no output file {path}")
    size = path.stat().st_size
    if size != expected:
        raise CodecError(
            f"decoded file {path} is {size} bytes; expected {spec.frames} frames of "
            f"{spec.description}, {expected} bytes"
        )


def _check_closed_loop(encoded: EncodeResult, decoded: DecodeResult) -> None:
    """The decoder must reproduce the encoder's reconstruction exactly, where the codec reports both."""
    expected, found = encoded.details.get("reconstruction_md5"), decoded.details.get("output_md5")
    if expected and found and expected != found:
        raise CodecError(
            f"the decoder's output of {encoded.bitstream} (md5 {found}) differs from the "
            f"encoder's reconstruction (md5 {expected}): encoder and decoder mismatch"
        )


def _direction(lower_is_better: bool) -> str:
    return "lower_is_better" if lower_is_better else "higher_is_better"
