"""The decoded frames of a finished job, to look at: the kept decoded file, else its bitstream decoded again.

A sweep deletes each job's decoded file unless ``keep_decoded`` is set; the bitstream stays. The
codec is rebuilt from the configuration its sweep recorded (``<run>/<codec>/provenance.json``),
and only when what it resolves to now (:mod:`ctc.identity`: binaries, weights, key-frame codec)
and the sequence give the job's own identity hash, so the frames are the ones that were scored.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctc.codec import Codec, codec_class, create_codec
from ctc.devices import resolve_device
from ctc.frames import read_rgb444
from ctc.identity import changes, codec_identity, identity_hash, job_identity, sequence_identity
from ctc.results import ResultStatus, read_result
from ctc.store import PER_FRAME_FILE, PROVENANCE_FILE, job_dir
from ctc.testset.sequences import SequenceError, SequenceSpec, load_test_set

DECODED_SUFFIX = "_decoded.rgb"
DECODED_AGAIN = "bitstream decoded again"  # a JobFrames source


class RedecodeError(RuntimeError):
    """A job's frames cannot be had; the message names the job and says why."""


@dataclass
class JobFrames:
    frames: np.ndarray  # (N, 3, H, W) uint8
    per_frame: pd.DataFrame | None  # the job's per-frame metrics (per_frame.csv), one row per frame
    source: str  # "kept decoded file" or "bitstream decoded again"


class RunFrames:
    """Original and decoded frames of one run's jobs; test-set specs and codecs are built once."""

    def __init__(self, run_dir: str | Path, device: str = "auto") -> None:
        self.run_dir = Path(run_dir)
        self.device = device
        provenance = _read_json(self.run_dir / PROVENANCE_FILE) or {}
        self.testset = dict((provenance.get("config") or {}).get("testset") or {})
        self._specs: dict[tuple[str, int], SequenceSpec] = {}
        self._codecs: dict[str, tuple[Codec, dict[str, Any]]] = {}

    def spec(self, sequence: str, frames: int) -> SequenceSpec:
        """The sequence as its jobs coded it: the run's test set, its first ``frames`` frames."""
        key = (sequence, frames)
        if key not in self._specs:
            if not self.testset.get("name"):
                raise RedecodeError(
                    f"{self.run_dir / PROVENANCE_FILE} names no test set: cannot find "
                    f"the original of {sequence}"
                )
            try:
                (spec,) = load_test_set({**self.testset, "sequences": [sequence], "frames": frames})
            except SequenceError as error:
                raise RedecodeError(f"the original of {sequence}: {error}") from error
            self._specs[key] = spec
        return self._specs[key]

    def original(self, sequence: str, frames: int) -> np.ndarray:
        return self.spec(sequence, frames).read()

    def job(self, codec: str, sequence: str, rate_point: Any) -> JobFrames:
        """The decoded frames of one job, and its per-frame metrics."""
        directory = job_dir(self.run_dir, codec, sequence, rate_point)
        result = read_result(directory)
        if not result or result.get("status") != ResultStatus.OK:
            raise RedecodeError(f"{directory}: no complete result")
        spec = self.spec(sequence, int(result["frames"]))
        per_frame = _read_per_frame(directory / PER_FRAME_FILE)
        expected = spec.frames * spec.frame_bytes
        kept = [path for path in directory.glob(f"*{DECODED_SUFFIX}") if path.stat().st_size == expected]
        if kept:
            frames = np.array(read_rgb444(kept[0], spec.width, spec.height, spec.frames))
            return JobFrames(frames, per_frame, "kept decoded file")
        return JobFrames(self._decode(codec, directory, result, spec), per_frame, DECODED_AGAIN)

    def _decode(
        self, codec_name: str, directory: Path, result: Mapping[str, Any], spec: SequenceSpec
    ) -> np.ndarray:
        bitstream = directory / str(result.get("bitstream") or "")
        if not result.get("bitstream") or not bitstream.is_file():
            raise RedecodeError(
                f"{directory}: the bitstream {result.get('bitstream')!r} is gone and no decoded file was kept"
            )
        section = (_read_json(self.run_dir / codec_name / PROVENANCE_FILE) or {}).get("codec_config")
        if not section:
            raise RedecodeError(
                f"{self.run_dir / codec_name / PROVENANCE_FILE} records no codec_config: "
                f"cannot decode {bitstream} again"
            )
        codec, resolved = self._codec(section)
        identity = job_identity(resolved, sequence_identity(spec), result["rate_point"])
        if identity_hash(identity) != result.get("config_hash"):
            why = "; ".join(changes(result.get("identity") or {}, identity)[:3]) or "another identity hash"
            raise RedecodeError(
                f"{directory}: {codec_name} is not set up now as it was for this job "
                f"({why}); its bitstream is not decoded with another setup"
            )
        with tempfile.TemporaryDirectory(prefix="ctc-redecode-") as workdir:
            # a copy: decoders write beside their input, where another process may be decoding it too
            copy = Path(shutil.copy2(bitstream, workdir))
            decoded = codec.decode(copy, spec, Path(workdir))
            return np.array(read_rgb444(decoded.frames_file, spec.width, spec.height, spec.frames))

    def _codec(self, section: Mapping[str, Any]) -> tuple[Codec, dict[str, Any]]:
        """The codec of ``section`` on this device, and what it resolves to now (its identity)."""
        name = str(section["name"])
        if name not in self._codecs:
            device = resolve_device(self.device) if codec_class(section).uses_gpu else "cpu"
            self._codecs[name] = (create_codec(section, device), codec_identity(section))
        return self._codecs[name]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def _read_per_frame(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path, index_col=0)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return None
