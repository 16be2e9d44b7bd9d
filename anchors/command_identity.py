"""What makes an external binary's bitstreams: the binary's bytes, its exact command lines, its inputs.

A conventional codec's identity (:meth:`ctc.codec.Codec.identity`) is not its Python wrapper: a
refactored wrapper that runs the same binary with the same arguments on the same input redoes none of
the anchor's (hours of) jobs, while a rebuilt binary that prints the same version does. So the identity
holds each binary's sha256, the command lines with the per-job values as placeholders (``{input}``,
``{bitstream}``, ``{qp}``, ...; programs and cfg files by name, their content hashed beside), and the
fingerprint of the harness code that prepares the input pictures (:mod:`ctc.frames`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ctc.fingerprint import code_fingerprint
from ctc.hashing import file_digest

# Two QPs every anchor takes: the tokens where their command lines differ carry the QP.
TEMPLATE_QPS = (30, 31)
# The per-job values of a command template.
INPUT, BITSTREAM, RECON, OUTPUT = (Path(f"{{{name}}}") for name in ("input", "bitstream", "recon", "output"))
WIDTH, HEIGHT, FRAMES, FPS = "{width}", "{height}", "{frames}", "{fps}"
INPUT_CODE_MODULES = ("ctc.frames",)


def program_digest(program: str | Path) -> str:
    """``EncoderAppStatic sha256 …``: a binary by its bytes (remembered by size and mtime)."""
    return f"{Path(program).name} sha256 {file_digest(program, 'sha256')}"


def command_template(build: Callable[[int], Sequence[str | Path]], files: Sequence[str | Path]) -> list[str]:
    """The command line ``build(qp)`` makes, as an identity: the QP as ``{qp}``, each of ``files``
    (programs, cfg files) by its name alone, so the same command on another machine is the same."""
    first, second = ([str(arg) for arg in build(qp)] for qp in TEMPLATE_QPS)
    names = {str(path): Path(path).name for path in files}
    template = []
    for token, other in zip(first, second, strict=True):
        token = token.replace(str(TEMPLATE_QPS[0]), "{qp}") if token != other else token
        for path, name in names.items():
            token = token.replace(path, name)
        template.append(token)
    return template


def binary_identity(
    programs: Mapping[str, str | Path],
    encode: Callable[[int], Sequence[str | Path]],
    decode: Sequence[str | Path],
    files: Sequence[str | Path] = (),
) -> dict[str, Any]:
    """The identity of a codec run as ``programs`` (role -> binary) with these command lines."""
    shown = [*programs.values(), *files]
    return {
        "binaries": {role: program_digest(path) for role, path in programs.items()},
        "encode_command": command_template(encode, shown),
        "decode_command": command_template(lambda qp: decode, shown),
        "input_code": code_fingerprint(INPUT_CODE_MODULES),
    }
