"""The decoded files a sweep keeps for its report page, so that the page never decodes them again.

The page (:mod:`ctc.report.showcase`) shows the first ``comparisons.max_sequences`` sequences of the run (or
``comparisons.sequences``), which the test set fixes before anything runs. The scoring of those
sequences keeps their decoded files; once the page is written, the files this sweep kept for it alone
are removed (``keep_decoded=true`` keeps every file, as before). The disk this costs at its peak: the
decoded files of those sequences, every codec and rate point (4 sequences x 250 frames of 256x256
RGB: about 49 MB per version).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ctc.jobs import Job
from ctc.report.comparisons import ComparisonError, choose_sequences
from ctc.results import ResultStatus, read_result

if TYPE_CHECKING:
    from ctc.sweep.plan import SweepPlan


def page_sequences(plan: SweepPlan) -> set[str]:
    """The sequences whose decoded versions the report page of ``plan``'s sweep will show (none when the
    sweep writes no page, no comparisons, or keeps every decoded file anyway)."""
    settings = plan.settings
    page = settings.get("report_page") or {}
    comparisons = page.get("comparisons") or {}
    if (
        settings.get("keep_decoded")
        or not settings.get("report", True)
        or "anchor" not in plan.sections
        or not page.get("enabled", True)
        or not comparisons.get("enabled", True)
    ):
        return set()
    order = [spec.name for spec in plan.specs]
    classes = {spec.name: spec.seq_class for spec in plan.specs}
    try:
        return set(
            choose_sequences(
                order, classes, comparisons.get("sequences"), int(comparisons.get("max_sequences", 4))
            )
        )
    except ComparisonError:
        return set()  # the page says what is wrong with its settings


def release_page_frames(jobs: Iterable[Job], run_dir: Path, sequences: set[str]) -> int:
    """Remove the decoded files that this sweep's ``jobs`` of ``sequences`` kept for the page; returns
    how many."""
    removed = 0
    for job in jobs:
        if job.sequence.name not in sequences:
            continue
        directory = job.directory(run_dir)
        result = read_result(directory) or {}
        if (
            result.get("status") == ResultStatus.OK
            and result.get("config_hash") == job.identity_hash
            and result.get("decoded_file")
        ):
            path = directory / str(result["decoded_file"])
            if path.is_file():
                path.unlink()
                removed += 1
    return removed
