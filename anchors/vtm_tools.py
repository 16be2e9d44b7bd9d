"""The VTM binaries: where they are, which version they are, and what their logs say.

The binaries are looked for, in this order, at the config's ``encoder``/``decoder`` paths, under
the config's ``vtm_dir``, under ``$VTM_DIR``, on ``PATH``, and last in the machine's tool cache
where ``make vtm`` builds them (:mod:`anchors.vtm_build`). The version comes from the binaries'
own banner (``VVCSoftware: VTM Encoder Version 22.2 ...``).

Several versions live side by side in the cache (22.2, the CTC anchor; 23.13, the reference of the
generative face video SEI), so the search is by version (:class:`VersionWanted`): the config's
``version`` exactly (the anchor's: 22.2), or at least a version (the SEI conformance code: 23.7); a
binary of another version found on the way is passed over, and refused at the end with where it was,
unless the config's ``other_version`` allows it. Explicit ``encoder``/``decoder`` paths are taken as
they are: the user asked for them.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anchors.files import VERSION_PROBE_TIMEOUT_S
from ctc.codec import CodecError
from ctc.paths import vtm_cache_dir
from ctc.tools import log_tail, run_captured

VTM_DIR_ENV = "VTM_DIR"
ENCODER_NAMES = ("EncoderAppStatic", "EncoderApp")
DECODER_NAMES = ("DecoderAppStatic", "DecoderApp")
BANNER = re.compile(r"VVCSoftware: VTM (Encoder|Decoder) Version (\d+(?:\.\d+)*)")
# VTM's closing summary, one per layer: "Total Frames |  Bitrate  Y-PSNR ..." over "16  a  24.7375 ...";
# the all-frames row is labelled "a" (layer 0) or "a<layer>"; the I/P/B-slice rows "i", "p", "b".
SUMMARY_HEADER = re.compile(r"^\s*Total Frames\s*\|(.*)$")
ALL_FRAMES_ROW = re.compile(r"a(\d*)")
SUMMARY_NAMES = {
    "Bitrate": "kbps",
    "Y-PSNR": "psnr_y",
    "U-PSNR": "psnr_u",
    "V-PSNR": "psnr_v",
    "YUV-PSNR": "psnr_yuv",
}
FORMATS = {"yuv420": "420", "rgb444": "444"}  # input_format -> InputChromaFormat


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in str(text).split("."))


def parse_summary(log: str) -> list[dict[str, float]]:
    """The all-frames row of each layer's closing summary in an EncoderApp log, layer by layer:
    ``{"layer", "frames", "kbps", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv", ...}`` (other columns
    under their own names, lower-cased)."""
    rows = []
    lines = log.splitlines()
    for header, row in zip(lines, lines[1:], strict=False):
        match = SUMMARY_HEADER.match(header)
        tokens = row.split()
        if not match or len(tokens) < 3 or not ALL_FRAMES_ROW.fullmatch(tokens[1]):
            continue
        names = [SUMMARY_NAMES.get(name, name.lower()) for name in match.group(1).split()]
        try:
            values = [float(token) for token in tokens[2:]]
            frames = int(tokens[0])
        except ValueError:
            continue
        figures = dict(zip(names, values, strict=False))
        rows.append({"layer": int(tokens[1][1:] or 0), "frames": frames, **figures})
    return sorted(rows, key=lambda found: found["layer"])


@functools.cache
def _banner_version(program: str, mtime_ns: int) -> tuple[str, str]:
    """(kind, version) from the banner that a VTM binary prints before anything else."""
    try:
        proc = run_captured([program, "--help"], VERSION_PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CodecError(f"cannot run {program} to read its VTM version: {exc}") from exc
    match = BANNER.search(proc.stdout)
    if not match:
        raise CodecError(
            f"{program} printed no VTM banner ('VVCSoftware: VTM ... Version N.N'); is it a "
            f"VTM build?\n{log_tail(proc.stdout)}"
        )
    return match.group(1), match.group(2)


def vtm_version(program: Path) -> tuple[str, str]:
    """(``Encoder`` or ``Decoder``, version) of a VTM binary, e.g. ``("Encoder", "22.2")``."""
    return _banner_version(str(program), program.stat().st_mtime_ns)


@dataclass(frozen=True)
class VersionWanted:
    """Which VTM versions a search accepts: ``exact`` (e.g. "22.2"), or ``at_least``, or any (both None)."""

    exact: str | None = None
    at_least: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> VersionWanted:
        exact = config.get("version")
        return cls(None if exact is None else str(exact))

    def accepts(self, version: str) -> bool:
        found = parse_version(version)
        if self.exact is not None and found != parse_version(self.exact):
            return False
        return self.at_least is None or found >= parse_version(self.at_least)

    def __str__(self) -> str:
        return (
            f"VTM {self.exact}"
            if self.exact is not None
            else f"VTM >= {self.at_least}"
            if self.at_least is not None
            else "any VTM"
        )


SEI_VTM = VersionWanted(at_least="23.7")  # the first VTM that writes and reads the GFV SEI (payload 223)


def _search_roots(config: Mapping[str, Any]) -> list[tuple[str, Path]]:
    roots = []
    if config.get("vtm_dir"):
        roots.append(("codec.vtm_dir", Path(config["vtm_dir"]).expanduser()))
    if os.environ.get(VTM_DIR_ENV):
        roots.append((f"${VTM_DIR_ENV}", Path(os.environ[VTM_DIR_ENV]).expanduser()))
    return roots


def cached_builds() -> list[Path]:
    """The VTM builds of ``make vtm`` in the tool cache, newest version first."""
    builds = [path for path in vtm_cache_dir().glob("VTM-*") if (path / "bin").is_dir()]
    versions = {}
    for path in builds:
        try:
            versions[path] = parse_version(path.name.removeprefix("VTM-"))
        except ValueError:
            continue
    return sorted(versions, key=versions.get, reverse=True)


def _executables_under(root: Path, names: Sequence[str]) -> Iterator[Path]:
    """``root/NAME``, ``root/bin/NAME``, then builds under ``root/bin`` (``bin/umake/.../release``)."""
    for folder in (root, root / "bin"):
        for name in names:
            if os.access(folder / name, os.X_OK) and (folder / name).is_file():
                yield folder / name
    if (root / "bin").is_dir():
        for name in names:
            found = sorted(path for path in (root / "bin").rglob(name) if os.access(path, os.X_OK))
            yield from sorted(found, key=lambda path: "release" not in path.parts)


def _candidates(config: Mapping[str, Any], names: Sequence[str]) -> Iterator[tuple[str, Path]]:
    """(where, binary) in search order: ``vtm_dir``, ``$VTM_DIR``, ``PATH``, then the build cache."""
    for label, root in _search_roots(config):
        found = next(_executables_under(root, names), None)
        if found:
            yield f"{label} = {root}", found
    for name in names:
        found = shutil.which(name)
        if found:
            yield "PATH", Path(found)
            break
    for root in cached_builds():
        found = next(_executables_under(root, names), None)
        if found:
            yield f"the build cache ({root.name})", found


def find_program(
    config: Mapping[str, Any], key: str, names: Sequence[str], wanted: VersionWanted | None = None
) -> Path:
    """The VTM binary ``names`` of the ``wanted`` version (default: the config's ``version``) from
    ``config[key]``, ``vtm_dir``, ``$VTM_DIR``, ``PATH`` or the build cache."""
    if config.get(key):
        path = Path(config[key]).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise CodecError(f"codec.{key} = {path} is not an executable file (expected VTM's {names[0]})")
        return path
    wanted = wanted or VersionWanted.from_config(config)
    others = []
    for where, program in _candidates(config, names):
        version = vtm_version(program)[1]
        if wanted.accepts(version):
            return program
        others.append((where, program, version))
    if others and config.get("other_version"):
        return others[0][1]
    looked = [label for label, _ in _search_roots(config)] + ["PATH", f"the build cache {vtm_cache_dir()}"]
    get = (
        f"`make vtm VTM_TAG=VTM-{wanted.exact}`"
        if wanted.exact
        else "`make vtm VTM_TAG=VTM-23.13` (or VTM_SRC=../shared/vtm/VVCSoftware_VTM-23.13.tar.gz)"
    )
    if others:
        found = "; ".join(f"VTM {version} at {program} ({where})" for where, program, version in others)
        raise CodecError(
            f"{wanted} not found, only {found}. Build it with {get}, or point {VTM_DIR_ENV} "
            f"or codec.vtm_dir at it, or accept the VTM found with codec.other_version=true"
        )
    raise CodecError(
        f"VTM not found: no {' or '.join(names)} in {', '.join(looked)}. Build {wanted} with "
        f"{get}, or set {VTM_DIR_ENV}=/path/to/VVCSoftware_VTM, or codec.vtm_dir, or "
        f"codec.{key}=/path/to/{names[0]}"
    )


def vtm_missing(config: Mapping[str, Any], wanted: VersionWanted | None = None) -> str | None:
    """Why VTM's encoder or decoder is not found where :func:`find_program` looks; None when both are."""
    try:
        find_program(config, "encoder", ENCODER_NAMES, wanted)
        find_program(config, "decoder", DECODER_NAMES, wanted)
    except CodecError as exc:
        return str(exc)
    return None


def find_encoder_cfg(config: Mapping[str, Any], encoder: Path) -> Path:
    """The encoder cfg file: absolute, or relative to the VTM folder (given, or above the encoder)."""
    cfg = Path(config["cfg"]).expanduser()
    if cfg.is_absolute():
        candidates = [cfg]
    else:
        roots = [root for _, root in _search_roots(config)] + list(encoder.resolve().parents)
        candidates = [root / cfg for root in roots]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise CodecError(
        f"VTM encoder config {cfg} not found (looked at {', '.join(map(str, candidates))}); "
        f"set codec.cfg to the path of VTM's encoder_lowdelay_vtm.cfg"
    )
