"""Hydra configuration of ctc-run (a package so that Hydra finds it when installed).

Code outside a sweep (a GFVC codec building its key-frame codec, the model registry, tests) reads
single config files with :func:`load_section`, so every number stays in these YAML files.
"""

from __future__ import annotations

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
    """The names of a config group's files."""
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


def load_section(group: str, name: str) -> dict[str, Any]:
    """``ctc/conf/<group>/<name>.yaml`` resolved to a plain dict."""
    from omegaconf import OmegaConf

    path = CONF_DIR / group / f"{name}.yaml"
    if not path.is_file():
        raise ConfigNotFound(f"no {group} config {name!r}: {path} is missing "
                             f"(known: {', '.join(available(group)) or 'none'})")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def default_choice(group: str) -> str | None:
    """The option that ``config.yaml``'s defaults list picks for ``group`` (e.g. ``testset`` -> ``demo``)."""
    from omegaconf import OmegaConf

    for entry in OmegaConf.load(CONF_DIR / "config.yaml").defaults:
        if isinstance(entry, str) or group not in entry:
            continue
        return str(entry[group])
    return None
