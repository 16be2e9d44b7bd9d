"""Hydra configuration of ctc-run (a package so that Hydra finds it when installed).

Every config is read through Hydra's composition, so defaults lists (a GFVC codec's model and
picture codecs), search paths (the user's own config folder) and overrides reach nested sections.
``ctc-run`` composes each codec configuration of a sweep with :func:`compose`, once; so do
``ctc-complexity``, ``ctc-score`` and the tests, or with :func:`load_section`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CONF_DIR = Path(__file__).resolve().parent


def run_name(testset: str, frames: Any = None) -> str:
    """The default run folder: the test set's name, ``-f<N>`` added when only the first N frames run."""
    return f"{testset}-f{frames}" if frames not in (None, "None", "null", "") else str(testset)


def register_resolvers() -> None:
    """The interpolations ``config.yaml`` uses (``${ctc_run_name:...}``)."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("ctc_run_name", run_name, replace=True)


class ConfigNotFound(KeyError):
    """No ``ctc/conf/<group>/<name>.yaml``; the message lists the known names."""

    def __str__(self) -> str:
        return str(self.args[0])


def available(group: str) -> list[str]:
    """The names of a config group's files in this package."""
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


def compose(
    overrides: Sequence[str] = (),
    config_name: str = "config",
    config_dirs: Sequence[str] = (),
    multirun: bool = False,
) -> Any:
    """The config ``config_name`` composed as ``ctc-run`` composes it (a ``DictConfig``, Hydra's node
    included): ``overrides`` may set ``hydra.searchpath``, ``config_dirs`` are ``--config-dir`` folders,
    ``multirun`` accepts sweeps (``codec=a,b``) and leaves them out, as Hydra composes a multirun's
    config. Works inside a running Hydra app too: it uses its own config loader, not Hydra's globals."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.errors import MissingConfigException
    from hydra.types import RunMode

    from ctc.conf.launchers import register_launchers

    register_resolvers()
    register_launchers()
    search_path = create_config_search_path("pkg://ctc.conf")
    for folder in config_dirs:
        search_path.prepend(
            provider="command-line",
            path=f"file://{os.path.abspath(folder)}",
            anchor=SearchPathQuery(provider="schema"),
        )
    loader = ConfigLoaderImpl(config_search_path=search_path)
    try:
        return loader.load_configuration(
            config_name=config_name,
            overrides=list(overrides),
            run_mode=RunMode.MULTIRUN if multirun else RunMode.RUN,
            from_shell=False,
        )
    except MissingConfigException as exc:
        raise ConfigNotFound(str(exc).splitlines()[0]) from None


def load_section(
    group: str, name: str, overrides: Sequence[str] = (), config_dirs: Sequence[str] = ()
) -> dict[str, Any]:
    """The config ``<group>/<name>`` composed (its defaults list included) and resolved to a plain dict."""
    from omegaconf import OmegaConf

    try:
        config = compose(overrides, config_name=f"{group}/{name}", config_dirs=config_dirs)
    except ConfigNotFound:
        raise ConfigNotFound(
            f"no {group} config {name!r} in the config search path (this package has "
            f"{', '.join(available(group)) or 'none'})"
        ) from None
    return OmegaConf.to_container(OmegaConf.select(config, group.replace("/", ".")), resolve=True)


def without_hydra(config: Any) -> dict[str, Any]:
    """A composed config resolved to plain containers, without Hydra's own node."""
    from omegaconf import OmegaConf

    return {
        key: OmegaConf.to_container(config[key], resolve=True)
        if OmegaConf.is_config(config[key])
        else config[key]
        for key in config
        if key != "hydra"
    }
