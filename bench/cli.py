"""``ctc-bench``: the speed figures of the harness, measured side by side in one run.

Each bench is a function ``() -> list`` named in :data:`BENCHES` as ``module:function``, whose
rows are :class:`Figure` objects or mappings with ``name`` (or ``case``), ``value``, ``unit`` and
optionally ``target`` and ``note``. Modules are imported lazily; a bench whose module is missing is
reported as skipped and one that fails as failed, so the metric and model stages add theirs by
adding a line here. Targets are printed next to the figures,
never asserted (the tests do not time anything).
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ctc.jobs import Job
from ctc.results import ResultStatus

BENCHES = [
    "bench.cli:bench_io",
    "bench.cli:bench_cached_sweep",
    "bench.cli:bench_fingerprints",
    "bench.metrics:bench_metrics",
    "bench.sweep:bench_sweep_scoring",
    "bench.models:bench_models",
    "bench.job_split:bench_job_split",
    "bench.cluster:bench_cluster",
]
IO_FRAMES, IO_SIZE = 250, 256
REPEATS = 3


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    target: str = ""  # e.g. "< 1 s": what the issue asks for
    note: str = ""


def best_of(function: Callable[[], object], repeats: int = REPEATS) -> float:
    """The shortest wall time of ``repeats`` calls: the least disturbed by other processes."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_io() -> list[Figure]:
    """Reading a 250-frame 256x256 RGB 4:4:4 sequence and converting it to YUV 4:2:0."""
    from ctc.frames import read_rgb444, rgb_to_yuv420

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench_256x256_25_8bit_444.rgb"
        rng = np.random.default_rng(0)
        rng.integers(0, 256, (IO_FRAMES, 3, IO_SIZE, IO_SIZE), dtype=np.uint8).tofile(path)

        def read() -> np.ndarray:
            return np.array(read_rgb444(path, IO_SIZE, IO_SIZE, IO_FRAMES))

        frames = read()
        read_s = best_of(read)
        convert_s = best_of(lambda: rgb_to_yuv420(frames))
        both_s = best_of(lambda: rgb_to_yuv420(read_rgb444(path, IO_SIZE, IO_SIZE, IO_FRAMES)))
    note = f"{IO_FRAMES} frames {IO_SIZE}x{IO_SIZE}, file in the page cache"
    return [
        Figure("read RGB 4:4:4", read_s, "s", note=note),
        Figure("RGB -> YUV 4:2:0 (OpenCV)", convert_s, "s", note=note),
        Figure("read + convert", both_s, "s", "well under 1 s", note),
    ]


def bench_cached_sweep() -> list[Figure]:
    """Rerunning a fully complete sweep of the 30 CTC sequences x 4 rate points, codec and anchor.

    The sequence files are sparse files of the declared sizes and every job's ``result.json`` is
    written beforehand with the hash the runner expects, so the rerun has nothing to code: what
    is timed is the ``ctc-run`` process from start to exit (config, test set checks, the resume
    check of every job, summary and provenance).
    """
    from ctc.conf import compose, without_hydra
    from ctc.results import RESULT_FILE
    from ctc.store import write_json_atomic
    from ctc.sweep.plan import plan_sweep
    from ctc.testset.sequences import declared_specs

    with tempfile.TemporaryDirectory() as folder:
        root, results = Path(folder) / "sequences", Path(folder) / "results"
        overrides = [
            "codec=x265",
            "anchor=vvenc",
            "testset=ctc",
            f"testset.root={root}",
            f"results_dir={results}",
            "run=bench",
            "report=false",
        ]  # the resume check
        settings = without_hydra(compose(overrides))
        root.mkdir()
        testset = settings["testset"]
        for spec in declared_specs(testset["name"], testset.get("sequences_file"), testset.get("root")):
            with open(spec.path, "wb") as sparse:
                sparse.truncate(spec.frames * spec.frame_bytes)
        plan = plan_sweep(settings)
        jobs, specs, sections = plan.jobs, plan.specs, plan.sections
        for job in jobs:
            directory = job.directory(plan.run_dir)
            directory.mkdir(parents=True)
            write_json_atomic(directory / RESULT_FILE, _fake_result(job))
        written = {path: path.stat().st_mtime_ns for path in results.glob(f"*/*/*/*/{RESULT_FILE}")}
        seconds = run_ctc(overrides)
        if {path: path.stat().st_mtime_ns for path in written} != written or len(written) != len(jobs):
            raise RuntimeError("the cached sweep reran jobs: their results were not taken as complete")
    return [
        Figure(
            f"cached rerun, {len(specs)} sequences x 4 rate points x {len(sections)} codecs",
            seconds,
            "s",
            "< 10 s",
            f"{len(jobs)} jobs, whole ctc-run process",
        )
    ]


