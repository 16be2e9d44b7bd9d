"""Plug-in classes by name: the one registry helper of codecs, GFVC models and metrics.

A plug-in is a class in any importable module (this package's, or the user's own, installed or on
``PYTHONPATH``). A config section names it in one of two ways:

- ``module`` + ``class``: the class itself, no registration needed;
- ``type`` (+ ``module``, imported first so that its decorators run): a name registered with the
  kind's decorator (``@register_codec``, ``@register_model``, ``@register_metric``).

The section's ``name`` is a label (a results folder, a table row), never the implementation.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T", bound=type)


class PluginError(KeyError):
    """A plug-in cannot be found, imported or registered; the message says which and why."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    """Classes of one kind (``kind``: "codec", "model", "metric") registered by name; a second class
    under a taken name is refused (the same class registered again, by a module imported twice, is not)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, T] = {}

    def add(self, name: str, cls: T) -> T:
        known = self._classes.get(name)
        if known is not None and _qualified(known) != _qualified(cls):
            raise PluginError(
                f"{self.kind} name {name!r} is registered twice: by {_qualified(known)} and by "
                f"{_qualified(cls)}; give one of them another name"
            )
        self._classes[name] = cls
        return cls

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: make a class available under ``name``."""
        return lambda cls: self.add(name, cls)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __getitem__(self, name: str) -> T:
        if name not in self._classes:
            known = ", ".join(sorted(self)) or "none"
            raise PluginError(f"unknown {self.kind} {name!r}; registered: {known}")
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def resolve(self, section: Mapping[str, Any], base: type) -> T:
        """The class a config section names (``module`` + ``class``, or ``type``), a subclass of ``base``."""
        label = section.get("name") or section.get("type") or section.get("class")
        module, class_name, key = section.get("module"), section.get("class"), section.get("type")
        loaded = None
        if module:
            try:
                loaded = importlib.import_module(str(module))
            except ImportError as exc:
                raise PluginError(
                    f"{self.kind} {label!r}: cannot import its module {module!r}: {exc} "
                    "(is its package installed or on PYTHONPATH?)"
                ) from exc
        if class_name:
            if loaded is None:
                raise PluginError(f"{self.kind} {label!r}: 'class: {class_name}' needs the 'module' it is in")
            cls = getattr(loaded, str(class_name), None)
            if cls is None:
                raise PluginError(f"{self.kind} {label!r}: module {module!r} has no class {class_name!r}")
        elif key:
            try:
                cls = self[str(key)]
            except PluginError as exc:
                raise PluginError(f"{self.kind} {label!r} (module {module!r}): {exc}") from None
        else:
            raise PluginError(
                f"{self.kind} {label!r} names no implementation: give 'module' and 'class', "
                "or a registered 'type'"
            )
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(f"{self.kind} {label!r}: {_qualified(cls)} is not a {base.__name__}")
        return cls


def _qualified(cls: Any) -> str:
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls)}"
