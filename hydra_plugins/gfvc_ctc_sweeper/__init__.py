"""The ``ctc`` Hydra sweeper of gfvc-ctc (``hydra/sweeper=ctc``).

Hydra accepts plugin classes only from the ``hydra_plugins`` namespace, hence this package; the
sweep itself lives in :mod:`ctc.sweep.run`. The sweeper turns the composed configuration (codec,
anchor, test set and their rate points) into one Hydra job per (codec, sequence, rate point),
skips the complete ones and hands the rest to the configured launcher (joblib, submitit) in batches;
``slurm.py`` is the SLURM launcher (``launcher=slurm``).
"""

# No `from __future__ import annotations`: Hydra's plugin scan (in joblib workers too) executes this
# module outside sys.modules, where a dataclass with string annotations fails.

import sys
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict, read_write


@dataclass
class CtcSweeperConf:
    _target_: str = "hydra_plugins.gfvc_ctc_sweeper.CtcSweeper"
    # jobs handed to the launcher at once; null: twice the workers (`jobs`); all: every job of the sweep
    batch_size: Any = None
    # the task overrides of each codec configuration of a sweep (codec=a,b), set by ctc-run
    variants: Any = None


class CtcSweeper(Sweeper):
    def __init__(self, batch_size: int | None = None, variants: str | None = None) -> None:
        self.batch_size = batch_size
        self.variants = variants
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.config = _with_workers(config)
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        from ctc.identity import decode_identity
        from ctc.sweep.plan import SweepConfigError, codec_variants
        from ctc.sweep.run import run_sweep

        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        try:  # ctc-run hands them in; Hydra's own -m passes the sweep as it is
            variants = (
                decode_identity(self.variants)["variants"] if self.variants else codec_variants(arguments)
            )
        except SweepConfigError as exc:
            print(f"ctc-run: error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        configs = (
            [self.config]
            if len(variants) == 1
            else [
                _with_workers(self.hydra_context.config_loader.load_sweep_config(self.config, variant))
                for variant in variants
            ]
        )
        batch_size = None if self.batch_size == "all" else int(self.batch_size or 2 * int(self.config.jobs))
        run_sweep(
            list(zip(configs, variants, strict=True)),
            self.launcher.launch,
            batch_size,
            preflight=getattr(self.launcher, "preflight", None),
        )


def _with_workers(config: DictConfig) -> DictConfig:
    """``jobs: auto`` made one worker per core."""
    from ctc.sweep.plan import default_workers

    if config.jobs in (None, "auto"):
        with read_write(config), open_dict(config):
            config.jobs = default_workers()
    return config


# Hydra's plugin scan imports this module (its ``hydra_plugins`` namespace package, found on sys.path)
# before it loads a config: the sweeper's node is known to every composition, ctc.conf.compose too.
ConfigStore.instance().store(group="hydra/sweeper", name="ctc", node=CtcSweeperConf, provider="gfvc-ctc")
