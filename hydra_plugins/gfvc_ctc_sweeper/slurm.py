"""The ``ctc_slurm`` Hydra launcher (``launcher=slurm``): Hydra's submitit SLURM launcher, fitted to a sweep.

What differs from ``submitit_slurm``:

- every codec's and the scoring task's resources checked against the cluster before the first
  ``sbatch`` (:meth:`CtcSlurmLauncher.preflight`, :mod:`ctc.slurm.check`): a wrong one stops the sweep
  before anything is submitted or written; a default CPU count is fitted to the largest node;
- one job array per codec role (at most ``max_array_size`` tasks each), all submitted before any is
  awaited, each with its codec's resources: ``slurm:`` in ``ctc/conf/codec/<name>.yaml``, else
  ``job_defaults`` (GPU codecs ask for one GPU); a value set on the launcher applies to every job;
- each array in its partition: the codec's own (``slurm.partition``), else ``partitions.gpu`` for jobs
  that ask for a GPU and ``partitions.cpu`` for the others, else ``partition`` (every job);
- the sweep's scoring tasks (one per sequence, after the coding jobs) go in an array of their own,
  with the resources of ``scoring_task``;
- every job is told to use as many threads as it has CPUs (``cpus_per_task``);
- no cap of its own on the tasks that run at once (``array_parallelism`` null): the cluster decides;
- the jobs are awaited with :func:`ctc.slurm.wait.wait_for_jobs` (every job, no silent or endless
  wait, Ctrl-C cancels them) instead of submitit's ``results()``, which raises at the first failed
  job while the others still run; a job that ended without a result comes back failed, naming its
  SLURM job id, state and log;
- a submission refused after others went in (slurmctld gone, a limit of the account) cancels the
  arrays already submitted: the wave's jobs are all recorded as not run, none is left running.
"""

# No `from __future__ import annotations`: Hydra's plugin scan (in joblib workers too) executes this
# module outside sys.modules, where a dataclass with string annotations fails.

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import OmegaConf

RESOURCE_KEYS = ("cpus_per_task", "mem_gb", "timeout_min", "gpus_per_node")
WAIT_KEYS = (
    "poll_s",
    "unschedulable_reasons",
    "unschedulable_after_s",
    "unknown_after_s",
    "command_timeout_s",
    "outage_limit_s",
)
OWN_KEYS = frozenset({"max_array_size", "job_defaults", "scoring_task", "partitions", *WAIT_KEYS})


@dataclass
class CtcSlurmConf(SlurmQueueConf):
    """Hydra's SLURM settings plus ours; the values are in ``ctc/conf/launcher/slurm.yaml``."""

    _target_: str = "hydra_plugins.gfvc_ctc_sweeper.slurm.CtcSlurmLauncher"
    timeout_min: int | None = None
    array_parallelism: int | None = None
    max_array_size: int | None = None
    job_defaults: dict[str, Any] = field(default_factory=dict)
    partitions: dict[str, Any] = field(default_factory=dict)
    scoring_task: dict[str, Any] = field(default_factory=dict)
    poll_s: float | None = None
    unschedulable_reasons: list[str] = field(default_factory=list)
    unschedulable_after_s: float | None = None
    unknown_after_s: float | None = None
    command_timeout_s: float | None = None
    outage_limit_s: float | None = None


ConfigStore.instance().store(group="hydra/launcher", name="ctc_slurm", node=CtcSlurmConf, provider="gfvc-ctc")


class SlurmJobFailed(RuntimeError):
    """A SLURM job ended without a result (killed, timed out, its node failed, never ran, ...)."""


def job_resources(section: Mapping[str, Any], launcher: Mapping[str, Any], uses_gpu: bool) -> dict[str, Any]:
    """One job's CPUs, memory (GB), time limit (min) and GPUs: the launcher's value where it sets one
    (for every job), else the codec's ``slurm`` section, else ``job_defaults``; GPUs default to one
    for a codec that uses a GPU, none otherwise. And its ``partition`` where one is chosen for it: the
    codec's own, else the launcher's ``partitions.gpu`` or ``partitions.cpu`` by whether it asks for a
    GPU (none chosen: the launcher's ``partition``, for every job, stays)."""
    own = section.get("slurm") or {}
    defaults = {**launcher.get("job_defaults", {}), "gpus_per_node": 1 if uses_gpu else 0}
    resources = {}
    for key in RESOURCE_KEYS:
        for source in (launcher, own, defaults):
            if source.get(key) is not None:
                resources[key] = source[key]
                break
    by_kind = (launcher.get("partitions") or {}).get("gpu" if resources.get("gpus_per_node") else "cpu")
    if own.get("partition") or by_kind:
        resources["partition"] = own.get("partition") or by_kind
    return resources


def job_device(device: str, gpus: int) -> str | None:
    """The ``job.device`` of a job on a node: its own GPU is ``cuda:0`` there (SLURM hides the others);
    None keeps the sweep's choice (an explicit ``cpu`` or ``cuda:N``)."""
    if device == "auto":
        return "cuda:0" if gpus else "cpu"
    return "cuda:0" if device == "cuda" else None


