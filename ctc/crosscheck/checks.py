"""One job of a package checked here: decoded again, its md5, rate and metrics compared with the package's.

Before anything is decoded, the package is refused when a file is missing or altered (its manifest)
and a reference sequence is missing or is not the one the package names (md5). Then every job's
bitstream is decoded with the local harness (the codec configuration the package recorded, with its
key-frame or base-layer codec pinned as resolved and the weights of ``--weights``), and checked:

- the decoded output's md5 equals the package's (a GFVC codec's weights must have the package's
  sha256 first: other weights cannot give its pictures, so they fail without decoding);
- the bits per part, counted again from the bitstream file, and so ``kbps``, equal the package's;
- every metric, computed again from the decoded output against the local reference sequence, is
  within :data:`TOLERANCES` of the package's value, frame by frame.

A job whose decoder this machine lacks (a missing binary or checkpoint) is "not checked", not failed.
The BD tables are recomputed from the recomputed numbers (:mod:`ctc.crosscheck.tables`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctc.codec import CodecError, codec_class, create_codec
from ctc.devices import batch_size_for, resolve_device
from ctc.frames import read_rgb444
from ctc.hashing import compute_digest
from ctc.identity import changes, codec_identity
from ctc.package import INDEX_FILE, JOB_FILE, PackageError, verify_manifest
from ctc.rates import kbps
from ctc.store import PER_FRAME_FILE
from ctc.testset.sequences import SequenceError, SequenceSpec, declared_specs, validate_sequence

PASS, FAIL, NOT_CHECKED = "pass", "fail", "not checked"
# Per-frame tolerance (absolute, the metric's unit) of a metric computed again on another machine.
# PSNRs are float64 sums of integer errors: only the summation order can differ (1e-9 dB is a
# thousand times above that rounding). DISTS, LPIPS, SSIM and the other float32 metrics: 1e-4, the
# DISTS authors' published tolerance, 100 times above the differences measured here between batch
# sizes and thread counts (tests/test_crosscheck.py).
EXACT_METRICS = ("psnr", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "psnr_gfvc", "psnr_yuv420_gfvc")
TOLERANCES = {**dict.fromkeys(EXACT_METRICS, 1e-9), "default": 1e-4}
# Codec config sections that the package's identity records as resolved on the proposer's machine:
# pinned, so that a local "auto" (VTM when found, else vvenc) cannot pick another key-frame codec.
RESOLVED_SECTIONS = {"intra": "key_frame_codec", "base": "base_layer_codec"}
# Identity entries that name where weights sit, not which: the weights' sha256 ("weights") decides.
LOCATION_KEYS = ("config.weights", "config.model.checkpoint")


def tolerance(metric: str) -> float:
    return TOLERANCES.get(metric, TOLERANCES["default"])


@dataclass
class JobCheck:
    codec: str
    sequence: str
    rate_point: str
    verdict: str = NOT_CHECKED
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)  # the package's job.json
    recomputed: dict[str, Any] = field(default_factory=dict)  # kbps, bits, metrics, decoded_md5 here

    def row(self) -> dict[str, Any]:
        return {
            "codec": self.codec,
            "sequence": self.sequence,
            "rate_point": self.rate_point,
            "verdict": self.verdict,
            "reason": self.reason,
            "notes": "; ".join(self.notes),
            "package_md5": self.record.get("decoded_md5"),
            "local_md5": self.recomputed.get("decoded_md5"),
            "package_kbps": self.record.get("kbps"),
            "local_kbps": self.recomputed.get("kbps"),
            **{f"max_diff_{name}": value for name, value in self.recomputed.get("max_diff", {}).items()},
        }


def open_package(path: Path, workdir: Path) -> Path:
    """The package folder (a zip is unpacked into ``workdir``), its manifest verified."""
    if not path.exists():
        raise PackageError(f"package {path} does not exist")
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise PackageError(f"package {path} is neither a folder nor a zip file")
        with zipfile.ZipFile(path) as archive:
            archive.extractall(workdir)
        tops = [child for child in workdir.iterdir() if child.is_dir()]
        if len(tops) != 1:
            raise PackageError(f"package {path} must hold one top folder, holds {len(tops)}")
        path = tops[0]
    verify_manifest(path)
    return path


def reference_specs(
    index: Mapping[str, Any], sequences_dir: Path | None, frames: Mapping[str, int]
) -> dict[str, SequenceSpec]:
    """The local reference sequences, each checked against the package's md5 before anything is decoded."""
    if sequences_dir is None:
        try:
            sequences_dir = declared_specs(str(index["testset"]))[0].root
        except (SequenceError, IndexError) as error:
            raise PackageError(
                f"where are the reference sequences? pass --sequences FOLDER ({error})"
            ) from None
    specs = {}
    for name, about in index["sequences"].items():
        spec = SequenceSpec(
            name=name,
            seq_class=str(about["class"]),
            file=str(about["file"]),
            width=int(about["width"]),
            height=int(about["height"]),
            frames=int(frames[name]),
            fps=float(about["fps"]),
            color_format=str(about["color_format"]),
            bit_depth=int(about["bit_depth"]),
            md5=str(about["file_md5"]),
            root=sequences_dir,
        )
        try:
            validate_sequence(spec)
        except SequenceError as error:
            raise PackageError(
                f"reference sequence refused before decoding: {error}".replace(
                    "(sequences.yaml)", "(the package)"
                )
            ) from None
        specs[name] = spec
    return specs


