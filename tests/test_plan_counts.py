"""``ctc-run --plan`` writes nothing, and the jobs it counts are the jobs the run then does."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from test_runner import ANCHOR_RATE_POINTS, CODEC_RATE_POINTS, FRAMES, NAMES, run_dir_of, tiny  # noqa: F401

from ctc.runner import main
from ctc.sweep.costs import load_costs, measured_costs_path

PLAN_LINE = re.compile(r"^(\S+): (\d+) to code, (\d+) to score only, (\d+) reused$", re.MULTILINE)


def plan(overrides: list[str], capsys) -> dict[str, tuple[int, int, int]]:
    """Per codec: (to code, to score only, reused), as ``--plan`` prints them."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main([*overrides, "--plan"])
    assert stop.value.code == 0
    return {codec: tuple(map(int, counts)) for codec, *counts in PLAN_LINE.findall(capsys.readouterr().out)}


def tree(root: Path) -> dict[str, int]:
    """Every file and folder under ``root`` with its modification time."""
    return {str(path): path.stat().st_mtime_ns for path in root.rglob("*")} if root.exists() else {}


def done(run_dir: Path, before: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Per codec, what the run did: (bitstreams written, results written)."""
    counts: dict[str, list[int]] = {}
    for result in run_dir.glob("*/*/*/result.json"):
        codec = counts.setdefault(result.parents[2].name, [0, 0])
        stream = result.parent / "stream.bin"
        codec[0] += before.get(str(stream)) != stream.stat().st_mtime_ns
        codec[1] += before.get(str(result)) != result.stat().st_mtime_ns
    return {codec: (coded, written) for codec, (coded, written) in counts.items()}


def test_the_plan_writes_nothing_and_counts_what_the_run_does(tiny, capsys):  # noqa: F811
    sweep = [*tiny, "launcher=basic"]
    run_dir = run_dir_of(tiny)
    results = run_dir.parent
    assert plan(sweep, capsys) == {"fake": (6, 0, 0), "fake_anchor": (6, 0, 0)}
    assert not results.exists()  # nothing written, not even the run folder
    main(sweep)
    assert done(run_dir, {}) == {"fake": (6, 6), "fake_anchor": (6, 6)}

    (run_dir / "fake/SEQ_C/1/result.json").unlink()  # one job to code again
    before = tree(results)
    assert plan(sweep, capsys) == {"fake": (1, 0, 5), "fake_anchor": (0, 0, 6)}
    assert tree(results) == before
    main(sweep)
    assert done(run_dir, before) == {"fake": (1, 1), "fake_anchor": (0, 0)}

    rescored = [*sweep, "metrics.names=[psnr,psnr_y]"]  # a new metric: every job scored, none coded
    before = tree(results)
    assert plan(rescored, capsys) == {"fake": (0, 6, 0), "fake_anchor": (0, 6, 0)}
    assert tree(results) == before
    main(rescored)
    assert done(run_dir, before) == {"fake": (0, 6), "fake_anchor": (0, 6)}


def test_the_estimate_takes_the_costs_bench_measured_over_the_defaults(
    tiny,  # noqa: F811
    tmp_path,
    monkeypatch,
    capsys,
):
    monkeypatch.setenv("GFVC_CACHE", str(tmp_path / "cache"))
    sweep = [*tiny, "launcher=basic", "jobs=1"]
    costs = load_costs()  # ctc/conf/costs.yaml's: nothing measured in this cache
    overhead = costs["job_overhead_s"]
    lines = _estimate(sweep, capsys)
    # 6 jobs of 4 frames at the default cost per frame, each with the overhead of a job, one worker
    assert _cpu_hours(lines["coding fake"]) == round(
        6 * (4 * costs["coding"]["default"]["cpu_s"] + overhead) / 3600, 3
    )
    assert lines["coding fake"].endswith(
        f"(6 jobs, default cost, {overhead:.2f} s per job of harness (default))"
    )
    measured = measured_costs_path()
    measured.parent.mkdir(parents=True)
    measured.write_text("coding:\n  fake: {cpu_s: 10.0}\njob_overhead_s: {cpu_s: 2.5}\n")
    lines = _estimate(sweep, capsys)
    seconds = 6 * (4 * 10.0 + 2.5)  # the measured cost per frame and harness per job
    assert _cpu_hours(lines["coding fake"]) == round(seconds / 3600, 3)
    assert f"wall {int(seconds // 60)}m{round(seconds % 60):02d}s" in lines["coding fake"]
    assert lines["coding fake"].endswith(
        f"(6 jobs, measured {measured} cost, 2.50 s per job of harness (measured {measured}))"
    )
    assert "coding fake_anchor" in lines and "scoring" in lines and "report" not in lines  # report=false


def _cpu_hours(line: str) -> float:
    return float(line.split(" h CPU", 1)[0])


def _estimate(overrides: list[str], capsys) -> dict[str, str]:
    """The estimate's lines by stage."""
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([*overrides, "--plan"])
    captured = capsys.readouterr()
    assert "estimated cost on " in captured.out, captured.err
    out = captured.out.split("estimated cost on ", 1)[1]
    return dict(line.strip().split(": ", 1) for line in out.splitlines()[1:])


def test_on_a_cluster_each_job_pays_its_own_process_start_and_round(tiny, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("GFVC_CACHE", str(tmp_path / "cache"))
    measured = measured_costs_path()
    measured.parent.mkdir(parents=True)
    measured.write_text(
        "coding:\n  fake: {cpu_s: 10.0}\ntask_start_s: {seconds: 0.5}\n"
        "slurm: {queue_s: 5, round_s: 2, scoring_start_extra_s: 3}\n"
    )
    overhead = load_costs()["job_overhead_s"]
    lines = _estimate([*tiny, "launcher=slurm", "hydra.launcher.array_parallelism=2"], capsys)
    job = 4 * 10.0 + overhead  # 4 frames and the harness
    assert _cpu_hours(lines["coding fake"]) == round(6 * (job + 0.5) / 3600, 3)  # + each task's start
    seconds = 5 + 3 * (job + 2)  # the queue, then 6 jobs 2 at a time, each round 2 s besides its jobs
    assert f"wall {int(seconds // 60)}m{round(seconds % 60):02d}s" in lines["coding fake"]
    assert lines["coding fake"].endswith(
        f"; queue 5 s an array, 2 s a round of tasks besides their jobs (measured {measured}))"
    )
    # one scoring task per sequence, 2 at a time, each importing torch and the metrics (3 s more)
    versions = FRAMES * (len(CODEC_RATE_POINTS) + len(ANCHOR_RATE_POINTS))
    task = 3 + versions * load_costs()["scoring"]["psnr"]["cpu_s"] / 4  # the scoring task's 4 CPUs
    seconds = 5 + math.ceil(len(NAMES) / 2) * (task + 2)
    assert f"wall {int(seconds // 60)}m{round(seconds % 60):02d}s" in lines["scoring"]
    # a CPU count set for every job is the scoring tasks' too (it wins over scoring_task's 4)
    every_job = ["launcher=slurm", "hydra.launcher.array_parallelism=2", "hydra.launcher.cpus_per_task=1"]
    dists = [*tiny, "metrics.names=[dists]"]
    lines = _estimate([*dists, *every_job], capsys)
    task = 3 + versions * load_costs()["scoring"]["dists"]["cpu_s"]  # on one CPU
    seconds = 5 + math.ceil(len(NAMES) / 2) * (task + 2)
    assert f"wall {int(seconds // 60)}m{round(seconds % 60):02d}s" in lines["scoring"]
