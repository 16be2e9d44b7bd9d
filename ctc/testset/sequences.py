"""Test sequences and test sets: ``sequences.yaml`` entries as :class:`SequenceSpec`.

``load_test_set`` turns the ``testset`` config section into validated specs: it finds the set's
files (the user's folder for the CTC set, the cache for the sets the project builds itself),
builds what is missing, and checks every file's size, frame count and md5 before any job starts.
"""

from __future__ import annotations

import copy
import functools
import importlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ctc.frames import read_rgb444, rgb444_frame_bytes
from ctc.hashing import file_digest
from ctc.paths import PROJECT_ROOT, cache_dir

SEQUENCES_FILE = PROJECT_ROOT / "sequences.yaml"
SEQUENCES_ENV = "GFVC_SEQUENCES"  # folder of the external (CTC) sequences when testset.root is unset
COLOR_FORMATS = {"rgb444": "planar RGB 4:4:4"}
SET_KEYS = {"description", "root", "build", "file", "defaults", "sequences"}
FILE_KEYS = {"file_template", "test_sets"}
SPEC_KEYS = {"name", "class", "file", "width", "height", "frames", "fps", "color_format", "bit_depth", "md5"}
REQUIRED_KEYS = ("name", "class", "file", "width", "height", "frames", "fps")


class SequenceError(ValueError):
    """A test set, sequence or sequence file is not what ``sequences.yaml`` declares."""


@dataclass(frozen=True)
class SequenceSpec:
    """One test sequence: where its raw file is and what it must contain."""

    name: str
    seq_class: str
    file: str
    width: int
    height: int
    frames: int
    fps: float
    color_format: str = "rgb444"  # planar R, G, B per frame
    bit_depth: int = 8
    md5: str | None = None
    root: Path = Path(".")
    # the entry's other keys: how a built sequence is made (generator motion, source clip)
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def path(self) -> Path:
        return Path(self.root) / self.file

    @property
    def frame_bytes(self) -> int:
        return rgb444_frame_bytes(self.width, self.height, self.bit_depth)

    @property
    def description(self) -> str:
        """What one frame is, for messages: ``256x256 8-bit planar RGB 4:4:4``."""
        return f"{self.width}x{self.height} {self.bit_depth}-bit {COLOR_FORMATS[self.color_format]}"

    def read(self) -> np.ndarray:
        """The declared frames as ``(N, 3, H, W)``, memory-mapped."""
        return read_rgb444(self.path, self.width, self.height, self.frames, self.bit_depth)

    def entry(self) -> dict[str, Any]:
        """The spec as a ``sequences.yaml`` entry (file name and all fields spelled out)."""
        fields = {
            "name": self.name,
            "class": self.seq_class,
            "file": self.file,
            "width": self.width,
            "height": self.height,
            "frames": self.frames,
            "fps": self.fps,
            "color_format": self.color_format,
            "bit_depth": self.bit_depth,
        }
        if self.md5:
            fields["md5"] = self.md5
        return {**fields, **self.extra}


