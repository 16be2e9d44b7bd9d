"""Running external coding tools: locate FFmpeg and run a command with a timeout and a log."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

LOG_TAIL_LINES = 20


class CodecError(RuntimeError):
    """A codec failed (crash, timeout, empty output, missing binary); the message says which and why.

    Defined here, at the bottom, because running a coding tool is where most of them start;
    :mod:`ctc.codec` hands it on with the codec interface."""


def ffmpeg_exe() -> str:
    """The FFmpeg binary shipped in the ``imageio-ffmpeg`` wheel (built with libvvenc and libx265)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def log_tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_captured(
    argv: Sequence[str], timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with its stdout and stderr together as one text (undecodable bytes replaced),
    whatever its exit status; raises what :func:`subprocess.run` raises (not found, timed out)."""
    return subprocess.run(
        argv,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=timeout,
        check=False,
    )


def run_tool(
    command: Sequence[str | Path], timeout: float, log_path: Path | None = None, cwd: Path | None = None
) -> tuple[str, float]:
    """Run ``command``; return (its combined output, seconds).

    Raises :class:`CodecError` naming the program when it cannot be started, exits non-zero or
    runs past ``timeout`` seconds; the message carries the tail of its output.
    """
    argv = [str(part) for part in command]
    start = time.perf_counter()
    try:
        proc = run_captured(argv, timeout, cwd)
    except FileNotFoundError as exc:
        raise CodecError(f"cannot run {argv[0]}: {exc.strerror}") from exc
    except subprocess.TimeoutExpired as exc:
        output = exc.output if isinstance(exc.output, str) else (exc.output or b"").decode(errors="replace")
        _write_log(log_path, argv, output)
        raise CodecError(f"{Path(argv[0]).name} timed out after {timeout:g} s\n{log_tail(output)}") from exc
    seconds = time.perf_counter() - start
    _write_log(log_path, argv, proc.stdout)
    if proc.returncode != 0:
        name = Path(argv[0]).name
        raise CodecError(f"{name} exited with status {proc.returncode}\n{log_tail(proc.stdout)}")
    return proc.stdout, seconds


def _write_log(log_path: Path | None, argv: list[str], output: str) -> None:
    if log_path is not None:
        with open(log_path, "a", encoding="utf-8") as log:
            log.write("$ " + " ".join(argv) + "\n" + output + "\n")
