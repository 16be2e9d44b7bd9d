"""launcher=slurm on a real single-node SLURM cluster that the tests bring up (tests/slurm_cluster.sh):
the demo sweep equals a local run; killed, impossible and stranded jobs are reported, not waited for
forever; Ctrl-C cancels the sweep's jobs. The jobs ask for little (1 CPU, 1 GB) and code few frames."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import test_runner
from test_runner import run_dir_of

from ctc.results import load_results, read_result
from ctc.runner import main

tiny = test_runner.tiny  # the fixture: a tiny test set, the fake codec and anchor

TESTS = Path(__file__).resolve().parent
CLUSTER = TESTS / "slurm_cluster.sh"
# every job small enough for a shared 2-core machine; the waits short enough for a test
SMALL = [
    "launcher=slurm",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.poll_s=1",
]
WAIT_S = 120  # the most a test waits for one thing to happen on the cluster


@pytest.fixture(scope="session")
def slurm_cluster():
    """The cluster, brought up for the session (and down after it, unless it was up before)."""
    was_up = subprocess.run([CLUSTER, "status"], capture_output=True).returncode == 0
    if not was_up:
        if not shutil.which("slurmctld") and not shutil.which("apt-get"):
            pytest.skip(
                "SLURM is not installed and there is no apt-get to install it (tests/slurm_cluster.sh)"
            )
        up = subprocess.run([CLUSTER, "up"], capture_output=True, text=True, timeout=1200)
        if up.returncode:
            pytest.fail(f"tests/slurm_cluster.sh up failed:\n{up.stdout}{up.stderr}")
    conf = subprocess.run([CLUSTER, "env"], capture_output=True, text=True, check=True).stdout
    saved = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf.split("=", 1)[1].strip()
    yield
    if saved is None:
        del os.environ["SLURM_CONF"]
    else:
        os.environ["SLURM_CONF"] = saved
    if not was_up:
        subprocess.run([CLUSTER, "down"], capture_output=True, timeout=300)


@pytest.fixture
def slurm(slurm_cluster):
    """A running cluster (a test may stop slurmd; this starts it again) left without jobs of ours."""
    subprocess.run([CLUSTER, "up"], capture_output=True, check=True, timeout=300)
    yield
    subprocess.run(["scancel", "--me"], capture_output=True, timeout=60)


def our_jobs() -> list[str]:
    """The jobs of this user that SLURM still runs or holds (not those that ended)."""
    listing = subprocess.run(
        ["squeue", "--me", "--array", "--noheader", "--format=%i"], capture_output=True, text=True, check=True
    ).stdout
    return listing.split()


def wait_until(what: str, condition) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {WAIT_S} s"
        time.sleep(0.5)


def hanging_job(hanging: Path) -> str | None:
    """The job id that the fake codec hanging on purpose writes to ``hanging`` (in a thread beside the
    sweep: no assert); None where it never started, waited for WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not (hanging.exists() and hanging.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return hanging.read_text() if hanging.exists() else None


def assert_the_truth(run_dir: Path, err: str) -> dict[str, dict]:
    """At a sweep's exit: summary.csv, each result.json and the printed tally agree, every failure names
    its SLURM job id and state, and SLURM runs nothing of ours. Returns the results by job folder."""
    results = {
        str(path.parent.relative_to(run_dir)): json.loads(path.read_text())
        for path in sorted(run_dir.glob("*/*/*/result.json"))
    }
    summary = pd.read_csv(run_dir / "summary.csv")
    assert {f"{row.codec}/{row.sequence}/{row.rate_point}": row.status for row in summary.itertuples()} == {
        job: result["status"] for job, result in results.items()
    }
    failed = {job: result for job, result in results.items() if result["status"] != "ok"}
    tally = re.search(r"(\d+) of (\d+) jobs failed", err)
    assert (int(tally.group(1)) if tally else 0) == len(failed), err
    named = r"SLURM job \d+(_\d+)? (ended [A-Z_]+|did not run|is lost|cancelled)|not submitted: SLURM refused"
    for job, result in failed.items():
        assert re.search(named, result["error"]), (job, result["error"])
        assert f"{job}: " in err  # listed at the end
    assert not our_jobs()
    return results


def outputs(run_dir: Path) -> dict[str, tuple]:
    """Per job: its files' bytes (the bitstream) and the numbers of its result, not times or paths."""
    jobs = {}
    for path in sorted(run_dir.glob("*/*/*/result.json")):
        result = json.loads(path.read_text())
        files = {
            p.name: p.read_bytes()
            for p in path.parent.iterdir()  # not the job's lock file
            if p.name not in ("result.json", "job.log") and not p.name.startswith(".")
        }
        jobs[str(path.parent.relative_to(run_dir))] = (
            files,
            result["status"],
            result["bits"],
            result["kbps"],
            result["metrics"],
            result["config_hash"],
            result["frames"],
            result["codec_version"],
        )
    return jobs


@pytest.mark.slow
@pytest.mark.slurm
def test_the_demo_sweep_on_slurm_equals_the_local_run(slurm, tmp_path, capfd):
    sweep = [
        "codec=x265",
        "anchor=vvenc",
        "testset=demo",
        "testset.frames=3",
        "testset.sequences=[DEMO_001]",
        "codec.rate_points=[37,51]",
        "anchor.rate_points=[37,52]",
        "metrics=psnr",
        "report=false",
        "run=demo",
    ]
    main([*sweep, f"results_dir={tmp_path / 'local'}", "jobs=2"])
    capfd.readouterr()
    main([*sweep, f"results_dir={tmp_path / 'slurm'}", *SMALL])
    err = capfd.readouterr().err
    local, on_slurm = outputs(tmp_path / "local" / "demo"), outputs(tmp_path / "slurm" / "demo")
    assert len(local) == 4 and all(job[1] == "ok" for job in local.values())
    assert on_slurm == local
    arrays = [line for line in err.splitlines() if "SLURM array" in line]  # one per codec, one of scoring
    assert len(arrays) == 3 and any("2 x265 jobs" in line for line in arrays), err
    assert "2 vvenc jobs, each cpus_per_task=1, mem_gb=1, timeout_min=60, gpus_per_node=0" in err
    # the sequence's four decoded versions scored together by one task, after the coding jobs
    assert "1 scoring jobs, each cpus_per_task=1, mem_gb=1, timeout_min=240, gpus_per_node=0" in err
    assert err.index("4/4 ended") < err.index("1/1 ended")
    assert list((tmp_path / "slurm" / "demo" / ".submitit").rglob("*_log.err"))
    assert not our_jobs()


@pytest.mark.slow
@pytest.mark.slurm
def test_a_killed_task_fails_alone_and_the_sweep_waits_for_the_others(slurm, tiny, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_CODEC_HANG", "SEQ_A/1")  # the first job hangs until it is killed
    sweep = [*tiny, "anchor=none", "testset.sequences=[SEQ_A,SEQ_B]", *SMALL]
    run_dir = run_dir_of(tiny)
    hanging = run_dir / "fake" / "SEQ_A" / "1" / "hanging"
    killed: list[str] = []
    still_queued: list[str] = []

    def kill_the_hanging_task() -> None:
        job = hanging_job(hanging)
        if job is not None:
            killed.append(job)
            still_queued.extend(other for other in our_jobs() if other != killed[0])
            subprocess.run(["scancel", killed[0]], check=True)

    killer = threading.Thread(target=kill_the_hanging_task)
    killer.start()
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(sweep)
    finally:
        killer.join()
    assert exit_info.value.code == 1 and killed, "the job never hung"
    assert still_queued  # other jobs were pending or running when it was killed: the sweep waited for them
    table = load_results(run_dir)
    assert len(table) == 4 and (table.status == "ok").sum() == 3
    failure = read_result(run_dir / "fake" / "SEQ_A" / "1")
    assert failure["status"] == "failed"
    assert f"SLURM job {killed[0]} ended CANCELLED without a result (log: " in failure["error"]
    log = Path(failure["error"].rsplit("(log: ", 1)[1].rstrip(")"))
    assert log.is_file() and log.name == f"{killed[0]}_0_log.err"
    err = capsys.readouterr().err
    assert "1 of 4 jobs failed" in err and f"fake/SEQ_A/1: SlurmJobFailed: SLURM job {killed[0]}" in err
    assert sorted(pd.read_csv(run_dir / "summary.csv").status) == ["failed"] + ["ok"] * 3
    assert not our_jobs()

    monkeypatch.delenv("FAKE_CODEC_HANG")  # a rerun completes exactly the missing job
    done = {p: p.stat().st_mtime_ns for p in run_dir.glob("*/*/*/result.json")}
    main(sweep)
    assert {p for p in done if p.stat().st_mtime_ns != done[p]} == {run_dir / "fake/SEQ_A/1/result.json"}
    assert (load_results(run_dir).status == "ok").all()
    assert "SLURM array" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.slurm
@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            # the second codec's: its first codec's array must not go in either
            "+anchor.slurm.timeout_min=abc",
            "anchor fake_anchor: timeout_min='abc': expected a time limit in whole minutes, at least 1",
        ),
        ("+codec.slurm.timeout_min=-5", "codec fake: timeout_min=-5: expected a time limit in whole minutes"),
        ("+anchor.slurm.timeout_min=0", "anchor fake_anchor: timeout_min=0: expected a time limit"),
        (
            "hydra.launcher.partition=nowhere",
            "hydra.launcher.partition=nowhere: the cluster has no such partition (sinfo lists ctc)",
        ),
        ("hydra.launcher.qos=nobody", "hydra.launcher.qos=nobody: the cluster has no such QOS"),
        (
            f"hydra.launcher.cpus_per_task={(os.cpu_count() or 1) + 1}",
            f"cpus_per_task={(os.cpu_count() or 1) + 1} but the largest node of the partition has",
        ),
        (
            "hydra.launcher.mem_gb=100000",
            "mem_gb=100000 (102400000 MB) and 0 GPUs, but no node of the partition",
        ),
        ("+codec.slurm.gpus_per_node=1", "codec fake: 1 CPUs, mem_gb=1 (1024 MB) and 1 GPUs, but no node"),
        (
            "no SLURM",
            "launcher=slurm needs SLURM's commands, and sbatch, srun, squeue, sacct, scancel, sinfo is not "
            "on PATH",
        ),
    ],
)
def test_a_wrong_setting_stops_the_sweep_before_anything_is_submitted_or_written(
    slurm, tiny, capsys, monkeypatch, setting, expected
):
    path = os.environ["PATH"]
    if setting == "no SLURM":
        monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    with pytest.raises(SystemExit) as exit_info:
        main([*tiny, "testset.sequences=[SEQ_A]", *SMALL, *([setting] if setting != "no SLURM" else [])])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("ctc-run: error: ") and expected in errors[0], errors
    run_dir = run_dir_of(tiny)
    assert not list(run_dir.rglob("*")) if run_dir.exists() else True  # nothing written
    monkeypatch.setenv("PATH", path)
    assert not our_jobs()


