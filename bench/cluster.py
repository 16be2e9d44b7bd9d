"""``make bench``'s cluster costs, measured where a SLURM cluster answers (``sinfo``): what a task costs
around its job, the figures ``ctc-run --plan`` estimates a SLURM sweep's wall time with.

One array of no-op tasks goes in the way the sweep submits its own (submitit, one CPU each, two at a
time). Accounting's times (whole seconds) give the queue (submission to the first start) and each
round's cost: one task's start (its process, the task modules' imports) and the wait until the cluster
starts the next one (slurmctld's scheduling). Each task imports what a coding task imports before its
job; a scoring task imports the metrics as well, and torch (measured apart, ``python -c``).
"""

from __future__ import annotations

import importlib
import math
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.cli import Figure
from bench.job_split import TASK_IMPORTS, TASK_MODULES, import_seconds, update_measured
from ctc.provenance import now_iso
from ctc.slurm.commands import SlurmCommandError, run_command
from ctc.sweep.executors import submitit_executor

TASKS, AT_ONCE = 8, 2
# What a scoring task imports beyond a coding task's: the metrics (every built-in one registers itself).
SCORING_IMPORTS = "import ctc.metrics; ctc.metrics.metric_class('psnr')"
ANSWER_S = 10  # how long sinfo or sacct may take to answer


def bench_cluster() -> list[Figure]:
    """The queue, the cost of a round of tasks, and a scoring task's extra start, on the cluster that
    SLURM's commands reach; none when no cluster answers."""
    try:
        run_command(["sinfo", "--noheader"], ANSWER_S)
    except SlurmCommandError as exc:
        print(f"bench: no SLURM cluster answers ({exc}): cluster costs not measured", file=sys.stderr)
        return []
    with tempfile.TemporaryDirectory(dir=Path.home()) as folder:  # on a file system the nodes share
        settings = {
            "submitit_folder": folder,
            "name": "ctc-bench",
            "cpus_per_task": 1,
            "mem_gb": 1,
            "timeout_min": 10,
            "array_parallelism": AT_ONCE,
        }
        jobs = submitit_executor("slurm", settings).map_array(_run_no_op, range(TASKS))
        for job in jobs:
            job.result()
        times = _accounted_times(jobs[0].job_id.split("_")[0])
    submitted = min(row[0] for row in times)
    starts, ends = sorted(row[1] for row in times), sorted(row[2] for row in times)
    queue = starts[0] - submitted
    rounds = math.ceil(TASKS / AT_ONCE)
    per_round = (ends[-1] - starts[0]) / rounds
    scoring_extra = max(
        0.0, import_seconds(f"{TASK_IMPORTS}; {SCORING_IMPORTS}") - import_seconds(TASK_IMPORTS)
    )
    update_measured(
        {
            "slurm": {
                "queue_s": round(queue, 1),
                "round_s": round(per_round, 2),
                "scoring_start_extra_s": round(scoring_extra, 3),
                "measured": now_iso(),
                "note": f"{TASKS} no-op tasks, {AT_ONCE} at a time, on the cluster sinfo answered for",
            }
        }
    )
    note = f"{TASKS} no-op tasks, {AT_ONCE} at a time; accounting's whole seconds"
    return [
        Figure("cluster: queue before an array's first task", queue, "s", note=note),
        Figure("cluster: a round of tasks (start and dispatch)", per_round, "s", note=note),
        Figure(
            "cluster: a scoring task's start beyond a coding task's",
            scoring_extra,
            "s",
            note=f"python -c '{SCORING_IMPORTS}', best of 3",
        ),
    ]


def _run_no_op(index: int) -> int:
    """A coding task's imports, and no job."""
    for module in TASK_MODULES:
        importlib.import_module(module)
    return index


def _accounted_times(array: str) -> list[tuple[float, float, float]]:
    """(submitted, started, ended) of each task of ``array``, as accounting has them (it may lag the
    tasks' end by a few seconds)."""
    for _ in range(30):
        listing = run_command(
            ["sacct", "--noheader", "--parsable2", "-X", "--format=Submit,Start,End", f"--jobs={array}"],
            ANSWER_S,
        )
        rows = [line.split("|") for line in listing.splitlines() if line.strip()]
        if len(rows) == TASKS and all("Unknown" not in row[2] for row in rows):
            return [tuple(datetime.fromisoformat(value).timestamp() for value in row) for row in rows]
        time.sleep(1)
    raise RuntimeError(f"accounting has no complete record of the bench's array {array} after 30 s")
