"""MRDAC's reference policy: which frames become references, when each is coded, and which
references animate every other frame (upstream ``test.py:mr_animation_coder``).

Frame 0 is a reference, and the frame ``gop_size`` ahead is coded at once (look-ahead). Each time
playback reaches a reference, the next one, ``gop_size`` further (at most the last frame), is coded
ahead, unless the last one coded lies within ``search_window`` + 1 frames of the end. Every other
frame is animated from all references in the buffer, past and look-ahead (so prediction is
bi-directional), weighted by distance when ``use_weights``.

Where we differ from upstream: the buffer holds at most ``max_references`` (upstream's config says 4
and its code keeps every reference); when a new reference would exceed it, ``eviction`` drops
``oldest`` (the earliest reference) or ``keep_first`` (the earliest but frame 0, kept as a long-term
reference). ``null`` keeps every reference, as upstream does. The plan covers exactly the frames
coded (upstream looks ahead over the whole video, whatever ``num_frames`` says), and a one-frame
sequence codes frame 0 once (upstream codes it twice).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EVICTIONS = ("oldest", "keep_first")


@dataclass(frozen=True)
class ReferencePlan:
    """``references``: positions in coding order; ``coded_at``: the playback position at which each is
    coded; ``in_use``: per frame, the references (buffer order) animating it, empty for a reference."""

    references: list[int]
    coded_at: dict[int, int]
    in_use: list[list[int]]

    @property
    def inter_frames(self) -> list[int]:
        return [index for index, refs in enumerate(self.in_use) if refs]


@dataclass(frozen=True)
class ReferencePolicy:
    """A codec config's ``references`` section (every key set there: ``ctc/conf/codec/mrdac.yaml``)."""

    gop_size: int
    search_window: int
    max_references: int | None  # None: never evict
    eviction: str
    use_weights: bool

    @classmethod
    def from_config(cls, config: Mapping[str, Any], owner: str) -> ReferencePolicy:
        section = config["references"]
        gop, window = int(section["gop_size"]), int(section["search_window"])
        limit = section["max_references"]
        eviction = str(section["eviction"])
        if gop < 1:
            raise ValueError(f"{owner}: references.gop_size {gop}: expected a positive number of frames")
        if window < 0:
            raise ValueError(f"{owner}: references.search_window {window}: expected 0 or more frames")
        if limit is not None and int(limit) < 2:
            raise ValueError(
                f"{owner}: references.max_references {limit}: expected 2 or more (the "
                "current and the look-ahead reference) or null (never evict)"
            )
        if eviction not in EVICTIONS:
            raise ValueError(f"{owner}: references.eviction {eviction!r}: expected one of {EVICTIONS}")
        return cls(
            gop,
            window,
            None if limit is None else int(limit),
            eviction,
            bool(section["use_weights"]),
        )

    def _evict(self, buffer: list[int]) -> None:
        if self.max_references is None or len(buffer) <= self.max_references:
            return
        if self.eviction == "keep_first" and buffer[0] == 0:
            del buffer[1]
        else:
            del buffer[0]

    def plan(self, frame_count: int) -> ReferencePlan:
        """The plan for a sequence of ``frame_count`` frames."""
        buffer: list[int] = []
        coded_at: dict[int, int] = {}
        in_use: list[list[int]] = []

        def add(position: int, now: int) -> None:
            coded_at[position] = now
            buffer.append(position)
            self._evict(buffer)

        next_reference = last_coded = 0
        for index in range(frame_count):
            if index == 0:
                add(0, 0)
                last_coded = min(frame_count - 1, self.gop_size)
                if last_coded != 0:
                    add(last_coded, 0)
                    next_reference = last_coded
                in_use.append([])
            elif index == next_reference:
                in_use.append([])
                if last_coded < frame_count - self.search_window - 1:
                    last_coded = min(last_coded + self.gop_size, frame_count - 1)
                    if last_coded not in coded_at:
                        add(last_coded, index)
                        next_reference = last_coded
            else:
                in_use.append(list(buffer))
        return ReferencePlan(list(coded_at), coded_at, in_use)