@pytest.mark.slow
@pytest.mark.slurm
def test_a_submission_refused_after_another_went_in_cancels_it(slurm, tiny, tmp_path, capsys, monkeypatch):
    """sbatch refuses the anchor's array once the codec's is in (as a QOS or account limit would; the test
    cluster enforces none, so an sbatch in front of the real one refuses it): nothing is left running."""
    real = shutil.which("sbatch")
    wrapper = tmp_path / "bin" / "sbatch"
    wrapper.parent.mkdir()
    wrapper.write_text(f"""#!/bin/sh
if grep -q -- '-fake_anchor' "$1"; then
    echo 'sbatch: error: Batch job submission failed: Job violates accounting/QOS policy' >&2; exit 1
fi
exec {real} "$@"
""")
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(SystemExit) as exit_info:
        main([*tiny, "testset.sequences=[SEQ_A]", *SMALL])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    refused = "SLURM refused the array of 2 fake_anchor jobs: "
    assert "cancelled the arrays already submitted (" in err and refused in err
    results = assert_the_truth(run_dir_of(tiny), err)
    assert len(results) == 4
    for job in ("fake_anchor/SEQ_A/2", "fake_anchor/SEQ_A/4"):
        assert results[job]["status"] == "failed" and f"not submitted: {refused}" in results[job]["error"]
    for job in ("fake/SEQ_A/1", "fake/SEQ_A/3"):  # cancelled, unless it finished first (then scored)
        assert results[job]["status"] == "ok" or "cancelled before it gave a result" in results[job]["error"]


