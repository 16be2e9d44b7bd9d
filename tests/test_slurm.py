"""launcher=slurm on a real single-node SLURM cluster that the tests bring up (tests/slurm_cluster.sh):
the demo sweep equals a local run; killed, impossible and stranded jobs are reported, not waited for
forever; Ctrl-C cancels the sweep's jobs. The jobs ask for little (1 CPU, 1 GB) and code few frames."""

from __future__ import annotations

import json
import os
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

from ctc.report import write_report
from ctc.runner import main
from ctc.slurm import JobState, _expand
from ctc.slurm_wait import WaitPolicy
from ctc.store import load_results, read_result
from hydra_plugins.gfvc_ctc_sweeper.slurm import CtcSlurmLauncher, job_device, job_resources

tiny = test_runner.tiny  # the fixture: a tiny test set, the fake codec and anchor

TESTS = Path(__file__).resolve().parent
CLUSTER = TESTS / "slurm_cluster.sh"
# every job small enough for a shared 2-core machine; the waits short enough for a test
SMALL = ["launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
         "hydra.launcher.poll_s=1"]
WAIT_S = 120  # the most a test waits for one thing to happen on the cluster


@pytest.fixture(scope="session")
def slurm_cluster():
    """The cluster, brought up for the session (and down after it, unless it was up before)."""
    was_up = subprocess.run([CLUSTER, "status"], capture_output=True).returncode == 0
    if not was_up:
        if not shutil.which("slurmctld") and not shutil.which("apt-get"):
            pytest.skip("SLURM is not installed and there is no apt-get to install it "
                        "(tests/slurm_cluster.sh)")
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
    listing = subprocess.run(["squeue", "--me", "--array", "--noheader", "--format=%i"], capture_output=True,
                             text=True, check=True).stdout
    return listing.split()


def wait_until(what: str, condition) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {WAIT_S} s"
        time.sleep(0.5)


def outputs(run_dir: Path) -> dict[str, tuple]:
    """Per job: its files' bytes (the bitstream) and the numbers of its result, not times or paths."""
    jobs = {}
    for path in sorted(run_dir.glob("*/*/*/result.json")):
        result = json.loads(path.read_text())
        files = {p.name: p.read_bytes() for p in path.parent.iterdir()  # not the job's lock file
                 if p.name not in ("result.json", "job.log") and not p.name.startswith(".")}
        jobs[str(path.parent.relative_to(run_dir))] = (
            files, result["status"], result["bits"], result["kbps"], result["metrics"], result["config_hash"],
            result["frames"], result["codec_version"])
    return jobs


