"""One job of a sweep: code one sequence at one rate point with one codec, decode it, score it.

The job writes into its own directory (``<run>/<codec>/<sequence>/<rate point>/``): the bitstream,
``job.log`` (the codec's log, and the traceback when it fails), ``per_frame.csv`` and, last and
atomically, ``result.json``. Any exception is recorded as a failed result; nothing escapes to the
other jobs of the sweep.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctc.codec import Codec, CodecError, EncodeResult, create_codec
from ctc.devices import batch_size_for
from ctc.frames import read_rgb444
from ctc.provenance import now_iso
from ctc.rates import kbps
from ctc.sequences import SequenceSpec
from ctc.store import (
    JOB_LOG,
    PER_FRAME_FILE,
    RESULT_FILE,
    config_hash,
    is_complete,
    job_dir,
    read_result,
    write_json_atomic,
)

# The config key of each role's codec section.
ROLES = {"test": "codec", "anchor": "anchor"}
# Codec settings that never change a job's numbers, so they stay out of its configuration hash.
UNHASHED_CODEC_KEYS = frozenset({"timeout_s"})
LOG_TAIL_LINES = 30


@dataclass(frozen=True)
class Job:
    role: str  # "test" or "anchor"
    codec: str
    sequence: SequenceSpec
    rate_point: int
    config_hash: str  # of what makes the bitstream; the metrics are not part of it
    device: str = "cpu"
    metric_names: tuple[str, ...] = ()

    def overrides(self) -> list[str]:
        """The Hydra overrides that select this job in a sweep's configuration."""
        return [f"job.role={self.role}", f"job.codec={self.codec}", f"job.sequence={self.sequence.name}",
                f"job.rate_point={self.rate_point}", f"job.device={self.device}"]

    def directory(self, run_dir: str | Path) -> Path:
        return job_dir(run_dir, self.codec, self.sequence.name, self.rate_point)


def job_hash(section: Mapping[str, Any], sequence: SequenceSpec, rate_point: int) -> str:
    """Hash of everything that determines a job's bitstream: not the worker count, launcher, device or
    metrics (a new metric re-scores a complete job from its bitstream; it is not coded again)."""
    codec = {key: value for key, value in section.items() if key not in UNHASHED_CODEC_KEYS}
    return config_hash({"codec": codec, "sequence": sequence.entry(), "rate_point": int(rate_point)})


def plan_jobs(sections: Mapping[str, Mapping[str, Any]], specs: Sequence[SequenceSpec],
              metric_names: Sequence[str], devices: Mapping[str, list[str]]) -> list[Job]:
    """Every (codec, sequence, rate point) of a sweep; ``devices[role]`` is cycled over that role's jobs."""
    jobs = []
    for role, section in sections.items():
        index = 0
        for spec in specs:
            for rate_point in section["rate_points"]:
                device = devices[role][index % len(devices[role])]
                index += 1
                jobs.append(Job(role, section["name"], spec, int(rate_point),
                                job_hash(section, spec, rate_point), device, tuple(metric_names)))
    return jobs


_codec_cache: dict[tuple[str, str], Codec] = {}


def cached_codec(section: Mapping[str, Any], device: str) -> Codec:
    """One codec instance per configuration and device in each worker process (models load once)."""
    key = (config_hash(section), device)
    if key not in _codec_cache:
        _codec_cache[key] = create_codec(section, device)
    return _codec_cache[key]


