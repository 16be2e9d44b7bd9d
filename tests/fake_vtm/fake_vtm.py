"""A stand-in for VTM's EncoderApp and DecoderApp, only for what the real VTM 22.2 cannot be made to
do on demand: crash, hang, exit without a bitstream, end without its closing summary, or be another
version. Everything it prints is a line of the real VTM 22.2's own output, recorded in
``encoder_22.2.log`` and ``decoder_22.2.log`` here (the version number of the banner aside).

``FAKE_VTM_MODE`` chooses the misbehaviour: ``crash`` (the log's first lines, then abort), ``hang``,
``empty`` (the whole log, exit 0, no bitstream) or ``no-summary`` (the log up to its closing
summary, a bitstream file, exit 0). Without a mode it only answers ``--help`` (the banner) and
crashes on anything else, so no test can mistake it for a working codec.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUMMARY_START = re.compile(r"^\s*LayerId\s+\d+|^\s*Total Frames\s*\|")


def recorded(kind: str, version: str) -> list[str]:
    """The real log's lines, with the banner's version set to ``version``."""
    lines = (HERE / f"{kind.lower()}_22.2.log").read_text().splitlines()
    return [line.replace("Version 22.2", f"Version {version}") for line in lines]


def emit(lines: list[str]) -> None:
    print("\n".join(lines), flush=True)


def option(argv: list[str], name: str) -> str | None:
    for arg in argv:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def main(kind: str, version: str) -> None:
    lines = recorded(kind, version)
    banner = [line for line in lines[:4] if "VVCSoftware" in line]
    argv = sys.argv[1:]
    if "--help" in argv:
        emit(banner)
        sys.exit(1)
    mode = os.environ.get("FAKE_VTM_MODE", "crash")
    if mode == "hang":
        emit(banner)
        time.sleep(600)
    if mode == "crash":
        emit(lines[:6])
        os.abort()
    if mode == "empty":
        emit(lines)
        sys.exit(0)
    if mode == "no-summary":
        end = next(i for i, line in enumerate(lines) if SUMMARY_START.search(line))
        emit(lines[:end])
        Path(option(argv, "BitstreamFile")).write_bytes(bytes(range(64)))
        sys.exit(0)
    emit(lines[:2])
    sys.exit(1)
