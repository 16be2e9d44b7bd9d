"""Where a sweep's tasks run: in this process, in joblib's worker processes, or as submitit jobs.

``launcher=<name>`` (``ctc/conf/launcher/<name>.yaml``) chooses ``hydra.launcher``: its ``_target_`` names
the executor class, its other keys are that executor's settings, the keys Hydra's launchers of these
names take (``n_jobs``, ``timeout_min``, ``cpus_per_task``, ...; :mod:`ctc.conf.launchers`). An executor
gets typed tasks (:mod:`ctc.sweep.tasks`) and says, for each, None or why it did not complete; the SLURM
one is :class:`ctc.slurm.executor.SlurmExecutor`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from omegaconf import DictConfig, OmegaConf

from ctc.sweep.plan import SweepConfigError, SweepPlan
from ctc.sweep.tasks import Task, run_task


class Executor(Protocol):
    # takes every task of the sweep at once (coding, then scoring): a cluster schedules them itself
    whole_sweep: bool

    def preflight(self, plans: Sequence[SweepPlan]) -> None:
        """Check what the executor would ask for (a cluster's resources) before anything is written."""

    def run(self, tasks: Sequence[Task]) -> list[str | None]:
        """Run ``tasks`` and wait for them; per task None, or why it did not complete."""

    def lanes(self, plans: Sequence[SweepPlan]) -> dict[str, int]:
        """How many tasks of each kind (a codec's name, ``scoring``) run at once, where a cluster decides
        (for ``--plan``); empty where the sweep's own workers do."""


def executor_for(configs: Sequence[DictConfig]) -> Executor:
    """The executor that the composed configurations of a sweep (one per codec configuration) choose;
    :class:`SweepConfigError` when ``hydra.launcher`` names none."""
    import importlib

    settings = OmegaConf.to_container(configs[0].hydra.launcher, resolve=True)
    assert isinstance(settings, dict)
    target = str(settings.pop("_target_", None))
    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name, None)
    except (ImportError, ValueError):
        cls = None
    if not all(hasattr(cls, key) for key in ("whole_sweep", "preflight", "run")):
        raise SweepConfigError(
            f"hydra.launcher._target_={target}: not an executor of ctc-run (a class with whole_sweep, "
            "preflight and run: ctc/sweep/executors.py); choose launcher=joblib, basic, submitit_local, slurm"
        )
    return cls(settings, configs)


class BasicExecutor:
    """One task after another inside this process (debugging; no worker processes)."""

    whole_sweep = False

    def __init__(self, settings: Mapping[str, Any], configs: Sequence[DictConfig]) -> None:
        pass

    def preflight(self, plans: Sequence[SweepPlan]) -> None:
        pass

    def run(self, tasks: Sequence[Task]) -> list[str | None]:
        return [run_task(task) for task in tasks]

    def lanes(self, plans: Sequence[SweepPlan]) -> dict[str, int]:
        return {}


class JoblibExecutor(BasicExecutor):
    """``n_jobs`` worker processes on this machine (joblib's loky backend, its workers reused)."""

    def __init__(self, settings: Mapping[str, Any], configs: Sequence[DictConfig]) -> None:
        self.settings = {key: _number(value) for key, value in settings.items()}
        self.settings["backend"] = "loky"

    def run(self, tasks: Sequence[Task]) -> list[str | None]:
        from joblib import Parallel, delayed

        return list(Parallel(**self.settings)(delayed(_in_worker)(task) for task in tasks))


class SubmititLocalExecutor(BasicExecutor):
    """Each task a local process started by submitit: the code path of SLURM, without a cluster."""

    def __init__(self, settings: Mapping[str, Any], configs: Sequence[DictConfig]) -> None:
        self.settings = dict(settings)

    def run(self, tasks: Sequence[Task]) -> list[str | None]:
        jobs = submitit_executor("local", self.settings).map_array(run_task, list(tasks))
        outcomes: list[str | None] = []
        for job in jobs:
            try:
                outcomes.append(job.result())
            except Exception as exc:  # the process died or raised: this task fails, the others stand
                outcomes.append(f"{type(exc).__name__}: {exc}")
        return outcomes


def _in_worker(task: Task) -> str | None:
    """:func:`run_task` in a joblib worker, the metrics' modules (and torch with them) imported first:
    loky measures a worker's memory after its first task and restarts a worker that grew by 300 MB since,
    as one whose first task coded and whose next one scored would (a restart, a warning of a leak, and
    torch imported again for every scoring task)."""
    from ctc.metrics import metric_class, use_metric_modules

    try:
        use_metric_modules(task.metrics.get("modules"))
        for name in task.metrics["names"]:
            metric_class(str(name))
    except Exception as exc:  # as run_task says it: this task fails, the others go on
        return f"{type(exc).__name__}: {exc}"
    return run_task(task)


def submitit_executor(cluster: str, settings: Mapping[str, Any]) -> Any:
    """A submitit executor for ``cluster`` ("local", "slurm") with ``settings`` (the keys of Hydra's
    submitit launchers: the generic ones as they are, the others prefixed by the cluster's name)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    params = dict(settings)
    init = {"folder": params.pop("submitit_folder")}
    if "max_num_timeout" in params:
        init[f"{cluster}_max_num_timeout"] = params.pop("max_num_timeout")
    executor = submitit.AutoExecutor(cluster=cluster, **init)
    generic = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(
        **{key if key in generic else f"{cluster}_{key}": value for key, value in params.items()}
    )
    return executor


def _number(value: Any) -> Any:
    """joblib's settings as Hydra's joblib launcher hands them on: a number given as text made one."""
    return int(value) if isinstance(value, str) and value.isdigit() else value