def decoder_section(codec: Mapping[str, Any], weights_dir: Path | None) -> tuple[dict[str, Any], str | None]:
    """The package's codec configuration for this machine: resolved sections pinned, the weights the
    package names looked up in ``weights_dir``; or why this machine cannot decode it."""
    section = dict(codec["codec_config"])
    identity = codec["identity"]
    for key, resolved in RESOLVED_SECTIONS.items():
        if resolved in identity:
            section[key] = identity[resolved]["config"]
    weights = str(identity.get("weights", ""))
    if weights.startswith("random"):
        section["weights"] = "random"
    elif " sha256 " in weights:
        file_name = weights.split(" sha256 ")[0]
        if weights_dir is None or not (weights_dir / file_name).is_file():
            return section, f"weights {weights} not found (--weights {weights_dir or 'not given'})"
        section["weights"] = str(weights_dir / file_name)
    return section, None


def compare_identity(package: Mapping[str, Any], local: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """A reason to fail (other weights) and notes (other binaries' versions: the md5 decides)."""
    found = [change for change in changes(package, local) if not change.startswith(LOCATION_KEYS)]
    weights = [change for change in found if change.startswith("weights:")]
    if weights:
        return (
            f"other weights here: package {package.get('weights')}, local {local.get('weights')}",
            [change for change in found if change not in weights],
        )
    return None, found


def check_job(
    check: JobCheck,
    folder: Path,
    codec: Any,
    spec: SequenceSpec,
    metrics: Sequence[str],
    device: str,
    workdir: Path,
) -> None:
    """Decode one job's bitstream and compare what it gives with the package's numbers."""
    record = check.record
    bitstream = folder / str(record["bitstream"])
    copy = Path(shutil.copy2(bitstream, workdir / bitstream.name))
    try:
        decoded = codec.decode(copy, spec, workdir)
    except Exception as error:  # the decoder's refusal is this job's verdict, not the cross-check's end
        check.verdict = FAIL
        check.reason = f"the decoder refused the bitstream: {type(error).__name__}: {error}"
        return
    md5 = compute_digest(decoded.frames_file, "md5")
    parts = codec.count_bits(bitstream, spec)
    container = sum(bits for part, bits in parts.items() if part in type(codec).container_bit_parts)
    rate = kbps(sum(parts.values()) - container, spec.frames, spec.fps)
    check.recomputed.update(decoded_md5=md5, bits={"total": sum(parts.values()), "parts": parts}, kbps=rate)
    reasons = []
    if md5 != record["decoded_md5"]:
        reasons.append(f"decoded md5 differs: package {record['decoded_md5']}, local {md5}")
    if parts != record["bits"]["parts"] or rate != record["kbps"]:
        reasons.append(
            f"rate differs: package {record['kbps']} kbps {record['bits']['parts']}, "
            f"local {rate} kbps {parts}"
        )
    from ctc.metrics import MetricError, metric_config, score_frames, sequence_values  # torch: when decoding
    from ctc.metrics.weights import WeightsError

    frames = np.array(read_rgb444(decoded.frames_file, spec.width, spec.height, spec.frames))
    try:
        table = score_frames(
            spec.read(),
            frames,
            list(metrics),
            device,
            batch_size_for(metric_config("ctc"), device),
            label=f"{check.codec}/{check.sequence}/{check.rate_point}",
        )
    except (MetricError, WeightsError) as error:  # a metric this machine cannot compute: not a failure
        check.verdict = FAIL if reasons else NOT_CHECKED
        check.reason = "; ".join([*reasons, f"metrics not computed here: {error}"])
        return
    check.recomputed["metrics"] = sequence_values(table)
    check.recomputed["max_diff"] = {}
    package_frames = _per_frame(folder, record, metrics)
    for name in metrics:
        expected = package_frames[name].to_numpy(np.float64)
        difference = float(np.max(np.abs(table[name].to_numpy(np.float64) - expected)))
        check.recomputed["max_diff"][name] = difference
        if not difference <= tolerance(name):
            reasons.append(
                f"{name} differs by up to {difference:.3g} in a frame (tolerance {tolerance(name):g})"
            )
    check.verdict, check.reason = (FAIL, "; ".join(reasons)) if reasons else (PASS, "")


def _per_frame(folder: Path, record: Mapping[str, Any], metrics: Sequence[str]) -> pd.DataFrame:
    """The package's per-frame values, or its sequence means where the run kept no per-frame file."""
    path = folder / PER_FRAME_FILE
    if path.is_file():
        return pd.read_csv(path, index_col=0)
    return pd.DataFrame({name: [record["metrics"][name]] * int(record["frames"]) for name in metrics})


def local_decoder(
    codec: Mapping[str, Any], weights_dir: Path | None, device: str | None, job_device: str
) -> tuple[Any, str, str, list[str]]:
    """This machine's decoder of a package's codec: (the codec or None, the verdict of its jobs when
    there is none, why, notes on how it differs from the proposer's)."""
    section, missing = decoder_section(codec, weights_dir)
    try:
        missing = missing or codec_class(section).missing(section)
        local = None if missing else codec_identity(section)
    except (CodecError, KeyError) as error:
        missing, local = f"{type(error).__name__}: {error}", None
    if missing:
        return None, NOT_CHECKED, f"no decoder here: {missing}", []
    failure, notes = compare_identity(codec["identity"], local)
    if failure:
        return None, FAIL, failure, notes
    # a GFVC model's pictures are bit-exact on one kind of device: by default the one its jobs ran on
    chosen = device or ("cpu" if job_device == "cpu" else "auto")
    try:
        decoder = create_codec(section, resolve_device(chosen) if codec_class(section).uses_gpu else "cpu")
    except (CodecError, OSError, RuntimeError) as error:
        return None, NOT_CHECKED, f"the decoder cannot be built here: {error}", notes
    return decoder, "", "", notes


def check_package(
    package: Path, weights_dir: Path | None, sequences_dir: Path | None, device: str | None = None
) -> tuple[dict[str, Any], list[JobCheck]]:
    """Every job of the verified package ``package`` checked here; the package's index and the checks.
    ``device``: where GFVC decoders and metrics run (default: a GFVC codec's jobs' own kind of device)."""
    index = json.loads((package / INDEX_FILE).read_text(encoding="utf-8"))
    checks = []
    for job in index["jobs"]:
        record = json.loads((package / job / JOB_FILE).read_text(encoding="utf-8"))
        checks.append(JobCheck(record["codec"], record["sequence"], str(record["rate_point"]), record=record))
    frames = {check.sequence: int(check.record["frames"]) for check in checks}
    specs = reference_specs(index, sequences_dir, frames)  # refused here, before any decoding
    metrics = list(index["metrics"])
    metrics_device = resolve_device(device or "auto")
    for name, about in index["codecs"].items():
        codec_checks = [check for check in checks if check.codec == name]
        job_device = str(codec_checks[0].record.get("device", "cpu")) if codec_checks else "cpu"
        decoder, verdict, reason, notes = local_decoder(about, weights_dir, device, job_device)
        for check in codec_checks:
            check.notes += notes
            if decoder is None:
                check.verdict, check.reason = verdict, reason
                continue
            with tempfile.TemporaryDirectory(prefix="ctc-crosscheck-") as workdir:
                check_job(
                    check,
                    package / "jobs" / check.codec / check.sequence / check.rate_point,
                    decoder,
                    specs[check.sequence],
                    metrics,
                    metrics_device,
                    Path(workdir),
                )
            print(
                f"{check.codec}/{check.sequence}/{check.rate_point}: {check.verdict}"
                + (f" ({check.reason})" if check.reason else ""),
                flush=True,
            )
    return index, checks
