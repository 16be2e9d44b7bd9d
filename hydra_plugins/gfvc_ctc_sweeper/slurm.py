"""The ``ctc_slurm`` Hydra launcher (``launcher=slurm``): Hydra's submitit SLURM launcher, fitted to a sweep.

What differs from ``submitit_slurm``:

- one job array per codec role (at most ``max_array_size`` tasks each), all submitted before any is
  awaited, each with its codec's resources: ``slurm:`` in ``ctc/conf/codec/<name>.yaml``, else
  ``job_defaults`` (GPU codecs ask for one GPU); a value set on the launcher applies to every job;
- each array in its partition: the codec's own (``slurm.partition``), else ``partitions.gpu`` for jobs
  that ask for a GPU and ``partitions.cpu`` for the others, else ``partition`` (every job);
- the sweep's scoring tasks (one per sequence, after the coding jobs) go in an array of their own,
  with the resources of ``scoring_task``;
- every job is told to use as many threads as it has CPUs (``cpus_per_task``);
- no cap of its own on the tasks that run at once (``array_parallelism`` null): the cluster decides;
- the jobs are awaited with :func:`ctc.slurm_wait.wait_for_jobs` (every job, no silent or endless
  wait, Ctrl-C cancels them) instead of submitit's ``results()``, which raises at the first failed
  job while the others still run; a job that ended without a result comes back failed, naming its
  SLURM job id, state and log.
"""

# No `from __future__ import annotations`: Hydra's plugin scan (in joblib workers too) executes this
# module outside sys.modules, where a dataclass with string annotations fails.

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import OmegaConf

RESOURCE_KEYS = ("cpus_per_task", "mem_gb", "timeout_min", "gpus_per_node")
WAIT_KEYS = ("poll_s", "unschedulable_reasons", "unschedulable_after_s", "unknown_after_s",
             "command_timeout_s")
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
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from ctc.slurm import cancel
        from ctc.slurm_wait import WaitPolicy, wait_for_jobs

        assert self.config is not None
        policy = WaitPolicy.from_settings(self.params)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        submitted: dict[int, Any] = {}  # index: submitit job
        refused: dict[int, str] = {}
        try:
            self._submit(job_overrides, initial_job_idx, submitted, refused)
        except KeyboardInterrupt:  # Ctrl-C between two submissions: the arrays already in go too
            arrays = sorted({job.job_id.split("_")[0] for job in submitted.values()}, key=int)
            if arrays:
                cancel(arrays, policy.command_timeout_s)
                _say(f"interrupted: cancelled the sweep's SLURM jobs {', '.join(arrays)} (scancel)")
            raise
        outcomes = wait_for_jobs([job.job_id for job in submitted.values()], policy, _say)
        returns = []
        for index, overrides in enumerate(job_overrides):
            if index in refused:
                returns.append(_failed(overrides, SlurmJobFailed(refused[index])))
            else:
                job = submitted[index]
                returns.append(_job_return(job, overrides, outcomes[job.job_id]))
        return returns

    def _submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int, submitted: dict[int, Any],
                refused: dict[int, str]) -> None:
        """Submit one array per role (a codec's jobs, the scoring tasks; more past max_array_size); fills
        ``submitted`` with each job's submitit job and ``refused`` with the reason for each job whose
        array sbatch refused."""

        assert self.config is not None
        roles: dict[str, list[int]] = {}
        for index, overrides in enumerate(job_overrides):
            roles.setdefault(_value(overrides, "job.role"), []).append(index)
        for role, indices in roles.items():
            name, resources = self._resources(role, job_overrides[indices[0]])
            device = job_device(str(self.config.device), int(resources["gpus_per_node"]))
            size = int(self.params["max_array_size"] or len(indices))
            for start in range(0, len(indices), size):
                chunk = indices[start:start + size]
                arguments = [self._arguments(job_overrides[index], initial_job_idx + index, device,
                                             int(resources["cpus_per_task"])) for index in chunk]
                executor = self._executor(resources, name, len(chunk))
                try:
                    jobs = executor.map_array(self, *zip(*arguments, strict=True))
                except Exception as exc:  # sbatch refused it (or slurmctld is down): these jobs never run
                    message = f"SLURM refused the array of {len(chunk)} {name} jobs: {exc}"
                    refused.update((index, message) for index in chunk)
                    _say(message)
                    continue
                submitted.update(zip(chunk, jobs, strict=True))
                _say(f"SLURM array {jobs[0].job_id.split('_')[0]}: {len(chunk)} {name} jobs, each "
                     + ", ".join(f"{key}={value}" for key, value in resources.items()))

    def _resources(self, role: str, overrides: Sequence[str]) -> tuple[str, dict[str, Any]]:
        """The name and resources of the jobs of ``role``: a codec's (from its configuration, which a
        sweep of several codec configurations loads for each in turn), or the scoring tasks'."""
        from ctc.codec import codec_class
        from ctc.jobs import ROLES
        from ctc.scoring import SCORE_ROLE

        assert self.config is not None
        if role == SCORE_ROLE:
            return "scoring", job_resources({"slurm": self.params.get("scoring_task")}, self.params, False)
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        section = OmegaConf.to_container(config[ROLES[role]], resolve=True)
        return str(section["name"]), job_resources(section, self.params, codec_class(section).uses_gpu)

    def _executor(self, resources: Mapping[str, Any], codec: str, tasks: int) -> Any:
        """A submitit executor for one array, as Hydra's launcher builds one, with this codec's resources."""
        import submitit

        params = {key: value for key, value in self.params.items() if key not in OWN_KEYS}
        params.update(resources, name=f"{params['name']}-{codec}",
                      array_parallelism=params["array_parallelism"] or tasks)
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, folder=params.pop("submitit_folder"),
                                         slurm_max_num_timeout=params.pop("max_num_timeout"))
        generic = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{key if key in generic else f"{self._EXECUTOR}_{key}": value
                                      for key, value in params.items()})
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


def _job_return(job: Any, overrides: Sequence[str], outcome: Any) -> JobReturn:
    """The task's own JobReturn when it left one, else a failure with the SLURM job id, state and log."""
    from submitit.core.utils import pickle_load

    from ctc.slurm_wait import NOT_RUN, UNKNOWN

    log = job.paths.stderr
    result = job.paths.result_pickle
    if result.exists():
        status, value = pickle_load(result)
        if status == "success":
            return value
        last = value.strip().splitlines()[-1] if value.strip() else "no traceback"
        return _failed(overrides, SlurmJobFailed(f"SLURM job {job.job_id} raised {last} (log: {log})"))
    if outcome.state == NOT_RUN:
        message = f"SLURM job {job.job_id} did not run: {outcome.detail}"
    elif outcome.state == UNKNOWN:
        message = f"SLURM job {job.job_id} is lost: {outcome.detail}"
    else:
        message = f"SLURM job {job.job_id} ended {outcome.state} without a result (log: {log})"
    return _failed(overrides, SlurmJobFailed(message))
