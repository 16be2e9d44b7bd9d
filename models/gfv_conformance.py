"""Checking a GFV SEI stream against the reference software: VTM 23.13's decoder and its SEI dump.

``DecoderAppStatic -b STREAM.266 -o OUT.yuv --OutputDecodedSEIMessagesFilename=DUMP`` decodes the key
pictures and writes every SEI syntax element it parses, by name and value, one per line
(``  <name right-aligned in 55 columns>: <value>``), each message under a ``<name> SEI message
(<size> bytes)`` title. :func:`read_dump` reads the generative face video messages back;
:func:`syntax_elements` keeps the elements VTM read from the stream (not the values it derives and
prints besides), to be compared one by one with the trace of our reader
(:func:`models.sei_parse.parse_gfv`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from anchors.vtm_tools import DECODER_NAMES, SEI_VTM, find_program
from ctc.tools import run_tool
from models.sei import PAYLOAD_TYPE as GFV_PAYLOAD
from models.sei import GfvState
from models.sei_gfve import GfveState, parse_gfve
from models.sei_nal import SUFFIX_SEI_NUT, nal_type, parse_sei_nal, split_annexb
from models.sei_parse import parse_gfv

GFV_TITLE = "Generative face video"
GFVE_TITLE = "Generative face video enhancement"
_TITLE = re.compile(r"^(.+) SEI message \((\d+) bytes\)$")
# printed by VTM's reader besides the elements it reads: the reconstructed tensors, and the chroma key
# values and thresholds it infers (printed after the ones read, when any are read)
DERIVED = (
    "gfv_coordinate_Xtensor",
    "gfv_coordinate_Ytensor",
    "gfv_coordinate_Ztensor",
    "gfv_MatrixElement",
    "gfv_chroma_key_value",
    "gfveMatrixNumber",
    "gfveMatrixWidthXHeight",
    "gfveMatrixElement",
    "gfve_PupilCoordinate",
)
DERIVED_THRESHOLDS = ("gfv_chroma_key_thr_lower", "gfv_chroma_key_thr_upper_delta_minus1")


@dataclass
class DumpedMessage:
    title: str
    size: int
    lines: list[tuple[str, str]] = field(default_factory=list)  # (name, value text) in order

    def floats(self, name: str) -> list[float]:
        """A reconstructed tensor VTM printed (``gfv_coordinate_Xtensor``, ``gfv_MatrixElement`` ...)."""
        (text,) = [value for key, value in self.lines if key == name]
        return [float(token) for token in text.split()]


def read_dump(text: str, title: str = GFV_TITLE) -> list[DumpedMessage]:
    """The messages titled ``title`` (default: generative face video) of a VTM SEI dump, in order."""
    messages: list[DumpedMessage] = []
    current: DumpedMessage | None = None
    for line in text.splitlines():
        heading = _TITLE.match(line.strip())
        if heading:
            current = DumpedMessage(heading.group(1), int(heading.group(2)))
            messages.append(current)
        elif current is not None and ": " in line and not set(line.strip()) <= {"-"}:
            name, _, value = line.partition(": ")
            current.lines.append((name.strip(), value.strip()))
    return [message for message in messages if message.title == title]


def _bare(name: str) -> str:
    return re.sub(r"\[.*?\]", "", name).strip()


def syntax_elements(message: DumpedMessage) -> list[tuple[str, str]]:
    """The elements VTM's reader read, names without their ``[ i ]`` indices, values as printed."""
    lines = [(name, value) for name, value in message.lines if name not in DERIVED]
    for derived in DERIVED_THRESHOLDS:  # the inferred thresholds come last
        positions = [i for i, (name, _) in enumerate(lines) if name == derived]
        if positions and any(
            name == "gfv_chroma_key_info_present_flag" and value == "1" for name, value in lines
        ):
            del lines[positions[-1]]
    return [(_bare(name), value) for name, value in lines]


def our_syntax_elements(
    stream: bytes, source: str, payload_type: int = GFV_PAYLOAD
) -> list[list[tuple[str, str]]]:
    """Per GFV (or, payload type 224, GFVE) message of a ``.266`` stream, the elements our reader reads,
    as :func:`syntax_elements`."""
    parse, state = (parse_gfv, GfvState()) if payload_type == GFV_PAYLOAD else (parse_gfve, GfveState())
    out = []
    for unit in split_annexb(stream, source):
        if nal_type(unit) != SUFFIX_SEI_NUT:
            continue
        for message in parse_sei_nal(unit):
            if message.payload_type == payload_type:
                trace: list = []
                parse(message.payload, state, trace)
                out.append([(_bare(name), str(value)) for name, value in trace])
    return out


def vtm_sei_dump(
    stream: Path, workdir: Path, decoder: Path | None = None, timeout_s: float = 600
) -> tuple[str, Path]:
    """Decode ``stream`` with VTM >= 23.7 (found by version, :data:`anchors.vtm_tools.SEI_VTM`); returns
    (the SEI dump's text, the decoded YUV file). VTM exits non-zero on a stream it cannot decode."""
    decoder = decoder or find_program({}, "decoder", DECODER_NAMES, SEI_VTM)
    workdir.mkdir(parents=True, exist_ok=True)
    dump, output = workdir / f"{stream.stem}_sei.txt", workdir / f"{stream.stem}_vtm.yuv"
    run_tool(
        [
            str(decoder),
            "-b",
            str(stream),
            "-o",
            str(output),
            "-d",
            "8",
            f"--OutputDecodedSEIMessagesFilename={dump}",
        ],
        timeout_s,
        cwd=workdir,
    )
    return dump.read_text(errors="replace"), output
