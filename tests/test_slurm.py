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

from ctc.report.cli import write_report
from ctc.results import load_results, read_result
from ctc.runner import main
from ctc.slurm.commands import JobState, _expand
from ctc.slurm.executor import ended_state, job_device, job_resources
from ctc.slurm.wait import WaitPolicy

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


def test_the_tasks_of_an_accounting_record_are_expanded():
    assert _expand("12_3") == ["12_3"] and _expand("12") == ["12"]
    assert _expand("12_[0-2,7%4]") == ["12_0", "12_1", "12_2", "12_7"]


def test_a_failed_job_whose_log_shows_an_oom_kill_ended_out_of_memory(tmp_path):
    """squeue may say FAILED before accounting has the step's OUT_OF_MEMORY; the log (lines copied
    from a real job's, Debian's SLURM 22.05) already says why."""
    log = tmp_path / "296_0_log.err"
    log.write_text(
        "slurmstepd-vm: error: Detected 1 oom-kill event(s) in StepId=296.0. Some of your processes"
        " may have been killed by the cgroup out-of-memory handler.\n"
        "srun: error: vm: task 0: Out Of Memory\n"
    )
    assert ended_state("FAILED", log) == "OUT_OF_MEMORY"
    assert ended_state("CANCELLED", log) == "CANCELLED"  # cancelled first: that is why it ended
    assert ended_state("FAILED", tmp_path / "absent.err") == "FAILED"
    log.write_text("Traceback (most recent call last):\nMemoryError: oom-kill event in the model\n")
    assert ended_state("FAILED", log) == "FAILED"  # only slurmstepd's own line counts


def test_unschedulable_reasons_match_by_prefix_of_squeues_reason():
    policy = WaitPolicy(1, ("ReqNodeNotAvail", "PartitionConfig"), 5, 5, 5, 5)
    assert policy.unschedulable(JobState("PENDING", "ReqNodeNotAvail, UnavailableNodes:node1"))
    assert policy.unschedulable(JobState("PENDING", "PartitionConfig"))
    assert not policy.unschedulable(JobState("PENDING", "Resources"))
    assert not policy.unschedulable(JobState("RUNNING", "PartitionConfig"))
    with pytest.raises(ValueError, match="poll_s"):
        WaitPolicy.from_settings({"unschedulable_reasons": []})


def test_job_resources_come_from_the_launcher_then_the_codec_then_the_defaults():
    launcher = {
        "mem_gb": None,
        "cpus_per_task": None,
        "timeout_min": None,
        "gpus_per_node": None,
        "job_defaults": {"cpus_per_task": 1, "mem_gb": 4, "timeout_min": 120},
    }
    gfvc = {"name": "cfte", "slurm": {"cpus_per_task": 2, "mem_gb": 16}}
    assert job_resources(gfvc, launcher, uses_gpu=True) == {
        "cpus_per_task": 2,
        "mem_gb": 16,
        "timeout_min": 120,
        "gpus_per_node": 1,
    }
    assert job_resources({"name": "x265"}, launcher, uses_gpu=False) == {
        "cpus_per_task": 1,
        "mem_gb": 4,
        "timeout_min": 120,
        "gpus_per_node": 0,
    }
    assert job_resources(gfvc, {**launcher, "mem_gb": 2}, uses_gpu=True)["mem_gb"] == 2
    assert job_device("auto", 1) == "cuda:0" and job_device("auto", 0) == "cpu"
    assert job_device("cuda", 1) == "cuda:0" and job_device("cpu", 1) is None


def test_each_job_on_a_node_uses_as_many_threads_as_it_has_cpus_and_its_nodes_device(tmp_path) -> None:
    from ctc.jobs import Job
    from ctc.sweep.scoring import ScoreTask
    from ctc.sweep.tasks import CodingTask, ScoringTask

    task = ScoringTask(ScoreTask("A", (), "cpu", 2), None, {}, tmp_path, False)  # type: ignore[arg-type]
    on_node = task.on_node("cuda:0", threads=8)
    assert (on_node.score.sequence, on_node.score.threads, on_node.score.device) == ("A", 8, "cuda:0")
    kept = task.on_node(None, threads=8)  # an explicit device stays
    assert (kept.score.sequence, kept.score.threads, kept.score.device) == ("A", 8, "cpu")
    coding = CodingTask(Job("test", "x265", None, 37, {}, "cpu"), {}, {}, tmp_path, False, False, 2)  # type: ignore[arg-type]
    assert (coding.on_node("cuda:0", 8).job.device, coding.on_node("cuda:0", 8).threads) == ("cuda:0", 8)
    assert (coding.on_node(None, 8).job.device, coding.on_node(None, 8).threads) == ("cpu", 8)


def test_every_codec_config_sizes_its_slurm_jobs_and_gfvc_codecs_ask_for_a_gpu():
    from ctc.codec import codec_class
    from ctc.conf import load_section

    for path in sorted((TESTS.parent / "ctc" / "conf" / "codec").glob("*.yaml")):
        section = load_section("codec", path.stem)
        assert {"cpus_per_task", "mem_gb", "timeout_min"} <= set(section["slurm"]), path
        assert section["slurm"].get("gpus_per_node", 0) == (1 if codec_class(section).uses_gpu else 0), path


