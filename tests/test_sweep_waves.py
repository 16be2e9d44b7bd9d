"""The order of a sweep's tasks: sequence by sequence, scoring after its coding, threads within the cores,
scoring spread over the GPUs (device lists faked: the selection logic only)."""

from __future__ import annotations

import pytest

from ctc.devices import job_scoring_device, scoring_devices
from ctc.jobs import Job
from ctc.sweep.waves import plan_all_at_once, plan_waves, threads_per_task
from ctc.testset.sequences import SequenceSpec


def jobs(
    sequences: list[str],
    codecs: tuple[str, ...] = ("x265", "vvenc"),
    rate_points: int = 4,
) -> list[Job]:
    return [
        Job(
            "test" if codec == codecs[0] else "anchor",
            codec,
            SequenceSpec(name, "C", f"{name}.rgb", 64, 64, 4, 25.0),
            rate_point,
            {"n": rate_point},
        )
        for name in sequences
        for codec in codecs
        for rate_point in range(rate_points)
    ]


def test_on_the_cpu_each_sequence_is_coded_then_scored_alone_with_every_core() -> None:
    waves = plan_waves(jobs(["A", "B"]), ["cpu"], cores=2, workers=2)
    assert [(len(w.coding), [t.sequence for t in w.scoring]) for w in waves] == [
        (8, []),
        (0, ["A"]),
        (8, []),
        (0, ["B"]),
    ]
    assert [w.threads for w in waves] == [1, 2, 1, 2]  # 8 coding jobs on 2 workers: 1 thread each
    assert waves[1].scoring[0].threads == 2 and waves[1].scoring[0].device == "cpu"
    assert len(waves[1].scoring[0].entries) == 8  # all codecs and rate points of the sequence


def test_with_gpus_a_group_is_scored_while_the_next_is_coded_one_sequence_per_gpu() -> None:
    waves = plan_waves(jobs(["A", "B", "C"]), ["cuda:0", "cuda:1"], cores=16, workers=8)
    shape = [
        (sorted({j.sequence.name for j in w.coding}), [(t.sequence, t.device) for t in w.scoring])
        for w in waves
    ]
    assert shape == [(["A", "B"], []), (["C"], [("A", "cuda:0"), ("B", "cuda:1")]), ([], [("C", "cuda:0")])]
    assert waves[1].threads == 2 and waves[1].scoring[0].threads == 2  # 10 tasks on 8 workers, 16 cores
    assert waves[2].scoring[0].threads == 16


def test_a_launcher_that_takes_the_whole_sweep_codes_everything_then_scores_every_sequence() -> None:
    waves = plan_all_at_once(jobs(["A", "B", "C"]), ["cuda:0", "cuda:1"], cores=16, workers=8)
    assert [(len(w.coding), [(t.sequence, t.device, len(t.entries)) for t in w.scoring]) for w in waves] == [
        (24, []),
        (0, [("A", "cuda:0", 8), ("B", "cuda:1", 8), ("C", "cuda:0", 8)]),
    ]
    assert waves[0].threads == 2 and waves[1].scoring[0].threads == 5  # 24 jobs, then 3 tasks, on 8 workers


@pytest.mark.parametrize(
    "cores, workers, tasks, threads", [(2, 2, 9, 1), (2, 2, 1, 2), (16, 4, 8, 4), (16, 4, 2, 8), (2, 4, 4, 1)]
)
def test_workers_times_threads_never_exceed_the_cores(cores, workers, tasks, threads) -> None:
    assert threads_per_task(cores, workers, tasks) == threads
    assert min(workers, tasks) * threads <= max(cores, min(workers, tasks))


@pytest.mark.parametrize(
    "setting, sweep, gpus, devices",
    [
        ("auto", "auto", 0, ["cpu"]),  # no GPU: the CPU
        ("auto", "auto", 2, ["cuda:0", "cuda:1"]),  # every GPU, for the anchor's jobs too
        ("auto", "cpu", 2, ["cpu"]),  # the sweep held to the CPU
        ("auto", "cuda:1", 2, ["cuda:1"]),
        ("cpu", "auto", 2, ["cpu"]),
        ("cuda:0", "auto", 2, ["cuda:0"]),
        ("cuda", "auto", 1, ["cuda:0"]),
    ],
)
def test_scoring_takes_the_best_devices_present(setting, sweep, gpus, devices) -> None:
    assert scoring_devices(setting, sweep, gpus) == devices


def test_asking_for_a_gpu_without_one_is_an_error() -> None:
    with pytest.raises(ValueError, match="metrics.device=cuda but no CUDA device"):
        scoring_devices("cuda", "auto", 0)


@pytest.mark.parametrize(
    "setting, job_device, gpu, device",
    [
        ("auto", "cpu", True, "cuda"),  # a CPU codec's job on a GPU machine is scored on the GPU
        ("auto", "cpu", False, "cpu"),
        ("auto", "cuda:1", True, "cuda:1"),  # a GPU job keeps its own GPU
        ("cpu", "cuda:0", True, "cpu"),
    ],
)
def test_a_job_scoring_itself_takes_the_best_device_present(
    monkeypatch, setting, job_device, gpu, device
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    assert job_scoring_device(setting, job_device) == device
