"""Speed of the metric stage in a sweep: per-job scoring (before) and per-sequence scoring (now), side
by side in one run, on the demo main command limited to a few frames.

1. ``ctc-run codec=x265 testset=demo testset.frames=N`` twice from scratch, ``scoring=job`` (each job
   scores its own decoded file, as every job once did) and ``scoring=sequence``: whole
   process times, their ratio, and the largest difference between the two runs' ``per_frame.csv``.
2. On the decoded files of the first run (their first frames), in this process: the scoring alone,
   a job at a time against all versions of a sequence at once, and the VGG passes per scored frame.
3. Two workers scoring at once with torch's default threads each (more threads than cores) and with
   the cores shared out between them, as the sweep now does.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.cli import Figure, best_of, run_ctc
from bench.metrics import synthetic_pair
from ctc.devices import cpu_threads
from ctc.frames import read_rgb444
from ctc.metrics import get_metric, metric_set, score_frames, score_versions
from ctc.results import load_results
from ctc.store import PER_FRAME_FILE
from ctc.testset.sequences import load_test_set

BENCH_FRAMES = 4  # of each demo sequence: 16 jobs x 4 frames (a 2-core machine scores about 1 frame/s)
SCORING_FRAMES = 2  # of those, scored again in this process
PERCEPTUAL = ("dists", "lpips")


def bench_sweep_scoring(frames: int = BENCH_FRAMES) -> list[Figure]:
    names = metric_set("ctc")
    with tempfile.TemporaryDirectory() as folder:
        common = [
            "codec=x265",
            "testset=demo",
            f"testset.frames={frames}",
            f"results_dir={folder}",
            "report=false",
        ]
        before_s = run_ctc([*common, "run=job", "scoring=job", "keep_decoded=true"])
        after_s = run_ctc([*common, "run=sequence", "scoring=sequence"])
        runs = {run: load_results(Path(folder, run)) for run in ("job", "sequence")}
        difference = max(_per_frame_difference(Path(folder), row, names) for row in runs["job"].itertuples())
        scoring = _scoring_alone(Path(folder, "job"), runs["job"], min(frames, SCORING_FRAMES), names)
    setting = f"demo, 2 sequences x {frames} frames, x265 + vvenc x 4 rate points, metrics {'+'.join(names)}"
    return [
        Figure("demo sweep, scoring in each job (before)", before_s, "s", note=f"{setting}; whole ctc-run"),
        Figure("demo sweep, scoring per sequence (now)", after_s, "s", note=f"{setting}; whole ctc-run"),
        Figure("demo sweep time, now / before", after_s / before_s, "x", "<= 0.5", setting),
        Figure(
            "per-frame values, largest |now - before|",
            difference,
            "",
            "<= 1e-6",
            "every metric, frame and job",
        ),
        *scoring,
        *_convolution_floor(names),
        *_oversubscription(),
        *_gpu_figures(),
    ]


def _per_frame_difference(folder: Path, row: object, names: list[str]) -> float:
    tables = [
        pd.read_csv(folder / run / row.codec / row.sequence / str(row.rate_point) / PER_FRAME_FILE)
        for run in ("job", "sequence")
    ]
    return float(np.abs(tables[0][names].to_numpy() - tables[1][names].to_numpy()).max())


def _scoring_alone(run_dir: Path, results: pd.DataFrame, frames: int, names: list[str]) -> list[Figure]:
    """The two ways of scoring on the same decoded files, timed and with their backbone passes counted."""
    perceptual = [get_metric(name) for name in PERCEPTUAL if name in names]
    by_sequence = {}
    for spec in load_test_set({"name": "demo", "frames": frames}):
        rows = results[results.sequence == spec.name]
        folders = [run_dir / row.codec / spec.name / str(row.rate_point) for row in rows.itertuples()]
        decoded = [
            read_rgb444(next(folder.glob("*_decoded.rgb")), spec.width, spec.height, frames)
            for folder in folders
        ]
        by_sequence[spec.name] = (spec.read(), decoded)
    scored = sum(len(decoded) * frames for _, decoded in by_sequence.values())
    figures, seconds = [], {}
    for method in ("a job at a time", "a sequence at a time"):
        passes = sum(metric.backbone_frames for metric in perceptual)
        start = time.perf_counter()
        for reference, decoded in by_sequence.values():
            if method == "a job at a time":
                for version in decoded:
                    score_frames(reference, version, names, "cpu", 2)
            else:
                score_versions(reference, decoded, names, "cpu", 2)
        seconds[method] = time.perf_counter() - start
        passes = sum(metric.backbone_frames for metric in perceptual) - passes
        figures.append(
            Figure(
                f"VGG passes per scored frame, {method}",
                passes / scored,
                "",
                "<= 2.25" if method != "a job at a time" else "",
                f"DISTS + LPIPS backbone passes / {scored} scored frames",
            )
        )
        figures.append(
            Figure(
                f"scoring the sweep's decoded files {method}",
                seconds[method],
                "s",
                note=f"one process, {cpu_threads()} threads, networks built beforehand",
            )
        )
    figures.append(
        Figure(
            "scoring time, a sequence / a job at a time",
            seconds["a sequence at a time"] / seconds["a job at a time"],
            "x",
            "<= 0.5625",
        )
    )
    return figures


def _convolution_floor(names: list[str], versions: int = 8) -> list[Figure]:
    """GFLOP per scored frame of a sequence's ``versions`` scored together, the machine's GFLOP/s on the
    same networks, and the seconds that makes for the metric stage of the whole demo sweep."""
    from torch.utils.flop_counter import FlopCounterMode

    reference, distorted = synthetic_pair(2, 256)
    with FlopCounterMode(display=False) as counter:
        score_versions(reference, [distorted] * versions, names, "cpu", 2)
    per_frame = counter.get_total_flops() / (versions * len(reference)) / 1e9
    with FlopCounterMode(display=False) as counter:
        score_frames(reference, distorted, names, "cpu", 2)
    seconds = best_of(lambda: score_frames(reference, distorted, names, "cpu", 2))
    speed = counter.get_total_flops() / seconds / 1e9
    demo = load_test_set({"name": "demo"})
    scored = versions * sum(spec.frames for spec in demo)
    note = f"{'+'.join(names)}, 256x256, {cpu_threads()} threads"
    return [
        Figure(
            "GFLOP per scored frame, a sequence's 8 versions together",
            per_frame,
            "GFLOP",
            note=f"{note}; a job at a time: 4 VGG16 passes = 160 GFLOP",
        ),
        Figure("this machine's speed on them (a job's frames, best of 3)", speed, "GFLOP/s", note=note),
        Figure(
            "floor of the demo sweep's metric stage at that speed",
            per_frame * scored / speed,
            "s",
            note=f"{scored} scored frames; the main command's time cannot be less",
        ),
    ]


def _score_in_worker(threads: int | None, barrier: object, frames: int) -> float:
    import torch

    if threads:
        torch.set_num_threads(threads)
    reference, distorted = synthetic_pair(frames, 256)
    names = list(PERCEPTUAL)
    score_frames(reference[:1], distorted[:1], names)  # build the networks before the clock starts
    barrier.wait()
    start = time.perf_counter()
    score_frames(reference, distorted, names, "cpu", 2)
    return time.perf_counter() - start


def _oversubscription(frames: int = 4) -> list[Figure]:
    """Two workers scoring at once: torch's default threads each, then the cores shared out."""
    cores = cpu_threads()
    context = multiprocessing.get_context("spawn")
    seconds = {}
    for label, threads in (("default threads", None), ("cores shared", max(1, cores // 2))):
        with context.Pool(2) as pool:
            barrier = context.Manager().Barrier(2)
            seconds[label] = max(pool.starmap(_score_in_worker, [(threads, barrier, frames)] * 2))
    note = f"2 workers x {frames} frames 256x256 DISTS + LPIPS on {cores} cores"
    oversubscribed, shared = seconds["default threads"], seconds["cores shared"]
    return [
        Figure("2 workers, torch's default threads each (oversubscribed)", oversubscribed, "s", note=note),
        Figure(
            f"2 workers, {max(1, cores // 2)} thread(s) each (workers x threads <= cores)",
            shared,
            "s",
            note=note,
        ),
        Figure("oversubscribed / shared", oversubscribed / shared, "x", "> 1", note),
    ]


def _gpu_figures(versions: int = 8, frames: int = 64) -> list[Figure]:
    """DISTS + LPIPS frames per second on the GPU, a sequence's versions against shared reference features."""
    import torch

    if not torch.cuda.is_available():
        return [
            Figure(
                "GPU DISTS + LPIPS, a sequence at a time",
                0.0,
                "frames/s",
                ">= 2000 (H100/H200)",
                "no GPU on this machine: not measured",
            )
        ]
    reference, distorted = synthetic_pair(frames, 256)
    names = list(PERCEPTUAL)
    score_versions(reference[:16], [distorted[:16]], names, "cuda", 16)  # build and warm up
    torch.cuda.synchronize()
    start = time.perf_counter()
    score_versions(reference, [distorted] * versions, names, "cuda", 16)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return [
        Figure(
            "GPU DISTS + LPIPS, a sequence at a time",
            versions * frames / seconds,
            "frames/s",
            ">= 2000 (H100/H200)",
            f"{torch.cuda.get_device_name()}, {versions} versions x {frames} frames 256x256, batches of 16",
        )
    ]