def test_a_sweep_where_every_job_fails_lists_them_and_still_reports(tiny, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                *tiny,
                "launcher=basic",
                "testset.sequences=[SEQ_A]",
                "+codec.fail_on=[SEQ_A/1,SEQ_A/3]",
                "+anchor.fail_on=[SEQ_A/2,SEQ_A/4]",
            ]
        )
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "4 of 4 jobs failed" in err and "fake_anchor/SEQ_A/2: CodecError: fake encoder crashed" in err
    run_dir = run_dir_of(tiny)
    assert (pd.read_csv(run_dir / "summary.csv").status == "failed").all()
    write_report(run_dir, anchor="fake_anchor")  # what make report does (the tiny sweep has report=false)
    summary = (run_dir / "report" / "summary.md").read_text()
    assert summary.count("failed job") == 4


def sbatch_partitions(tmp_path: Path, *overrides: str) -> dict[str, str | None]:
    """The ``#SBATCH --partition`` that the launcher would give the arrays of vtm, vvenc, x265, cfte
    and the scoring tasks, from the composed ``launcher=slurm`` config and ``overrides``."""
    from ctc.codec import codec_class
    from ctc.conf import compose, load_section
    from ctc.sweep.executors import executor_for

    config = compose(["launcher=slurm", f"results_dir={tmp_path}", *overrides], multirun=True)
    launcher = executor_for([config])  # as the sweep makes its executor
    sections = [load_section("codec", name) for name in ("vtm", "vvenc", "x265", "cfte")]
    sections.append({"name": "scoring", "slurm": launcher.params["scoring_task"]})
    partitions = {}
    for section in sections:
        uses_gpu = section["name"] != "scoring" and codec_class(section).uses_gpu
        executor = launcher._executor(job_resources(section, launcher.params, uses_gpu), section["name"], 4)
        script = executor._executor._make_submission_file_text("python -c pass", "uid")
        found = [
            line.split("=", 1)[1] for line in script.splitlines() if line.startswith("#SBATCH --partition=")
        ]
        partitions[section["name"]] = found[0] if found else None
    return partitions


def test_cpu_only_jobs_go_to_the_cpu_partition_and_gpu_jobs_to_the_gpu_partition(tmp_path):
    by_kind = ("hydra.launcher.partitions.gpu=gpu", "hydra.launcher.partitions.cpu=cpu")
    assert sbatch_partitions(tmp_path, *by_kind) == {
        "vtm": "cpu",
        "vvenc": "cpu",
        "x265": "cpu",
        "cfte": "gpu",
        "scoring": "cpu",
    }
    on_gpus = sbatch_partitions(tmp_path, *by_kind, "hydra.launcher.scoring_task.gpus_per_node=1")
    assert on_gpus["scoring"] == "gpu" and on_gpus["vtm"] == "cpu"
    # one partition for every job, as before; the cluster's default when none is named
    assert set(sbatch_partitions(tmp_path, "hydra.launcher.partition=all").values()) == {"all"}
    assert set(sbatch_partitions(tmp_path).values()) == {None}
    # only the GPU jobs sent elsewhere: the others keep `partition`
    only_gpu = sbatch_partitions(
        tmp_path, "hydra.launcher.partition=main", "hydra.launcher.partitions.gpu=gpu"
    )
    assert only_gpu == {"vtm": "main", "vvenc": "main", "x265": "main", "cfte": "gpu", "scoring": "main"}


def test_a_codecs_own_partition_wins_over_the_partitions_by_kind():
    launcher = {"partitions": {"gpu": "gpu", "cpu": "cpu"}, "job_defaults": {"cpus_per_task": 1}}
    own = {"name": "vtm", "slurm": {"partition": "long"}}
    assert job_resources(own, launcher, False)["partition"] == "long"
    assert job_resources({"name": "x265"}, launcher, False)["partition"] == "cpu"
    assert "partition" not in job_resources({"name": "x265"}, {"job_defaults": {}}, False)


def test_a_controller_away_past_outage_limit_s_gives_every_job_up_and_says_it_could_not_cancel(monkeypatch):
    """An outage of outage_limit_s (an hour by default) cannot be waited for in a test: squeue and scancel
    failing as they do while slurmctld is down stand in for it, with a clock that moves 10 s a look."""
    import ctc.slurm.wait
    from ctc.slurm.commands import Listing, SlurmCommandError

    def scancel(job_ids, timeout_s):
        raise SlurmCommandError("scancel failed: Unable to contact slurm controller (connect failure)")

    monkeypatch.setattr(
        ctc.slurm.wait,
        "job_states",
        lambda job_ids, timeout_s: Listing(
            {}, "squeue failed: slurm_load_jobs error: Unable to contact slurm controller (connect failure)"
        ),
    )
    monkeypatch.setattr(ctc.slurm.wait, "cancel", scancel)
    times = iter(range(0, 1000, 10))
    said: list[str] = []
    policy = WaitPolicy(10, (), 300, 5, 5, outage_limit_s=30)
    outcomes = ctc.slurm.wait.wait_for_jobs(
        ["12_0", "12_1", "13_0"], policy, said.append, clock=lambda: next(times), sleep=lambda s: None
    )
    assert {outcome.state for outcome in outcomes.values()} == {"UNKNOWN"} and len(outcomes) == 3
    for outcome in outcomes.values():
        assert "SLURM did not answer for 30 s (squeue failed" in outcome.detail
        assert "could not cancel it" in outcome.detail
        assert "scancel 12 13 once SLURM answers" in outcome.detail
    assert said[0].startswith("SLURM: 0/3 ended, 0 running, 0 pending, no answer since ")
    assert "(stale)" in said[0] and said[-1].startswith("SLURM did not answer for 30 s (outage_limit_s)")
