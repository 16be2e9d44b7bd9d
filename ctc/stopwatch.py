"""Seconds spent per named part of a piece of work (a job's wall time split, a codec's coding time split)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


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
