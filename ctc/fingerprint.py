"""The code in a result's identity: a fingerprint of the Python source that makes its numbers.

A job is redone when the code that made its bitstream changed (a built-in model, a user's plug-in
package), and a score is redone when its metric's code changed. What is hashed, per file:

- the module's syntax tree without docstrings (``ast.dump``), so a comment, a docstring or reformatting
  changes nothing, while any statement, name or constant does;
- the implementation's own modules and every module they import, transitively, that is not the
  standard library or an installed third-party package (those are pinned by the lock file, whose digest
  every result records), nor the harness's plumbing: of the package ``ctc`` only the modules that touch
  pixels are followed (:data:`HASHED_HARNESS_MODULES`: raw IO and colour conversion, the metrics).
  The plumbing (configs, sweep, result files) moves data and is pinned by the test suite; hashing it
  would redo hours of results for a changed error message.

External binaries (VTM, FFmpeg) are not Python: their codecs hash the binaries' bytes and the exact
command lines instead (:mod:`anchors`), so refactoring their Python wrappers redoes nothing.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

HARNESS_PACKAGE = "ctc"
# The harness modules that change pixels or scores: hashed wherever the code of a result reaches them.
HASHED_HARNESS_MODULES = ("ctc.frames", "ctc.metrics")
DIGEST_CHARS = 12

_INSTALLED_ROOTS = tuple(
    {Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "platstdlib", "purelib", "platlib")}
)
_file_digests: dict[tuple[Path, int, int], tuple[str, tuple[str, ...]]] = {}


def code_fingerprint(modules: Iterable[str]) -> dict[str, str]:
    """``{"models/fomm.py": "1a2b3c4d5e6f", ...}``: each file of ``modules``' code (see the module doc)
    and a digest of its syntax tree. ``modules`` themselves are always hashed, even when installed."""
    starts = [str(name) for name in modules]
    owners = {name.split(".")[0] for name in starts}
    found: dict[str, str] = {}
    pending, seen = list(starts), set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        top = name.split(".")[0]
        if top not in owners and top != HARNESS_PACKAGE and _installed(top):
            continue  # the standard library or a third-party package: not searched (nor imported)
        path = _source_file(name)
        if path is None or not (name in starts or _followed(name, path, owners)):
            continue
        digest, imported = _digest_and_imports(path, name)
        found[_shown_path(name, path)] = digest
        parents = [name.rsplit(".", depth)[0] for depth in range(1, name.count(".") + 1)]
        pending.extend([*imported, *parents])  # a package's __init__ runs before its modules
    return dict(sorted(found.items()))


def fingerprint_digest(fingerprint: Mapping[str, str]) -> str:
    """One digest for a whole fingerprint (what a result records per metric)."""
    text = "\n".join(f"{path} {digest}" for path, digest in sorted(fingerprint.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]


def config_modules(section: Mapping[str, Any], skip: Iterable[str] = ()) -> list[str]:
    """Every ``module`` a config section names, nested sections included (a model, a translator), but
    not under the keys in ``skip`` (sections with an identity of their own, e.g. a key-frame codec)."""
    names: list[str] = []
    for key, value in section.items():
        if key in skip:
            continue
        if key == "module" and isinstance(value, str) and value:
            names.append(value)
        elif isinstance(value, Mapping):
            names += config_modules(value)
    return names


def _followed(name: str, path: Path, owners: set[str]) -> bool:
    top = name.split(".")[0]
    if top == HARNESS_PACKAGE:
        return any(name == hashed or name.startswith(hashed + ".") for hashed in HASHED_HARNESS_MODULES)
    if top in owners:  # the plug-in's own package, wherever it is installed
        return True
    resolved = path.resolve()
    return not any(resolved.is_relative_to(root) for root in _INSTALLED_ROOTS)


@functools.cache
def _installed(top: str) -> bool:
    """Whether the top-level module ``top`` is the standard library's or an installed package's (found
    without importing it)."""
    if top in sys.builtin_module_names:
        return True
    path = _source_file(top)
    return path is None or any(path.resolve().is_relative_to(root) for root in _INSTALLED_ROOTS)


def _source_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    return Path(origin) if origin and origin.endswith(".py") else None


def _shown_path(name: str, path: Path) -> str:
    parts = name.split(".")
    return "/".join(parts) + ("/__init__.py" if path.name == "__init__.py" else ".py")


def _digest_and_imports(path: Path, name: str) -> tuple[str, tuple[str, ...]]:
    stat = path.stat()
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _file_digests:
        tree = ast.parse(path.read_bytes(), filename=str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported = tuple(_imports_without_docstrings(tree, package))
        digest = hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()
        _file_digests[key] = (digest[:DIGEST_CHARS], imported)
    return _file_digests[key]


def _imports_without_docstrings(tree: ast.AST, package: str) -> list[str]:
    """The modules a file imports anywhere in it (functions' deferred imports too); for ``from a import
    b`` both ``a`` and ``a.b`` (``b`` may be a submodule), relative imports resolved against ``package``.
    Removes the docstrings from ``tree`` on the way (one walk)."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            if base:
                names.append(base)
                names += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return names