@pytest.mark.slow
@pytest.mark.slurm
def test_the_demo_sweep_on_slurm_equals_the_local_run(slurm, tmp_path, capfd):
    sweep = ["codec=x265", "anchor=vvenc", "testset=demo", "testset.frames=3", "testset.sequences=[DEMO_001]",
             "codec.rate_points=[37,51]", "anchor.rate_points=[37,52]", "metrics=psnr", "report=false",
             "run=demo"]
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
        deadline = time.monotonic() + WAIT_S
        while not (hanging.exists() and hanging.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
        if hanging.exists():
            killed.append(hanging.read_text())
            still_queued.extend(job for job in our_jobs() if job != killed[0])
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
@pytest.mark.parametrize(("request_too_big", "expected"), [
    (f"hydra.launcher.cpus_per_task={(os.cpu_count() or 1) + 1}",
     "did not run: pending (PartitionConfig) for"),
    ("hydra.launcher.mem_gb=100000", "SLURM refused the array of 2 fake jobs: "),
])
def test_an_impossible_request_ends_with_slurms_reason(slurm, tiny, capsys, request_too_big, expected):
    with pytest.raises(SystemExit) as exit_info:  # given up after 3 s pending, not waited for
        main([*tiny, "anchor=none", "testset.sequences=[SEQ_A]", *SMALL, request_too_big,
              "hydra.launcher.unschedulable_after_s=3"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "2 of 2 jobs failed" in err and expected in err  # every job failed: listed, not a crash
    results = [json.loads(path.read_text()) for path in run_dir_of(tiny).glob("*/*/*/result.json")]
    assert len(results) == 2 and all(r["status"] == "failed" and expected in r["error"] for r in results)
    assert (run_dir_of(tiny) / "summary.csv").is_file()
    assert not our_jobs()  # a job that could not run is cancelled, not left pending
    with pytest.raises(SystemExit):  # a rerun that fails otherwise says why it failed this time
        main([*tiny, "anchor=none", "testset.sequences=[SEQ_A]", *SMALL, "+codec.fail_on=[SEQ_A/1,SEQ_A/3]"])
    assert {read_result(run_dir_of(tiny) / "fake/SEQ_A" / rate)["error"] for rate in "13"} == {
        "CodecError: fake encoder crashed on purpose on SEQ_A/1",
        "CodecError: fake encoder crashed on purpose on SEQ_A/3"}


@pytest.mark.slow
@pytest.mark.slurm
def test_a_stopped_slurmd_ends_the_sweep_with_the_reason(slurm, tiny, capsys):
    subprocess.run([CLUSTER, "stop", "slurmd"], check=True, capture_output=True)

    def node_down() -> bool:
        return subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True,
                              text=True).stdout.strip().startswith("down")

    try:
        wait_until("the node going down", node_down)
        with pytest.raises(SystemExit) as exit_info:
            main([*tiny, "anchor=none", "testset.sequences=[SEQ_A]", *SMALL,
                  "hydra.launcher.unschedulable_after_s=3"])
        assert exit_info.value.code == 1
        err = capsys.readouterr().err
        assert "2 of 2 jobs failed" in err
        assert "did not run: pending (Nodes required for job are DOWN" in err
        assert not our_jobs()
    finally:
        subprocess.run([CLUSTER, "up"], capture_output=True, check=True, timeout=300)


@pytest.mark.slow
@pytest.mark.slurm
def test_ctrl_c_cancels_the_sweeps_jobs(slurm, tiny, tmp_path):
    hanging = run_dir_of(tiny) / "fake" / "SEQ_A" / "1" / "hanging"
    env = {**os.environ, "FAKE_CODEC_HANG": "SEQ_A/1"}
    process = subprocess.Popen([sys.executable, "-m", "ctc.runner", *tiny, "anchor=none",
                                "testset.sequences=[SEQ_A]", *SMALL], env=env, stderr=subprocess.PIPE,
                               text=True)
    try:
        wait_until("the job hanging", lambda: hanging.exists() and process.poll() is None)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=WAIT_S)
    finally:
        process.kill()
    assert process.returncode != 0
    array = hanging.read_text().split("_")[0]
    assert f"interrupted: cancelled the sweep's SLURM jobs {array} (scancel)" in err
    wait_until("the cancelled jobs leaving the queue", lambda: not our_jobs())


def test_the_tasks_of_an_accounting_record_are_expanded():
    assert _expand("12_3") == ["12_3"] and _expand("12") == ["12"]
    assert _expand("12_[0-2,7%4]") == ["12_0", "12_1", "12_2", "12_7"]


def test_unschedulable_reasons_match_by_prefix_of_squeues_reason():
    policy = WaitPolicy(1, ("ReqNodeNotAvail", "PartitionConfig"), 5, 5, 5)
    assert policy.unschedulable(JobState("PENDING", "ReqNodeNotAvail, UnavailableNodes:node1"))
    assert policy.unschedulable(JobState("PENDING", "PartitionConfig"))
    assert not policy.unschedulable(JobState("PENDING", "Resources"))
    assert not policy.unschedulable(JobState("RUNNING", "PartitionConfig"))
    with pytest.raises(ValueError, match="poll_s"):
        WaitPolicy.from_settings({"unschedulable_reasons": []})


def test_job_resources_come_from_the_launcher_then_the_codec_then_the_defaults():
    launcher = {"mem_gb": None, "cpus_per_task": None, "timeout_min": None, "gpus_per_node": None,
                "job_defaults": {"cpus_per_task": 1, "mem_gb": 4, "timeout_min": 120}}
    gfvc = {"name": "cfte", "slurm": {"cpus_per_task": 2, "mem_gb": 16}}
    assert job_resources(gfvc, launcher, uses_gpu=True) == {
        "cpus_per_task": 2, "mem_gb": 16, "timeout_min": 120, "gpus_per_node": 1}
    assert job_resources({"name": "x265"}, launcher, uses_gpu=False) == {
        "cpus_per_task": 1, "mem_gb": 4, "timeout_min": 120, "gpus_per_node": 0}
    assert job_resources(gfvc, {**launcher, "mem_gb": 2}, uses_gpu=True)["mem_gb"] == 2
    assert job_device("auto", 1) == "cuda:0" and job_device("auto", 0) == "cpu"
    assert job_device("cuda", 1) == "cuda:0" and job_device("cpu", 1) is None


def test_each_job_on_a_node_uses_as_many_threads_as_it_has_cpus_and_its_nodes_device() -> None:
    overrides = ["job.role=score", "job.device=cpu", "job.threads=2", "job.sequence=A"]
    arguments = CtcSlurmLauncher._arguments(overrides, 3, "cuda:0", threads=8)
    assert arguments[0] == ["job.role=score", "job.sequence=A", "job.threads=8", "job.device=cuda:0"]
    kept = CtcSlurmLauncher._arguments(overrides, 3, None, threads=8)[0]  # an explicit device stays
    assert kept == ["job.role=score", "job.device=cpu", "job.sequence=A", "job.threads=8"]


def test_every_codec_config_sizes_its_slurm_jobs_and_gfvc_codecs_ask_for_a_gpu():
    from ctc.codec import codec_class
    from ctc.conf import load_section

    for path in sorted((TESTS.parent / "ctc" / "conf" / "codec").glob("*.yaml")):
        section = load_section("codec", path.stem)
        assert {"cpus_per_task", "mem_gb", "timeout_min"} <= set(section["slurm"]), path
        assert section["slurm"].get("gpus_per_node", 0) == (1 if codec_class(section).uses_gpu else 0), path


def test_a_sweep_where_every_job_fails_lists_them_and_still_reports(tiny, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*tiny, "launcher=basic", "testset.sequences=[SEQ_A]", "+codec.fail_on=[SEQ_A/1,SEQ_A/3]",
              "+anchor.fail_on=[SEQ_A/2,SEQ_A/4]"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "4 of 4 jobs failed" in err and "fake_anchor/SEQ_A/2: CodecError: fake encoder crashed" in err
    run_dir = run_dir_of(tiny)
    assert (pd.read_csv(run_dir / "summary.csv").status == "failed").all()
    write_report(run_dir, anchor="fake_anchor")  # what make report does (the tiny sweep has report=false)
    summary = (run_dir / "report" / "summary.md").read_text()
    assert summary.count("failed job") == 4