class CtcSlurmLauncher(SlurmLauncher):
    checked: dict[str, dict[str, Any]] | None = None  # each codec's (and "scoring") resources, once checked

    def preflight(self, plans: Sequence[Any]) -> None:
        """Check SLURM's commands, the wait settings and every job's resources against the cluster
        (partition, QOS, the largest node) before anything is submitted; raises
        :class:`ctc.sweep.plan.SweepConfigError` for the first wrong one."""
        from ctc.codec import codec_class
        from ctc.jobs import ROLES
        from ctc.slurm.check import (
            SlurmSettingError,
            check_commands,
            check_qos,
            checked_resources,
            cluster_nodes,
            fitted_resources,
            partition_nodes,
        )
        from ctc.slurm.wait import WaitPolicy
        from ctc.sweep.plan import SweepConfigError

        assert self.config is not None
        try:
            policy = WaitPolicy.from_settings(self.params)
            check_commands()
            nodes = partition_nodes(cluster_nodes(policy.command_timeout_s), self.params.get("partition"))
            if self.params.get("qos"):
                check_qos(str(self.params["qos"]), policy.command_timeout_s)
            scoring = self._scoring_resources()
            asked = {"scoring": (scoring, "hydra.launcher.scoring_task", "the scoring tasks")}
            for plan in plans:
                for role, section in plan.sections.items():
                    resources = job_resources(section, self.params, codec_class(section).uses_gpu)
                    key = ROLES[role]
                    asked[section["name"]] = (resources, f"{key}.slurm", f"{key} {section['name']}")
            command_line = self._command_line_keys()
            self.checked = {}
            for name, (resources, prefix, what) in asked.items():
                explicit = {
                    key
                    for key in RESOURCE_KEYS
                    if {f"hydra.launcher.{key}", f"{prefix}.{key}"} & command_line
                }
                checked = checked_resources(what, resources)
                self.checked[name] = fitted_resources(what, checked, nodes, explicit)
                if self.checked[name] != resources:
                    _say(
                        f"{what}: cpus_per_task={self.checked[name]['cpus_per_task']} (asked "
                        f"{resources['cpus_per_task']}: the largest node's CPUs)"
                    )
        except (SlurmSettingError, ValueError) as exc:
            raise SweepConfigError(str(exc)) from None

    def _scoring_resources(self) -> dict[str, Any]:
        return job_resources({"slurm": self.params.get("scoring_task")}, self.params, False)

    def _command_line_keys(self) -> set[str]:
        """The keys the command line sets (``codec.slurm.mem_gb``, ``hydra.launcher.cpus_per_task``)."""
        assert self.config is not None
        overrides = [*self.config.hydra.overrides.task, *self.config.hydra.overrides.hydra]
        return {item.lstrip("+~").split("=", 1)[0] for item in overrides}

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from ctc.slurm.commands import SlurmCommandError, cancel
        from ctc.slurm.wait import WaitPolicy, wait_for_jobs

        assert self.config is not None
        policy = WaitPolicy.from_settings(self.params)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        submitted: dict[int, Any] = {}  # index: submitit job
        refused = ""
        try:
            refused = self._submit(job_overrides, initial_job_idx, submitted)
        except KeyboardInterrupt:  # Ctrl-C between two submissions: the arrays already in go too
            arrays = sorted({job.job_id.split("_")[0] for job in submitted.values()}, key=int)
            if arrays:
                cancel(arrays, policy.command_timeout_s)
                _say(f"interrupted: cancelled the sweep's SLURM jobs {', '.join(arrays)} (scancel)")
            raise
        if refused and submitted:  # all or nothing: the arrays that went in are cancelled, then awaited
            arrays = sorted({job.job_id.split("_")[0] for job in submitted.values()}, key=int)
            try:
                cancel(arrays, policy.command_timeout_s)
                _say(f"cancelled the arrays already submitted ({', '.join(arrays)}): {refused}")
            except SlurmCommandError as exc:
                _say(f"could not cancel the arrays already submitted ({', '.join(arrays)}): {exc}")
        outcomes = wait_for_jobs([job.job_id for job in submitted.values()], policy, _say)
        returns = []
        for index, overrides in enumerate(job_overrides):
            if index not in submitted:
                returns.append(_failed(overrides, SlurmJobFailed(f"not submitted: {refused}")))
            else:
                job = submitted[index]
                returns.append(_job_return(job, overrides, outcomes[job.job_id], refused))
        return returns

    def _submit(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int, submitted: dict[int, Any]
    ) -> str:
        """Submit one array per role (a codec's jobs, the scoring tasks; more past max_array_size), filling
        ``submitted`` with each job's submitit job, until sbatch refuses one: returns why ("" if none)."""

        assert self.config is not None
        roles: dict[str, list[int]] = {}
        for index, overrides in enumerate(job_overrides):
            roles.setdefault(_value(overrides, "job.role"), []).append(index)
        for role, indices in roles.items():
            name, resources = self._resources(role, job_overrides[indices[0]])
            device = job_device(str(self.config.device), int(resources["gpus_per_node"]))
            size = int(self.params["max_array_size"] or len(indices))
            for start in range(0, len(indices), size):
                chunk = indices[start : start + size]
                arguments = [
                    self._arguments(
                        job_overrides[index], initial_job_idx + index, device, int(resources["cpus_per_task"])
                    )
                    for index in chunk
                ]
                executor = self._executor(resources, name, len(chunk))
                try:
                    jobs = executor.map_array(self, *zip(*arguments, strict=True))
                except Exception as exc:  # sbatch refused it (or slurmctld is down): no job of the wave runs
                    said = " ".join(str(exc).split())
                    message = f"SLURM refused the array of {len(chunk)} {name} jobs: {said}"
                    _say(message)
                    return message
                submitted.update(zip(chunk, jobs, strict=True))
                _say(
                    f"SLURM array {jobs[0].job_id.split('_')[0]}: {len(chunk)} {name} jobs, each "
                    + ", ".join(f"{key}={value}" for key, value in resources.items())
                )
        return ""

    def _resources(self, role: str, overrides: Sequence[str]) -> tuple[str, dict[str, Any]]:
        """The name and resources of the jobs of ``role``: a codec's (from its configuration, which a
        sweep of several codec configurations loads for each in turn), or the scoring tasks'."""
        from ctc.codec import codec_class
        from ctc.jobs import ROLES
        from ctc.sweep.scoring import SCORE_ROLE

        assert self.config is not None
        if role == SCORE_ROLE:
            name, resources = "scoring", self._scoring_resources()
        else:
            config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            section = OmegaConf.to_container(config[ROLES[role]], resolve=True)
            name = str(section["name"])
            resources = job_resources(section, self.params, codec_class(section).uses_gpu)
        return name, (self.checked or {}).get(name, resources)

    def _executor(self, resources: Mapping[str, Any], codec: str, tasks: int) -> Any:
        """A submitit executor for one array, as Hydra's launcher builds one, with this codec's resources."""
        import submitit

        params = {key: value for key, value in self.params.items() if key not in OWN_KEYS}
        params.update(
            resources,
            name=f"{params['name']}-{codec}",
            array_parallelism=params["array_parallelism"] or tasks,
        )
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR,
            folder=params.pop("submitit_folder"),
            slurm_max_num_timeout=params.pop("max_num_timeout"),
        )
        generic = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{key if key in generic else f"{self._EXECUTOR}_{key}": value for key, value in params.items()}
        )
        return executor

    @staticmethod
    def _arguments(overrides: Sequence[str], number: int, device: str | None, threads: int) -> tuple:
        """What Hydra's launcher hands each submitit task (see ``BaseSubmititLauncher.__call__``), with
        the job's device and threads on its node."""
        replaced = ("job.threads=", "job.device=") if device is not None else ("job.threads=",)
        overrides = [item for item in overrides if not item.startswith(replaced)]
        overrides.append(f"job.threads={threads}")
        if device is not None:
            overrides.append(f"job.device={device}")
        return overrides, "hydra.sweep.dir", number, f"job_id_for_{number}", Singleton.get_state()