def run_job(job: Job, section: Mapping[str, Any], metrics: Mapping[str, Any], run_dir: str | Path,
            keep_decoded: bool = False) -> dict[str, Any]:
    """Run ``job`` and write its ``result.json``; returns the result (status ``ok`` or ``failed``)."""
    from ctc.metrics import describe_metrics, score_frames  # imports torch: load it in the workers

    spec = job.sequence
    directory = job.directory(run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    coded = _coded_before(read_result(directory), job, directory)
    (directory / RESULT_FILE).unlink(missing_ok=True)  # an old result must not look like this run's
    result: dict[str, Any] = {
        "status": "failed", "codec": job.codec, "role": job.role, "codec_version": None,
        "codec_provenance": {}, "random_weights": False, "sequence": spec.name, "seq_class": spec.seq_class,
        "rate_point": job.rate_point, "frames": spec.frames, "fps": spec.fps, "width": spec.width,
        "height": spec.height, "device": job.device, "config_hash": job.config_hash}
    logs: list[str] = []
    try:
        codec = cached_codec(section, job.device)
        provenance = codec.provenance()
        result.update(codec_version=provenance.get("version") or codec.version(), codec_provenance=provenance,
                      random_weights=bool(provenance.get("random_weights", False)))
        encoded = coded or codec.encode(spec, job.rate_point, directory)
        logs.append(encoded.log)
        decoded = codec.decode(encoded.bitstream, spec, directory)
        logs.append(decoded.log)
        _check_decoded(decoded.frames_file, spec)
        metric_device = job.device if metrics.get("device", "auto") == "auto" else metrics["device"]
        names = list(metrics["names"])
        reconstruction = read_rgb444(decoded.frames_file, spec.width, spec.height, spec.frames)
        table = score_frames(spec.read(), reconstruction, names, metric_device,
                             batch_size_for(metrics, metric_device),
                             label=f"{job.codec}/{spec.name}/{job.rate_point}")
        definitions = describe_metrics(names)
        if metrics.get("keep_per_frame", True):
            table.to_csv(directory / PER_FRAME_FILE)
        if not keep_decoded:
            decoded.frames_file.unlink()
        result.update(
            status="ok",
            bits={"total": encoded.total_bits, "parts": dict(encoded.bits)},
            encode_details=dict(encoded.details),
            kbps=kbps(encoded.total_bits, spec.frames, spec.fps),
            enc_seconds=encoded.seconds, dec_seconds=decoded.seconds,
            bitstream=encoded.bitstream.name, reused_bitstream=coded is not None,
            commands={"encode": _command_lines(encoded.commands), "decode": _command_lines(decoded.commands)},
            metrics={name: float(table[name].mean()) for name in names},
            metric_directions={name: _direction(about["lower_is_better"])
                               for name, about in definitions.items()},
            metric_definitions=definitions)
    except Exception as exc:  # recorded in result.json: one failing job never stops the others
        logs.append(traceback.format_exc())
        log = "\n".join(part for part in logs if part)
        result.update(error=f"{type(exc).__name__}: {exc}",
                      log_tail="\n".join(log.strip().splitlines()[-LOG_TAIL_LINES:]))
    result["created"] = now_iso()
    (directory / JOB_LOG).write_text("\n".join(part for part in logs if part), encoding="utf-8")
    write_json_atomic(directory / RESULT_FILE, result)
    return result


def _coded_before(previous: Mapping[str, Any] | None, job: Job, directory: Path) -> EncodeResult | None:
    """The encoding of a complete earlier result of the same job (same hash, bitstream still there),
    so that scoring it with other metrics decodes that bitstream instead of coding it again."""
    if not is_complete(previous, job.config_hash) or not previous.get("bitstream"):
        return None
    bitstream = directory / previous["bitstream"]
    if not bitstream.is_file():
        return None
    return EncodeResult(bitstream, dict(previous["bits"]["parts"]), previous["enc_seconds"],
                        previous["commands"]["encode"], log=f"reused {bitstream.name} of an earlier run",
                        details=dict(previous.get("encode_details", {})))


def _command_lines(commands: Sequence[Sequence[Any]]) -> list[list[str]]:
    return [[str(arg) for arg in command] for command in commands]


def _check_decoded(path: Path, spec: SequenceSpec) -> None:
    expected = spec.frames * spec.frame_bytes
    if not path.is_file():
        raise CodecError(f"the decoder wrote no output file {path}")
    size = path.stat().st_size
    if size != expected:
        raise CodecError(f"decoded file {path} is {size} bytes; expected {spec.frames} frames of "
                         f"{spec.description}, {expected} bytes")


def _direction(lower_is_better: bool) -> str:
    return "lower_is_better" if lower_is_better else "higher_is_better"
