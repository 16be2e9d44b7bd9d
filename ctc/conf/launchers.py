"""The ``hydra/launcher`` configs of ctc-run: each names the executor that runs a sweep's tasks and its
settings (``ctc/conf/launcher/<name>.yaml`` chooses one and sets them).

The settings are those of Hydra's own launchers of these names (joblib's ``n_jobs``, submitit's
``timeout_min``, ``cpus_per_task``, ``partition``, ...), so ``hydra.launcher.<key>=...`` and
``--cfg hydra -p hydra.launcher`` stay as users know them; only ``_target_`` differs: ctc-run composes
the configuration once and hands typed tasks to its own executors (:mod:`ctc.sweep.executors`) instead
of Hydra jobs that would compose it again in every worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def register_launchers() -> None:
    """Make the configs known to Hydra's config store (before any composition), after Hydra's plug-in
    scan, so that they win over an installed plug-in's configs of the same names."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins
    from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf
    from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf

    @dataclass
    class BasicConf:
        _target_: str = "ctc.sweep.executors.BasicExecutor"

    @dataclass
    class JoblibConf(JobLibLauncherConf):
        _target_: str = "ctc.sweep.executors.JoblibExecutor"

    @dataclass
    class SubmititLocalConf(LocalQueueConf):
        _target_: str = "ctc.sweep.executors.SubmititLocalExecutor"

    @dataclass
    class SlurmConf(SlurmQueueConf):
        """Hydra's SLURM settings plus ours; the values are in ``ctc/conf/launcher/slurm.yaml``."""

        _target_: str = "ctc.slurm.executor.SlurmExecutor"
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

    Plugins.instance()  # its first call scans the installed plug-ins, which register their configs
    store = ConfigStore.instance()
    for name, node in (
        ("ctc_basic", BasicConf),
        ("ctc_joblib", JoblibConf),
        ("ctc_submitit_local", SubmititLocalConf),
        ("ctc_slurm", SlurmConf),
    ):
        store.store(group="hydra/launcher", name=name, node=node, provider="gfvc-ctc")
