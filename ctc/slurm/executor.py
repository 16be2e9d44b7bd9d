"""The SLURM executor (``launcher=slurm``): a sweep's typed tasks as submitit job arrays on a cluster.

- every codec's and the scoring task's resources checked against the cluster before the first
  ``sbatch`` (:meth:`SlurmExecutor.preflight`, :mod:`ctc.slurm.check`): a wrong one stops the sweep
  before anything is submitted or written; a default CPU count is fitted to the largest node;
- one job array per codec (at most ``max_array_size`` tasks each), all submitted before any is
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

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ctc.sweep.executors import submitit_executor
from ctc.sweep.plan import SweepPlan
from ctc.sweep.tasks import Task, run_task

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
FAILED = "SlurmJobFailed"  # how a job that ended without a result is named in its result.json
# What slurmstepd writes in a job's log when the cgroup's out-of-memory handler killed one of its
# processes. Accounting may record the step's OUT_OF_MEMORY after squeue already says FAILED.
OOM_KILL_LINE = re.compile(r"^slurmstepd\S*: error: Detected \d+ oom[-_]kill event", re.MULTILINE)


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
    """The device of a job on a node: its own GPU is ``cuda:0`` there (SLURM hides the others);
    None keeps the sweep's choice (an explicit ``cpu`` or ``cuda:N``)."""
    if device == "auto":
        return "cuda:0" if gpus else "cpu"
    return "cuda:0" if device == "cuda" else None


class SlurmExecutor:
    whole_sweep = True

    def __init__(self, settings: Mapping[str, Any], configs: Sequence[DictConfig]) -> None:
        self.params = dict(settings)
        self.device = str(configs[0].device)
        # the keys the command line sets (codec.slurm.mem_gb, hydra.launcher.cpus_per_task): never cut
        self.command_line = {
            item.lstrip("+~").split("=", 1)[0]
            for config in configs
            for item in [*config.hydra.overrides.task, *config.hydra.overrides.hydra]
        }
        self.checked: dict[str, dict[str, Any]] | None = None  # each codec's (and "scoring") resources

    def preflight(self, plans: Sequence[SweepPlan]) -> None:
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
            self.checked = {}
            for name, (resources, prefix, what) in asked.items():
                explicit = {
                    key
                    for key in RESOURCE_KEYS
                    if {f"hydra.launcher.{key}", f"{prefix}.{key}"} & self.command_line
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

    def lanes(self, plans: Sequence[SweepPlan]) -> dict[str, int]:
        """How many tasks of each array (a codec's, by its name, and ``scoring``) the cluster runs at once
        when it runs nothing else: the room its partition's nodes have for one task's CPUs, memory and
        GPUs (:meth:`preflight`'s resources), at most ``array_parallelism``. For ``--plan``; raises
        :class:`ctc.sweep.plan.SweepConfigError` as :meth:`preflight` does."""
        from ctc.slurm.check import SlurmSettingError, cluster_nodes, partition_nodes, room
        from ctc.slurm.wait import WaitPolicy
        from ctc.sweep.plan import SweepConfigError

        self.preflight(plans)
        parallel = self.params.get("array_parallelism")
        try:
            nodes = cluster_nodes(WaitPolicy.from_settings(self.params).command_timeout_s)
            lanes = {}
            checked = self.checked or {}
            for name, resources in sorted(checked.items(), key=lambda item: item[0] == "scoring"):
                chosen = partition_nodes(nodes, resources.get("partition") or self.params.get("partition"))
                most = sum(room(node, resources) for node in chosen)
                lanes[name] = max(1, min(most, int(parallel)) if parallel else most)
        except SlurmSettingError as exc:
            raise SweepConfigError(str(exc)) from None
        return lanes

    def _scoring_resources(self) -> dict[str, Any]:
        return job_resources({"slurm": self.params.get("scoring_task")}, self.params, False)

    def run(self, tasks: Sequence[Task]) -> list[str | None]:
        from ctc.slurm.commands import SlurmCommandError, cancel
        from ctc.slurm.wait import WaitPolicy, wait_for_jobs

        policy = WaitPolicy.from_settings(self.params)
        submitted: dict[int, Any] = {}  # index: submitit job
        refused = ""
        try:
            refused = self._submit(tasks, submitted)
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
        return [
            _outcome(submitted[index], outcomes[submitted[index].job_id], refused)
            if index in submitted
            else f"{FAILED}: not submitted: {refused}"
            for index in range(len(tasks))
        ]

    def _submit(self, tasks: Sequence[Task], submitted: dict[int, Any]) -> str:
        """Submit one array per codec and one of the scoring tasks (more past max_array_size), filling
        ``submitted`` with each task's submitit job, until sbatch refuses one: returns why ("" if none)."""
        groups: dict[str, list[int]] = {}
        for index, task in enumerate(tasks):
            groups.setdefault(task.name, []).append(index)
        for name, indices in groups.items():
            resources = self._resources(tasks[indices[0]])
            device = job_device(self.device, int(resources["gpus_per_node"]))
            size = int(self.params["max_array_size"] or len(indices))
            for start in range(0, len(indices), size):
                chunk = indices[start : start + size]
                on_node = [tasks[index].on_node(device, int(resources["cpus_per_task"])) for index in chunk]
                executor = self._executor(resources, name, len(chunk))
                try:
                    jobs = executor.map_array(run_task, on_node)
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

    def _resources(self, task: Task) -> dict[str, Any]:
        """The resources of ``task``'s array: its codec's (from the section it carries), or the scoring
        tasks'; as :meth:`preflight` checked them."""
        from ctc.codec import codec_class
        from ctc.sweep.tasks import CodingTask

        if isinstance(task, CodingTask):
            resources = job_resources(task.section, self.params, codec_class(task.section).uses_gpu)
        else:
            resources = self._scoring_resources()
        return (self.checked or {}).get(task.name, resources)

    def _executor(self, resources: Mapping[str, Any], codec: str, tasks: int) -> Any:
        """A submitit executor for one array, with this codec's resources."""
        params = {key: value for key, value in self.params.items() if key not in OWN_KEYS}
        params.update(
            resources,
            name=f"{params['name']}-{codec}",
            array_parallelism=params["array_parallelism"] or tasks,
        )
        return submitit_executor("slurm", params)


def _say(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"ctc-run: {message}", file=sys.stderr)


def _outcome(job: Any, outcome: Any, refused: str = "") -> str | None:
    """The task's own outcome when it left one, else a failure with the SLURM job id, state and log
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
        return f"{FAILED}: SLURM job {job.job_id} raised {last} (log: {log})"
    if refused and outcome.state in ("CANCELLED", UNKNOWN):
        message = f"SLURM job {job.job_id} cancelled before it gave a result: {refused}"
    elif outcome.state == NOT_RUN:
        message = f"SLURM job {job.job_id} did not run: {outcome.detail}"
    elif outcome.state == UNKNOWN:
        message = f"SLURM job {job.job_id} is lost: {outcome.detail}"
    else:
        state = ended_state(outcome.state, log)
        message = f"SLURM job {job.job_id} ended {state} without a result (log: {log})"
    return f"{FAILED}: {message}"


def ended_state(state: str, log: Path) -> str:
    """How a job that left no result ended: ``OUT_OF_MEMORY`` for a ``FAILED`` one whose log says the
    out-of-memory handler killed it, else SLURM's ``state``."""
    if state == "FAILED" and log.is_file() and OOM_KILL_LINE.search(log.read_text(errors="replace")):
        return "OUT_OF_MEMORY"
    return state