def bench_fingerprints() -> list[Figure]:
    """What the code in a result's identity costs a sweep's plan (:mod:`ctc.fingerprint`): the identities
    of a GFVC codec (CFTE: its modules' syntax trees) and the anchor (vvenc: FFmpeg's digest, remembered,
    and its command lines), the CTC metrics' code, then the 240 job hashes of a full CTC plan (30 sequences
    x 4 rate points x 2 codecs); the in-process digests of source files are cleared before each try."""
    import models.cfte  # noqa: F401  (a sweep imports its model's modules anyway: not part of the cost)
    from ctc import fingerprint
    from ctc.conf import load_section
    from ctc.identity import codec_identity, identity_hash, job_identity
    from ctc.metrics import metric_code, metric_set

    cfte = {
        **load_section("codec", "cfte"),
        "weights": "random",
        "intra": load_section("picture_codec", "vvenc"),
    }
    anchor = load_section("codec", "vvenc")
    codec_identity(anchor)  # FFmpeg's version probe and digest, remembered across sweeps
    metrics = metric_set("ctc")

    def plan() -> list[str]:
        fingerprint._file_digests.clear()
        identities = [codec_identity(cfte), codec_identity(anchor)]
        metric_code(metrics)
        return [
            identity_hash(job_identity(identity, {"name": f"SEQ_{index:03d}", "file_md5": "0" * 32}, qp))
            for identity in identities
            for index in range(30)
            for qp in cfte["rate_points"]
        ]

    jobs, files = len(plan()), len(codec_identity(cfte)["code"])
    return [
        Figure(
            f"fingerprints and hashes of a full CTC plan ({jobs} jobs)",
            best_of(plan),
            "s",
            "< 1 s",
            f"{files} source files of cfte, the metrics' code; FFmpeg's digest remembered",
        )
    ]


def run_ctc(overrides: list[str]) -> float:
    """Seconds of one whole ``ctc-run`` process."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "ctc.runner", *overrides],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ctc-run {' '.join(overrides)} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def _fake_result(job: Job) -> dict:
    spec = job.sequence
    bits = 8000 * (60 - job.rate_point)
    return {
        **job.result_fields(ResultStatus.OK),
        "codec_version": "bench",
        "bits": {"total": bits, "parts": {"video": bits}},
        "kbps": bits / 1000 * spec.fps / spec.frames,
        "enc_seconds": 1.0,
        "dec_seconds": 0.1,
        "metrics": {name: 60.0 - job.rate_point for name in job.metric_names},
        "metric_directions": {name: "higher_is_better" for name in job.metric_names},
        "metric_code": dict(job.metric_code),
    }


def as_figure(row: Figure | Mapping[str, Any]) -> Figure:
    if isinstance(row, Figure):
        return row
    if not ("name" in row or "case" in row) or "value" not in row:
        raise ValueError(
            f"a bench row needs 'name' (or 'case') and 'value' (and 'unit', optionally 'target' "
            f"and 'note'); got the keys {sorted(row)}"
        )
    return Figure(
        str(row.get("name") or row["case"]),
        float(row["value"]),
        str(row.get("unit", "")),
        str(row.get("target", "")),
        str(row.get("note", "")),
    )


def _load(target: str) -> Callable[[], list] | str:
    """The bench function ``module:function``, or why it cannot run."""
    module_name, function_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return f"skipped: module {module_name} does not exist yet"
        raise
    return getattr(module, function_name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ctc-bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", nargs="*", default=None, help="run only the benches whose name contains one of these words"
    )
    args = parser.parse_args(argv)
    rows: list[tuple[str, str, str, str, str]] = []
    for target in BENCHES:
        if args.only and not any(word in target for word in args.only):
            continue
        bench = _load(target)
        if isinstance(bench, str):
            rows.append((target, "-", "", "", bench))
            continue
        print(f"ctc-bench: running {target}", file=sys.stderr, flush=True)
        try:
            figures = [as_figure(row) for row in bench()]
        except Exception as exc:  # one broken bench must not hide the others' figures
            rows.append((target, "-", "", "", f"failed: {type(exc).__name__}: {exc}"))
            continue
        for figure in figures:
            value = f"{figure.value:.3f}" if figure.value < 100 else f"{figure.value:.1f}"
            rows.append((figure.name, value, figure.unit, figure.target, figure.note))
    header = ("figure", "value", "unit", "target", "note")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
