"""``make bench``'s job costs: where a job's time goes, per codec type, and the per-frame costs that
``ctc-run --plan`` estimates with (written to ``<cache>/bench/costs.yaml``, :mod:`ctc.sweep.costs`).

Each codec codes one demo sequence at two rate points in one ``ctc-run`` process (``launcher=basic``,
one worker: what a worker of a sweep does, codec built once for both jobs).
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.cli import Figure, run_ctc
from ctc.provenance import now_iso
from ctc.results import iter_results
from ctc.sweep.costs import measured_costs_path

FRAMES = 8
CODECS = {  # codec -> its overrides: one of each type (plain binary, library, GFVC on random weights)
    "x265": ["codec=x265", "codec.rate_points=[32,42]"],
    "vvenc": ["codec=vvenc", "codec.rate_points=[32,42]"],
    "cfte": ["codec=cfte", "codec.rate_points=[32,42]", "picture_codec@codec.intra=vvenc"],
}
PARTS = ("lock_wait_s", "codec_setup_s", "encode_s", "decode_s", "io_s", "other_s")
# The harness's cost per job: two x265 sweeps of one-frame jobs (the default launcher, one worker: no job
# waits for a core) that differ only in their number of jobs; the difference of their walls, less that of
# their jobs' own, is what each further job costs the harness.
FEW_RATE_POINTS, MANY_RATE_POINTS = [37, 42], list(range(12, 52))
# What a cluster task's own Python process imports before its job starts: submitit (which runs the task),
# the task and executor modules, a conventional codec's module (a GFVC model's import is in its job).
TASK_MODULES = ("submitit", "ctc.slurm.executor", "ctc.sweep.tasks", "anchors.x265")
TASK_IMPORTS = f"import {', '.join(TASK_MODULES)}"


def bench_job_split() -> list[Figure]:
    """Per codec: each part of a job's wall time per frame, the codec's own split of EncT/DecT, the
    harness outside the jobs (process start, configuration, plan, scoring); writes the CPU seconds per
    frame to the cache for ``--plan``."""
    figures, measured = [], {}
    for codec, overrides in CODECS.items():
        with tempfile.TemporaryDirectory() as folder:
            args = [
                *overrides,
                "anchor=none",
                "testset=demo",
                f"testset.frames={FRAMES}",
                "testset.sequences=[DEMO_001]",
                "metrics=psnr",
                "launcher=basic",
                "report=false",
                f"results_dir={folder}",
                "run=bench",
            ]
            wall = run_ctc(args)
            results = [result for _, result in iter_results(Path(folder) / "bench")]
        frames = sum(int(result["frames"]) for result in results)
        coding = sum(result["timing"]["encode_s"] + result["timing"]["decode_s"] for result in results)
        measured[codec] = {
            "cpu_s": round(coding / frames, 4),
            "frames_per_job": FRAMES,
            "measured": now_iso(),
            "note": "encode + decode seconds per frame, one worker (its threads: cores / 2)",
        }
        figures += _split(codec, results, frames, wall)
    overhead = _harness_per_job()
    figures.append(
        Figure(
            "harness per job (CPU)",
            overhead,
            "s",
            note=f"x265, {len(MANY_RATE_POINTS)} vs {len(FEW_RATE_POINTS)} one-frame jobs, one worker",
        )
    )
    start = import_seconds(TASK_IMPORTS)
    figures.append(
        Figure("a cluster task's start", start, "s", note=f"python -c '{TASK_IMPORTS}', best of 3")
    )
    update_measured(
        {
            "coding": measured,
            "job_overhead_s": {
                "cpu_s": round(overhead, 3),
                "measured": now_iso(),
                "note": "CPU seconds per job outside it",
            },
            "task_start_s": {
                "seconds": round(start, 3),
                "measured": now_iso(),
                "note": "a cluster task's process before its job",
            },
        }
    )
    return figures


def update_measured(entries: dict[str, Any]) -> None:
    """Write ``entries`` into ``<cache>/bench/costs.yaml``, over what is there (``coding`` codec by codec)."""
    path = measured_costs_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    old = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}
    if "coding" in entries:
        entries = {**entries, "coding": {**(old.get("coding") or {}), **entries["coding"]}}
    path.write_text(yaml.safe_dump({**old, **entries}, sort_keys=False), encoding="utf-8")


def import_seconds(code: str) -> float:
    """Seconds a fresh Python process takes to run ``code`` (imports), the shortest of 3 runs."""
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        best = min(best, time.perf_counter() - start)
    return best


def _harness_per_job() -> float:
    """CPU seconds the harness spends per job outside it: the extra wall of a sweep with more jobs, less
    its jobs' own extra wall, per extra job."""
    walls, in_jobs = [], []
    for rate_points in (FEW_RATE_POINTS, MANY_RATE_POINTS):
        with tempfile.TemporaryDirectory() as folder:
            walls.append(
                run_ctc(
                    [
                        "codec=x265",
                        f"codec.rate_points=[{','.join(map(str, rate_points))}]",
                        "anchor=none",
                        "testset=demo",
                        "testset.frames=1",
                        "testset.sequences=[DEMO_001]",
                        "metrics=psnr",
                        "jobs=1",
                        "report=false",
                        f"results_dir={folder}",
                        "run=bench",
                    ]
                )
            )
            in_jobs.append(sum(float(r["timing"]["wall_s"]) for _, r in iter_results(Path(folder) / "bench")))
    extra_jobs = len(MANY_RATE_POINTS) - len(FEW_RATE_POINTS)
    return max(0.0, (walls[1] - walls[0]) - (in_jobs[1] - in_jobs[0])) / extra_jobs


def _split(codec: str, results: list[dict[str, Any]], frames: int, wall: float) -> list[Figure]:
    note = f"{len(results)} jobs of {FRAMES} frames, one worker"
    figures = []
    for part in PARTS:
        seconds = sum(float(result["timing"].get(part, 0.0)) for result in results)
        figures.append(Figure(f"{codec} job: {part[:-2]} per frame", seconds / frames, "s", note=note))
    for stage in ("encode", "decode"):
        split: dict[str, float] = {}
        for result in results:
            for part, seconds in (result["timing"].get(f"{stage}_split_s") or {}).items():
                split[part] = split.get(part, 0.0) + seconds
        figures += [
            Figure(f"{codec} {stage}: {part} per frame", seconds / frames, "s", note=note)
            for part, seconds in split.items()
        ]
    in_jobs = sum(float(result["timing"]["wall_s"]) for result in results)
    figures.append(
        Figure(
            f"{codec}: harness outside the jobs",
            wall - in_jobs,
            "s",
            note="process start, configuration, plan, scoring tasks, summary",
        )
    )
    return figures
