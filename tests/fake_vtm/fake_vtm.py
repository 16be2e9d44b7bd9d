"""A stand-in for VTM's EncoderApp and DecoderApp that checks its command line like VTM would.

The tests copy ``EncoderApp`` and ``DecoderApp`` (thin scripts calling :func:`encoder_main` and
:func:`decoder_main`) into a temporary VTM folder. The "bitstream" is the input, each sample shifted
right by a QP-dependent amount and zlib-compressed, so rate falls and error grows with QP, and the
decoder's output is a plausible lossy copy of the input. ``FAKE_VTM_MODE`` makes the encoder
misbehave: ``crash``, ``hang``, ``empty`` (exit 0 without a bitstream) or ``short`` (a summary
with one frame fewer).
"""

from __future__ import annotations

import json
import os
import sys
import time
import zlib

import numpy as np

MAGIC = b"FAKEVVC\0"
REQUIRED = ("InputFile", "BitstreamFile", "SourceWidth", "SourceHeight", "FrameRate", "FramesToBeEncoded",
            "QP", "InputChromaFormat", "InputBitDepth")
CTC = {"IntraPeriod": "-1", "GOPSize": "8", "IntraQPOffset": "0", "InternalBitDepth": "8", "Level": "2.1"}
TO_GBR, TO_RGB = [1, 2, 0], [2, 0, 1]  # plane orders of RGBtoGBR and GBRtoRGB


def start(kind: str, version: str) -> list[str]:
    """Print VTM's banner; print the usage and exit as VTM does without arguments or with --help."""
    print(f"\nVVCSoftware: VTM {kind} Version {version} [Linux][GCC 13.2.0][64 bit] [SIMD=AVX2] ", flush=True)
    argv = sys.argv[1:]
    if not argv or "--help" in argv:
        print(f"Usage: {kind}App [options]")
        sys.exit(1)
    return argv


def fail(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
    sys.exit(1)


def parse(argv: list[str], short: dict[str, str]) -> dict[str, str]:
    """``--Name=value`` and the given short options (``-c FILE``) as {Name: value}."""
    options, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and "=" in arg:
            name, value = arg[2:].split("=", 1)
            options[name] = value
            i += 1
        elif arg in short and i + 1 < len(argv):
            options[short[arg]] = argv[i + 1]
            i += 2
        else:
            fail(f'Error parsing option "{arg}" with argument "".')
    return options


def planes(width: int, height: int, chroma: str) -> list[tuple[int, int]]:
    if chroma == "444":
        return [(height, width)] * 3
    return [(height, width), (height // 2, width // 2), (height // 2, width // 2)]


def encoder_main(version: str) -> None:
    argv = start("Encoder", version)
    opts = parse(argv, {"-c": "cfg"})
    if not os.path.isfile(opts.get("cfg", "")):
        fail(f"Failed to open config file {opts.get('cfg')}")
    for name in REQUIRED:
        if name not in opts:
            fail(f"fake VTM: missing --{name}")
    for name, value in CTC.items():
        if opts.get(name) != value:
            fail(f"fake VTM: CTC option --{name} is {opts.get(name)!r}, expected {value}")
    width, height, count = int(opts["SourceWidth"]), int(opts["SourceHeight"]), int(opts["FramesToBeEncoded"])
    chroma, qp = opts["InputChromaFormat"], int(opts["QP"])
    rgb = chroma == "444"
    if rgb and opts.get("InputColourSpaceConvert") != "RGBtoGBR":
        fail("fake VTM: 4:4:4 RGB input needs --InputColourSpaceConvert=RGBtoGBR")
    if chroma not in ("420", "444") or opts["InputBitDepth"] != "8":
        fail(f"fake VTM: unsupported input {chroma} at {opts['InputBitDepth']} bits")
    shapes = planes(width, height, chroma)
    frame_size = sum(h * w for h, w in shapes)
    data = np.fromfile(opts["InputFile"], np.uint8)
    if data.size < count * frame_size:
        fail(f"fake VTM: {opts['InputFile']} is too short for {count} frames")
    mode = os.environ.get("FAKE_VTM_MODE", "")
    if mode == "crash":
        print("terminate called after throwing an instance of 'Exception'", flush=True)
        os.abort()
    if mode == "hang":
        time.sleep(600)
    frames = data[:count * frame_size].reshape(count, frame_size)
    if rgb:  # code G, B, R as VTM does after RGBtoGBR
        frames = frames.reshape(count, 3, -1)[:, TO_GBR].reshape(count, frame_size)
    shift = max(0, (qp - 20) // 8)
    coded = frames >> shift
    header = json.dumps({"width": width, "height": height, "frames": count, "chroma": chroma,
                         "shift": shift}).encode()
    stream = MAGIC + len(header).to_bytes(4, "little") + header + zlib.compress(coded.tobytes(), 9)
    for poc in range(count):
        kind = "IDR_N_LP, I-SLICE" if poc == 0 else "TRAIL, B-SLICE"
        print(f"POC {poc:5d} LId:  0 TId: 0 ( {kind}, nQP {qp} QP {qp} ) {8 * len(stream) // count:10d} bits")
    if mode != "empty":
        with open(opts["BitstreamFile"], "wb") as out:
            out.write(stream)
    if opts.get("ReconFile"):
        reconstruct(coded, shift).tofile(opts["ReconFile"])
    kbps = 8 * len(stream) / 1000 * float(opts["FrameRate"]) / count
    reported = count - 1 if mode == "short" else count
    print("\n\nSUMMARY --------------------------------------------------------")
    print("\tTotal Frames |   Bitrate     Y-PSNR    U-PSNR    V-PSNR    YUV-PSNR ")
    print(f"\t {reported:8d}    a {kbps:12.4f}   40.0000   41.0000   42.0000   40.3750")
    print(f"\n Total Time: {0.01:12.3f} sec. [user] {0.01:12.3f} sec. [elapsed]")


def reconstruct(coded: np.ndarray, shift: int) -> np.ndarray:
    half = (1 << shift) >> 1
    return np.minimum((coded.astype(np.uint16) << shift) + half, 255).astype(np.uint8)


def decoder_main(version: str) -> None:
    argv = start("Decoder", version)
    opts = parse(argv, {"-b": "BitstreamFile", "-o": "ReconFile", "-d": "OutputBitDepth"})
    if opts.get("OutputBitDepth") != "8":
        fail("fake VTM: expected -d 8")
    with open(opts["BitstreamFile"], "rb") as stream_file:
        stream = stream_file.read()
    if not stream.startswith(MAGIC):
        fail(f"fake VTM: {opts['BitstreamFile']} is not a bitstream")
    size = int.from_bytes(stream[8:12], "little")
    header = json.loads(stream[12:12 + size])
    count = header["frames"]
    frames = reconstruct(np.frombuffer(zlib.decompress(stream[12 + size:]), np.uint8), header["shift"])
    if opts.get("OutputColourSpaceConvert") == "GBRtoRGB":
        frames = frames.reshape(count, 3, -1)[:, TO_RGB]
    for poc in range(count):
        print(f"POC {poc:5d} LId:  0 TId: 0 ( {'IDR_N_LP, I-SLICE' if poc == 0 else 'TRAIL, B-SLICE'} )")
    frames.tofile(opts["ReconFile"])
    print(f" Total Time: {0.01:12.3f} sec.")
