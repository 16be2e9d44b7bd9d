"""Seconds spent per named part of a piece of work (a job's wall time split, a codec's coding time split)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any


class Stopwatch:
    """Adds up the seconds spent inside ``with clock("part"):`` blocks, per part."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self._seconds: dict[str, float] = {}

    def elapsed(self) -> float:
        """Seconds since the stopwatch was made."""
        return time.perf_counter() - self.started

    @contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self._seconds[part] = self._seconds.get(part, 0.0) + time.perf_counter() - start

    def take(self) -> dict[str, float]:
        """The seconds per part so far (rounded to the millisecond), and start again from zero."""
        seconds = {part: round(value, 3) for part, value in self._seconds.items()}
        self._seconds.clear()
        return seconds

    def timing(self, splits: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
        """Where a job's wall time went (docs/costs.md), and start again from zero: ``wall_s`` since the
        stopwatch was made, the seconds of each part (``lock_wait``, ``codec_setup``, ``encode``,
        ``decode``, ``scoring``, ``io``; ``other``: the rest), and ``splits``, each stage's own split
        where its codec reports one (a GFVC codec's ``encode``: key_frame, features, generation, io)."""
        wall = self.elapsed()
        seconds = self.take()
        timing: dict[str, Any] = {"wall_s": round(wall, 3)}
        timing.update((f"{part}_s", value) for part, value in seconds.items())
        timing["other_s"] = round(max(0.0, wall - sum(seconds.values())), 3)
        timing.update((f"{stage}_split_s", dict(split)) for stage, split in splits.items() if split)
        return timing
