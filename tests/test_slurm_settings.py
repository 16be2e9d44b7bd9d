"""launcher=slurm without a cluster: the settings each job's array gets (resources, partitions, threads,
device), and what the sweep makes of SLURM's answers (accounting records, squeue's reasons, a job's log,
an outage longer than the sweep waits). The real cluster's tests: tests/test_slurm.py."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import test_runner
from test_runner import run_dir_of

from ctc.report.cli import write_report
from ctc.runner import main
from ctc.slurm.commands import JobState, _expand
from ctc.slurm.executor import ended_state, job_device, job_resources
from ctc.slurm.wait import WaitPolicy

TESTS = Path(__file__).resolve().parent
tiny = test_runner.tiny  # the fixture: a tiny test set, the fake codec and anchor


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

    task = ScoringTask(ScoreTask("A", (), "cpu", 2), None, {}, tmp_path, False, {})  # type: ignore[arg-type]
    on_node = task.on_node("cuda:0", threads=8)
    assert (on_node.score.sequence, on_node.score.threads, on_node.score.device) == ("A", 8, "cuda:0")
    kept = task.on_node(None, threads=8)  # an explicit device stays
    assert (kept.score.sequence, kept.score.threads, kept.score.device) == ("A", 8, "cpu")
    coding = CodingTask(Job("test", "x265", None, 37, {}, "cpu"), {}, {}, tmp_path, False, False, 2, {})  # type: ignore[arg-type]
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


def test_a_nodes_room_is_its_scarcest_resource_over_one_tasks_share():
    from ctc.slurm.check import Node, room

    node = Node("cpu", True, cpus=8, memory_mb=16000, gpus=2)
    task = {"cpus_per_task": 2, "mem_gb": 3, "gpus_per_node": 0}
    assert room(node, task) == 4  # 8 CPUs / 2; memory would hold 5 (16000 MB / 3072 MB)
    assert room(node, {**task, "mem_gb": 4}) == 3  # 16000 / 4096 = 3.9: memory is scarcer now
    assert room(node, {**task, "gpus_per_node": 1}) == 2  # one GPU each
    assert room(node, {**task, "mem_gb": 20}) == 0  # it does not fit at all
