"""Draw docs/architecture.png: the project's stages and which imports which, read from the code.

    .venv/bin/python docs/architecture.py [--check]

Each box is a stage (a folder, or a module that is a stage of its own); an arrow A -> B means some
module of A imports one of B (at module level or inside a function). Boxes stand on floors: a stage
stands above everything it imports, so every arrow points down. ``--check`` exits 1, naming them, if
two modules or two stages import each other (a circle), instead of drawing.
"""

from __future__ import annotations

import argparse
import ast
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ctc", "anchors", "models", "bench")
# Stages drawn as one box, each a list of folders and modules (the first match of a file wins).
STAGES = {
    "foundation: files, tools, config": [
        "ctc/frames.py",
        "ctc/paths.py",
        "ctc/hashing.py",
        "ctc/registry.py",
        "ctc/tools.py",
        "ctc/stopwatch.py",
        "ctc/rates.py",
        "ctc/devices.py",
        "ctc/fingerprint.py",
        "ctc/cli.py",
        "ctc/conf",
        "ctc/__init__.py",
    ],
    "test set": ["ctc/testset"],
    "codec interface": ["ctc/codec.py"],
    "identity, results store": ["ctc/identity.py", "ctc/results.py", "ctc/store.py", "ctc/provenance.py"],
    "metrics": ["ctc/metrics"],
    "scores of decoded versions": ["ctc/scores.py"],
    "one job": ["ctc/jobs.py"],
    "sweep": ["ctc/sweep"],
    "SLURM": ["ctc/slurm"],
    "report": ["ctc/report"],
    "contribution package, cross-check": ["ctc/package.py", "ctc/crosscheck"],
    "ctc-run": ["ctc/runner.py"],
    "anchors": ["anchors"],
    "GFVC models": ["models"],
    "benchmarks": ["bench"],
}


def stage_of(path: Path) -> str:
    relative = path.relative_to(ROOT).as_posix()
    for stage, places in STAGES.items():
        if any(relative == place or relative.startswith(place + "/") for place in places):
            return stage
    raise SystemExit(f"architecture: {relative} belongs to no stage of docs/architecture.py's STAGES")


def module_path(name: str) -> Path | None:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:end])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] in PACKAGES}


def module_graph() -> dict[str, set[str]]:
    """module file -> the project's module files it imports."""
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            targets = {module_path(name) for name in imported_modules(path)}
            source = path.relative_to(ROOT).as_posix()
            graph[source] = {t.relative_to(ROOT).as_posix() for t in targets if t is not None} - {source}
    return graph


def stage_graph() -> dict[str, set[str]]:
    """stage -> the stages it imports (itself left out)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = stage_of(path)
            graph[source]
            for name in imported_modules(path):
                target = module_path(name)
                if target is not None and stage_of(target) != source:
                    graph[source].add(stage_of(target))
    return graph


def circles(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Pairs of stages that reach each other."""

    reached = {stage: reachable(graph, stage) for stage in graph}
    return sorted((a, b) for a in graph for b in reached[a] if a < b and a in reached[b])


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def direct_arrows(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph without the arrows that a longer way implies (A -> C when A -> B -> C): fewer lines,
    the same order of the floors."""
    return {
        stage: {t for t in targets if not any(t in reachable(graph, other) for other in targets - {t})}
        for stage, targets in graph.items()
    }


def floors(graph: dict[str, set[str]]) -> dict[str, int]:
    floor: dict[str, int] = {}

    def place(stage: str) -> int:
        if stage not in floor:
            floor[stage] = 0  # guards a circle; --check refuses those before drawing
            floor[stage] = 1 + max((place(lower) for lower in graph.get(stage, ())), default=-1)
        return floor[stage]

    for stage in graph:
        place(stage)
    return floor


def draw(graph: dict[str, set[str]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floor = floors(graph)
    rows: dict[int, list[str]] = defaultdict(list)
    for stage in sorted(graph, key=lambda s: (floor[s], s)):
        rows[floor[stage]].append(stage)
    width = max(len(row) for row in rows.values())
    position = {
        stage: ((index + 0.5) * width / len(row), level * 1.6)
        for level, row in rows.items()
        for index, stage in enumerate(row)
    }
    fig, ax = plt.subplots(figsize=(3.4 * width, 1.25 * len(rows) + 1))
    for source, targets in direct_arrows(graph).items():
        for target in targets:
            (x0, y0), (x1, y1) = position[source], position[target]
            ax.annotate(
                "",
                xy=(x1, y1 + 0.3),
                xytext=(x0, y0 - 0.3),
                arrowprops={"arrowstyle": "-|>", "color": "#7a8799", "lw": 0.8, "shrinkA": 2, "shrinkB": 2},
            )
    for stage, (x, y) in position.items():
        places = ", ".join(place.removeprefix("ctc/") for place in STAGES[stage])
        label = f"{stage}\n{textwrap.fill(places, 34)}"
        ax.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=8,
            bbox={"boxstyle": "round,pad=0.4", "facecolor": "#dde6f2", "edgecolor": "#44546a"},
        )
    ax.set_xlim(-0.2, width + 0.2)
    ax.set_ylim(-0.8, 1.6 * max(rows) + 0.8)
    ax.axis("off")
    ax.set_title(
        "gfvc-ctc: stages and imports (A -> B: A imports B; arrows that a longer way implies are left out)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only check that no two stages import each other"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "architecture.png")
    args = parser.parse_args(argv)
    graph = stage_graph()
    found = circles(module_graph()) + circles(graph)
    if found:
        for a, b in found:
            print(f"architecture: {a} and {b} import each other", file=sys.stderr)
        return 1
    if not args.check:
        draw(graph, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
