"""The ``sei`` mode's bitstream: one Annex-B VVC stream (``.266``) of key pictures and GFV SEI messages.

Each GOP is one access unit of the stream: its key picture, coded by a VVC codec (VTM or vvenc, each
key picture an IDR picture with its own parameter sets), then, after the picture's coded slices,
one suffix SEI NAL unit per GFV message (``gfv_cnt`` 0: the key picture's own features, the base
picture; ``gfv_cnt`` n: the GOP's n-th generated frame), as VTM 23.13 places the messages it writes.
A VVC decoder decodes the key pictures and skips the SEI; VTM 23.13's decoder also parses it.

Frame count and positions follow from the messages (a GOP of n frames carries n messages); the
frame size is the sequence's, as for every decoder of the harness. Nothing else is in the file.

Rate: ``key_frame`` = the key pictures' NAL units as the VVC codec wrote them, ``features`` = the GFV
SEI NAL units with their start codes, as they stand in the stream; they add up to the file.
"""

from __future__ import annotations

from models.bitstream import BitstreamError, GfvcBitstream
from models.sei import PAYLOAD_TYPE, GfvState
from models.sei_nal import (
    START_CODE,
    SUFFIX_SEI_NUT,
    VCL_TYPES,
    SeiError,
    annexb,
    nal_type,
    parse_sei_nal,
    split_annexb,
)
from models.sei_parse import parse_gfv

VVC_KEY_FRAME_CODECS = ("vtm", "vvenc")
SUFFIX = ".266"
SEI_START_CODE_BITS = 8 * len(START_CODE)


def _is_gfv(unit: bytes) -> bool:
    return nal_type(unit) == SUFFIX_SEI_NUT and any(
        m.payload_type == PAYLOAD_TYPE for m in parse_sei_nal(unit)
    )


def pack(stream: GfvcBitstream) -> bytes:
    """The ``.266`` file: per GOP the key picture, its GFV suffix SEI NAL units after its slices."""
    if stream.layers or stream.frame_layers:
        raise ValueError(
            f"a GFV SEI stream carries key pictures and features only, not {stream.model}'s "
            f"layers {sorted(stream.layers) + sorted(stream.frame_layers)}"
        )
    out = []
    for start, end in stream.gops():
        picture = stream.key_frames[start]
        units = split_annexb(picture, f"key picture {start}")
        last_vcl = max((i for i, unit in enumerate(units) if nal_type(unit) in VCL_TYPES), default=None)
        if last_vcl is None:
            raise ValueError(f"key picture {start} holds no coded slice")
        # after the slices (and any suffix NAL units the codec wrote), before an end of sequence/bitstream
        cut = len(units)
        while cut > last_vcl + 1 and nal_type(units[cut - 1]) in (21, 22):
            cut -= 1
        head = picture[: _offset_of(picture, units, cut)]
        out += [
            head,
            b"".join(START_CODE + unit for unit in stream.payloads[start:end]),
            picture[len(head) :],
        ]
    return b"".join(out)


def _offset_of(data: bytes, units: list[bytes], index: int) -> int:
    """Where unit ``index`` (its start code) begins in ``data``; ``len(data)`` past the last one."""
    pos = 0
    for unit in units[:index]:
        pos = data.index(unit, pos) + len(unit)
    if index == len(units):
        return len(data)
    start = data.index(units[index], pos)
    return start - (4 if data[start - 4 : start] == b"\x00\x00\x00\x01" else 3)


def bit_parts(stream: GfvcBitstream) -> dict[str, int]:
    """Bits of the key pictures and of the GFV SEI NAL units (start codes included): the file's bits."""
    features = sum(8 * len(unit) + SEI_START_CODE_BITS for unit in stream.payloads)
    return {"header": 0, "key_frame": 8 * sum(map(len, stream.key_frames.values())), "features": features}


def unpack(data: bytes, source: str, model: str, setup_hash: bytes, width: int, height: int) -> GfvcBitstream:
    """The key pictures and GFV messages of a ``.266`` file; refuses what cannot be decoded, saying why."""
    try:
        units = split_annexb(data, source)
    except SeiError as exc:
        raise BitstreamError(str(exc)) from None
    key_frames: dict[int, bytes] = {}
    payloads: list[bytes] = []
    picture: list[bytes] = []  # NAL units of the access unit being read
    state = GfvState()
    seen_vcl = False
    gop_messages: list[bytes] = []

    def close_access_unit() -> None:
        if not seen_vcl:
            return
        if not gop_messages:
            raise BitstreamError(
                f"{source}: key picture {len(key_frames)} (access unit of frame "
                f"{len(payloads)}) carries no GFV SEI message"
            )
        key_frames[len(payloads)] = annexb(picture)
        payloads.extend(gop_messages)

    for index, unit in enumerate(units):
        try:
            kind = nal_type(unit)
            gfv = kind == SUFFIX_SEI_NUT and _is_gfv(unit)
            if gfv:
                _check_message(unit, state, seen_vcl, len(gop_messages))
        except SeiError as exc:
            raise BitstreamError(f"{source}: NAL unit {index}: {exc}") from None
        if kind in VCL_TYPES and seen_vcl and gop_messages:
            raise BitstreamError(
                f"{source}: NAL unit {index}: a coded slice after the GFV SEI messages of "
                "its access unit (one key picture per access unit expected)"
            )
        if not gfv and kind not in VCL_TYPES and kind != SUFFIX_SEI_NUT and seen_vcl:
            close_access_unit()  # a parameter set, AUD, picture header or prefix SEI: a new access unit
            picture, seen_vcl, gop_messages = [], False, []
        if gfv:
            gop_messages.append(unit)
        else:
            picture.append(unit)
            seen_vcl = seen_vcl or kind in VCL_TYPES
    close_access_unit()
    if not key_frames:
        raise BitstreamError(f"{source}: no key picture (no coded slice) in the stream")
    return GfvcBitstream(model, setup_hash, width, height, key_frames, payloads)


def _check_message(unit: bytes, state: GfvState, seen_vcl: bool, place: int) -> None:
    """A GFV message follows its key picture's slices: the base picture first, then ``gfv_cnt`` 1, 2 ..."""
    if not seen_vcl:
        raise SeiError(
            "a GFV SEI message before any key picture (the base picture's access unit must "
            "begin with its coded picture)"
        )
    (message,) = [m for m in parse_sei_nal(unit) if m.payload_type == PAYLOAD_TYPE]
    parsed = parse_gfv(message.payload, state)
    if place == 0 and not parsed.base:
        raise SeiError(
            f"the first GFV SEI message of a key picture has gfv_cnt {parsed.cnt}, "
            f"gfv_base_picture_flag {int(parsed.base)}: a base picture is expected"
        )
    if parsed.cnt != place:
        raise SeiError(f"GFV SEI message {place} of its access unit has gfv_cnt {parsed.cnt}")