def _value(overrides: Sequence[str], key: str) -> str:
    return next(item.split("=", 1)[1] for item in overrides if item.startswith(f"{key}="))


def _say(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"ctc-run: {message}", file=sys.stderr)


def _failed(overrides: Sequence[str], error: Exception) -> JobReturn:
    return JobReturn(overrides=list(overrides), status=JobStatus.FAILED, _return_value=error)


def _job_return(job: Any, overrides: Sequence[str], outcome: Any, refused: str = "") -> JobReturn:
    """The task's own JobReturn when it left one, else a failure with the SLURM job id, state and log
    (``refused``: why its array was cancelled right after it was submitted)."""
    from submitit.core.utils import pickle_load

    from ctc.slurm.wait import NOT_RUN, UNKNOWN

    log = job.paths.stderr
    result = job.paths.result_pickle
    if result.exists():
        status, value = pickle_load(result)
        if status == "success":
            return value
        last = value.strip().splitlines()[-1] if value.strip() else "no traceback"
        return _failed(overrides, SlurmJobFailed(f"SLURM job {job.job_id} raised {last} (log: {log})"))
    if refused and outcome.state in ("CANCELLED", UNKNOWN):
        message = f"SLURM job {job.job_id} cancelled before it gave a result: {refused}"
    elif outcome.state == NOT_RUN:
        message = f"SLURM job {job.job_id} did not run: {outcome.detail}"
    elif outcome.state == UNKNOWN:
        message = f"SLURM job {job.job_id} is lost: {outcome.detail}"
    else:
        message = f"SLURM job {job.job_id} ended {outcome.state} without a result (log: {log})"
    return _failed(overrides, SlurmJobFailed(message))
