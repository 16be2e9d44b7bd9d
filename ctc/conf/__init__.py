"""Hydra configuration of ctc-run (a package so that Hydra finds it when installed).

Code outside a sweep (a GFVC codec building its key-frame codec, the model registry, tests) reads
single config files with :func:`load_section`, so every number stays in these YAML files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CONF_DIR = Path(__file__).resolve().parent


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