def node_cpus() -> int:
    listing = subprocess.run(
        ["sinfo", "--noheader", "--Node", "--format=%c"], capture_output=True, text=True, check=True
    ).stdout
    return max(int(cpus) for cpus in listing.split())


@pytest.mark.slurm
def test_the_plan_counts_the_tasks_the_clusters_nodes_have_room_for(slurm, tiny, capsys):
    """``--plan`` with array_parallelism null: as many tasks at once as the node's CPUs and memory hold."""
    listing = subprocess.run(
        ["sinfo", "--noheader", "--Node", "--format=%c|%m"], capture_output=True, text=True, check=True
    ).stdout
    ((cpus, memory_mb),) = {tuple(int(value) for value in line.split("|")) for line in listing.split()}
    every_job = ["launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]
    for parallelism, at_once in ((None, min(cpus, memory_mb // 1024)), (1, 1)):
        limit = [f"hydra.launcher.array_parallelism={parallelism}"] if parallelism else []
        with pytest.raises(SystemExit):
            main([*tiny, *every_job, *limit, "--plan"])
        out = capsys.readouterr().out
        room = f"fake {at_once}, fake_anchor {at_once}, scoring {at_once}"
        assert f"(a cluster; tasks at once, as its nodes have room: {room})" in out, out
    assert not list(run_dir_of(tiny).parent.glob("*/*/*")), "a plan wrote into the results"


@pytest.mark.slurm
def test_make_bench_measures_the_clusters_queue_and_round_for_the_plan(slurm, tmp_path, monkeypatch):
    from bench.cluster import bench_cluster
    from ctc.sweep.costs import load_costs

    monkeypatch.setenv("GFVC_CACHE", str(tmp_path / "cache"))
    figures = {figure.name: figure.value for figure in bench_cluster()}
    assert len(figures) == 3 and all(value >= 0 for value in figures.values()), figures
    slurm_costs = load_costs()["slurm"]
    assert slurm_costs["source"].startswith("measured ")
    assert slurm_costs["round_s"] == round(figures["cluster: a round of tasks (start and dispatch)"], 2)
    assert slurm_costs["round_s"] > 0  # a task's process start at least
    assert not our_jobs()  # the bench's array is over


@pytest.mark.slow
@pytest.mark.slurm
def test_default_resources_fit_the_node_and_the_sweep_completes(slurm, tiny, capsys):
    main([*tiny, "anchor=none", "testset.sequences=[SEQ_A]", "launcher=slurm", "hydra.launcher.poll_s=1"])
    err = capsys.readouterr().err
    results = assert_the_truth(run_dir_of(tiny), err)
    assert len(results) == 2 and all(result["status"] == "ok" for result in results.values())
    scoring_cpus = min(4, node_cpus())  # the scoring task's default 4 CPUs, at most the node's
    assert f"1 scoring jobs, each cpus_per_task={scoring_cpus}, mem_gb=8" in err
    if scoring_cpus < 4:
        assert f"the scoring tasks: cpus_per_task={scoring_cpus} (asked 4: the largest node's CPUs)" in err


@pytest.mark.slow
@pytest.mark.slurm
def test_an_out_of_memory_scoring_task_is_reported_and_a_rerun_only_scores(slurm, tiny, capsys):
    sweep = [
        *tiny,
        "anchor=none",
        "testset.sequences=[SEQ_A]",
        "launcher=slurm",
        "hydra.launcher.poll_s=1",
        "+codec.slurm.mem_gb=1",
        "+codec.slurm.cpus_per_task=1",
    ]
    with pytest.raises(SystemExit) as exit_info:  # a scoring task of 100 MB: python and torch need more
        main([*sweep, "hydra.launcher.scoring_task.mem_gb=0.1"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    run_dir = run_dir_of(tiny)
    results = assert_the_truth(run_dir, err)
    assert {result["status"] for result in results.values()} == {"failed"} and len(results) == 2
    error = results["fake/SEQ_A/1"]["error"]
    assert re.search(r"SLURM job \d+(_0)? ended OUT_OF_MEMORY without a result \(log: ", error), error
    log = Path(error.rsplit("(log: ", 1)[1].split(")")[0])
    assert log.is_file() and "oom" in log.read_text().lower()
    coded = {path: path.stat().st_mtime_ns for path in run_dir.glob("fake/SEQ_A/*/stream.bin")}
    main(sweep)  # scored, not coded again: no array of coding jobs
    err = capsys.readouterr().err
    arrays = [line for line in err.splitlines() if "SLURM array" in line]
    assert len(arrays) == 1 and "1 scoring jobs" in arrays[0], err
    assert {path: path.stat().st_mtime_ns for path in coded} == coded and len(coded) == 2
    assert all(result["status"] == "ok" for result in assert_the_truth(run_dir, err).values())


@pytest.mark.slow
@pytest.mark.slurm
def test_a_controller_away_longer_than_unknown_after_s_is_waited_for(slurm, tiny):
    """slurmctld stopped for three times unknown_after_s while the sweep's jobs pend or run: the sweep says
    SLURM does not answer, keeps the last counts (stale), and ends with every job's true state."""
    sweep = [
        *tiny,
        "anchor=none",
        "testset.sequences=[SEQ_A,SEQ_B]",
        *SMALL,
        "hydra.launcher.unknown_after_s=5",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "ctc.runner", *sweep], stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    try:
        for line in process.stderr:  # stop the controller as soon as the coding jobs are in
            lines.append(line)
            if "SLURM array" in line:
                break
        subprocess.run([CLUSTER, "stop", "slurmctld"], check=True, capture_output=True)
        time.sleep(15)
        subprocess.run([CLUSTER, "up"], check=True, capture_output=True, timeout=300)
        _, rest = process.communicate(timeout=5 * WAIT_S)
    finally:
        process.kill()
        subprocess.run([CLUSTER, "up"], capture_output=True, timeout=300)
    err = "".join(lines) + rest
    assert process.returncode == 0, err
    stale = r"SLURM: \d/4 ended, .*no answer since .*counts as of then \(stale\): squeue failed"
    assert re.search(stale, err), err
    assert "is lost" not in err
    results = assert_the_truth(run_dir_of(tiny), err)
    assert len(results) == 4 and all(result["status"] == "ok" for result in results.values())


@pytest.mark.slow
@pytest.mark.slurm
def test_a_stopped_slurmd_ends_the_sweep_with_the_reason(slurm, tiny, capsys):
    subprocess.run([CLUSTER, "stop", "slurmd"], check=True, capture_output=True)

    def node_down() -> bool:
        return (
            subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True)
            .stdout.strip()
            .startswith("down")
        )

    try:
        wait_until("the node going down", node_down)
        with pytest.raises(SystemExit) as exit_info:
            main(
                [
                    *tiny,
                    "anchor=none",
                    "testset.sequences=[SEQ_A]",
                    *SMALL,
                    "hydra.launcher.unschedulable_after_s=3",
                ]
            )
        assert exit_info.value.code == 1
        err = capsys.readouterr().err
        assert "2 of 2 jobs failed" in err
        assert "did not run: pending (Nodes required for job are DOWN" in err
        assert not our_jobs()
    finally:
        subprocess.run([CLUSTER, "up"], capture_output=True, check=True, timeout=300)


@pytest.mark.slow
@pytest.mark.slurm
def test_a_requeued_job_is_followed_to_its_final_state(slurm, tiny, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_CODEC_HANG", "SEQ_A/1")  # hangs until requeued; its second run goes through
    hanging = run_dir_of(tiny) / "fake" / "SEQ_A" / "1" / "hanging"
    requeued: list[str] = []

    def requeue_the_hanging_task() -> None:
        job = hanging_job(hanging)
        if job is not None:
            requeued.append(job)
            subprocess.run(["scontrol", "requeue", requeued[0]], check=True)

    requeuer = threading.Thread(target=requeue_the_hanging_task)
    requeuer.start()
    try:
        main([*tiny, "anchor=none", "testset.sequences=[SEQ_A]", *SMALL])
    finally:
        requeuer.join()
    assert requeued, "the job never hung"
    results = assert_the_truth(run_dir_of(tiny), capsys.readouterr().err)
    assert len(results) == 2 and all(result["status"] == "ok" for result in results.values())


@pytest.mark.slow
@pytest.mark.slurm
def test_ctrl_c_cancels_the_sweeps_jobs(slurm, tiny, tmp_path):
    hanging = run_dir_of(tiny) / "fake" / "SEQ_A" / "1" / "hanging"
    env = {**os.environ, "FAKE_CODEC_HANG": "SEQ_A/1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ctc.runner", *tiny, "anchor=none", "testset.sequences=[SEQ_A]", *SMALL],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until("the job hanging", lambda: hanging.exists() and process.poll() is None)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=WAIT_S)
    finally:
        process.kill()
    assert process.returncode == 130 and "Traceback" not in err, err
    array = hanging.read_text().split("_")[0]
    assert f"interrupted: cancelled the sweep's SLURM jobs {array} (scancel)" in err
    wait_until("the cancelled jobs leaving the queue", lambda: not our_jobs())