def read_test_sets(sequences_file: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The test-set definitions of ``sequences_file`` (default: the project's ``sequences.yaml``).

    Each set's ``file`` template defaults to the file's top-level ``file_template``.
    """
    path, document = _read_sequences_file(sequences_file)
    sets = document.get("test_sets")
    if not isinstance(sets, dict) or not sets:
        raise SequenceError(f"sequences file {path} has no 'test_sets' mapping")
    for name, definition in sets.items():
        unknown = set(definition or {}) - SET_KEYS
        if unknown:
            raise SequenceError(
                f"test set {name} in {path} has unknown keys {sorted(unknown)} "
                f"(expected some of {sorted(SET_KEYS)})"
            )
        sets[name] = {"file": document.get("file_template"), **(definition or {})}
    return sets


def canonical_file_name(fields: Mapping[str, Any], sequences_file: str | Path | None = None) -> str:
    """The file name that the ``file_template`` of ``sequences.yaml`` gives a sequence's fields."""
    path, document = _read_sequences_file(sequences_file)
    if not document.get("file_template"):
        raise SequenceError(f"sequences file {path} has no 'file_template'")
    return _file_name(document["file_template"], fields, str(path))


def _read_sequences_file(sequences_file: str | Path | None) -> tuple[Path, dict[str, Any]]:
    path = Path(sequences_file) if sequences_file else SEQUENCES_FILE
    try:
        document = copy.deepcopy(_parse_yaml(path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise SequenceError(f"sequences file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise SequenceError(f"sequences file {path} is not valid YAML: {exc}") from exc
    if not isinstance(document, dict) or set(document) - FILE_KEYS:
        raise SequenceError(f"sequences file {path} must be a mapping with the keys {sorted(FILE_KEYS)}")
    return path, document


@functools.lru_cache(maxsize=8)
def _parse_yaml(text: str) -> Any:
    """A sequences file's content parsed once per process (keyed by the content itself, so an edited file
    is parsed again): every task of a sweep reads the file, and parsing it took most of a task's setup."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _file_name(template: str, fields: Mapping[str, Any], where: str) -> str:
    fps = fields.get("fps")
    if isinstance(fps, float) and fps.is_integer():
        fields = {**fields, "fps": int(fps)}
    try:
        return template.format(**fields)
    except KeyError as exc:
        raise SequenceError(
            f"{where}: file template {template!r} needs field {exc}, which entry {fields.get('name')!r} lacks"
        ) from None


def declared_specs(
    name: str, sequences_file: str | Path | None = None, root: str | Path | None = None
) -> list[SequenceSpec]:
    """The specs of test set ``name`` as declared, without building or checking any file."""
    sets = read_test_sets(sequences_file)
    if name not in sets:
        raise SequenceError(f"unknown test set {name!r}; known test sets: {', '.join(sets)}")
    definition = sets[name]
    folder = _set_root(name, definition, root)
    return [_spec(name, definition, entry, folder) for entry in definition.get("sequences") or []]


def load_test_set(config: Mapping[str, Any]) -> list[SequenceSpec]:
    """Validated specs of the test set that the ``testset`` config section selects.

    Keys: ``name``; optional ``root`` (folder of the files), ``sequences`` (names to keep),
    ``frames`` (use only the first N frames: each spec's ``frames`` becomes at most N and a file
    needs to hold only those), ``sequences_file``. Sets with a ``build`` entry are built into the
    cache when their files are missing or stale. Raises :class:`SequenceError` with one clear message.
    """
    name = config["name"]
    sets = read_test_sets(config.get("sequences_file"))
    specs = _select(
        declared_specs(name, config.get("sequences_file"), config.get("root")), config.get("sequences"), name
    )
    limit = config.get("frames")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise SequenceError(f"testset.frames must be a positive whole number of frames, not {limit!r}")
    build = sets[name].get("build")
    if build:
        _build_missing_or_stale(specs, build, limit if build.get("partial") else None)
    for spec in specs:
        validate_sequence(spec, limit)
    return [replace(spec, frames=min(limit, spec.frames)) if limit else spec for spec in specs]


def validate_sequence(spec: SequenceSpec, frames: int | None = None) -> None:
    """Check that ``spec``'s file exists, holds whole frames, enough of them, and matches its md5.

    ``frames`` lowers the number of frames the file must hold (a run on the first N frames).
    """
    needed = spec.frames if frames is None else min(frames, spec.frames)
    expected = f"expected {spec.frames} frames of {spec.description}, {spec.frames * spec.frame_bytes} bytes"
    try:
        size = spec.path.stat().st_size
    except FileNotFoundError:
        raise SequenceError(f"sequence {spec.name}: file {spec.path} does not exist; {expected}") from None
    if size % spec.frame_bytes:
        raise SequenceError(
            f"sequence {spec.name}: file {spec.path} is {size} bytes, not a whole number of "
            f"{spec.frame_bytes}-byte frames ({spec.description}); {expected}"
        )
    if size // spec.frame_bytes < needed:
        raise SequenceError(
            f"sequence {spec.name}: file {spec.path} holds {size // spec.frame_bytes} "
            f"frames, fewer than the {needed} needed; {expected}"
        )
    if spec.md5:
        actual = file_digest(spec.path)
        if actual != spec.md5.lower():
            raise SequenceError(
                f"sequence {spec.name}: file {spec.path} has md5 {actual}, expected "
                f"{spec.md5} (sequences.yaml); the file is not the declared sequence"
            )


def _set_root(name: str, definition: Mapping[str, Any], root: str | Path | None) -> Path:
    chosen = root or definition.get("root")
    if chosen:
        return Path(chosen).expanduser()
    if definition.get("build"):
        return cache_dir() / "testsets" / name
    if os.environ.get(SEQUENCES_ENV):
        return Path(os.environ[SEQUENCES_ENV]).expanduser()
    raise SequenceError(
        f"test set {name} needs the folder that holds its files: set testset.root=FOLDER "
        f"or the environment variable {SEQUENCES_ENV}"
    )


def _spec(set_name: str, definition: Mapping[str, Any], entry: Mapping[str, Any], root: Path) -> SequenceSpec:
    fields = {"color_format": "rgb444", "bit_depth": 8, **(definition.get("defaults") or {}), **entry}
    if "file" not in fields and definition.get("file"):
        fields["file"] = _file_name(definition["file"], fields, f"test set {set_name}")
    missing = [key for key in REQUIRED_KEYS if fields.get(key) is None]
    if missing:
        raise SequenceError(f"test set {set_name}: entry {entry.get('name')!r} lacks {', '.join(missing)}")
    color_format = fields["color_format"]
    if color_format not in COLOR_FORMATS:
        raise SequenceError(
            f"sequence {fields['name']}: color format {color_format!r} is not supported "
            f"(expected one of {', '.join(COLOR_FORMATS)})"
        )
    return SequenceSpec(
        name=str(fields["name"]),
        seq_class=str(fields["class"]),
        file=str(fields["file"]),
        width=int(fields["width"]),
        height=int(fields["height"]),
        frames=int(fields["frames"]),
        fps=float(fields["fps"]),
        color_format=color_format,
        bit_depth=int(fields["bit_depth"]),
        md5=fields.get("md5") or None,
        root=root,
        extra={key: value for key, value in entry.items() if key not in SPEC_KEYS},
    )


def _select(
    specs: list[SequenceSpec], names: str | Iterable[str] | None, set_name: str
) -> list[SequenceSpec]:
    if names is None:
        return specs
    wanted = [part.strip() for part in names.split(",")] if isinstance(names, str) else list(names)
    by_name = {spec.name: spec for spec in specs}
    if not wanted:
        raise SequenceError(
            f"testset.sequences selects no sequence of test set {set_name}; "
            f"known sequences: {', '.join(by_name)}"
        )
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        raise SequenceError(
            f"unknown sequence {', '.join(map(str, unknown))} in test set {set_name}; "
            f"known sequences: {', '.join(by_name)}"
        )
    return [by_name[name] for name in wanted]


def _build_missing_or_stale(specs: list[SequenceSpec], build: Mapping[str, Any], frames: int | None) -> None:
    """Build the files that are missing or fail their checks with the set's ``build`` module: all frames,
    or (a ``partial`` set, run on its first ``frames``) those only."""
    stale = []
    for spec in specs:
        try:
            validate_sequence(spec, frames)
        except SequenceError:
            stale.append(spec if frames is None else replace(spec, frames=min(frames, spec.frames)))
    if stale:
        builder = importlib.import_module(build["module"])
        builder.build_sequences(stale, build)
