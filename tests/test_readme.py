"""The README stays true: its quick command blocks run as a new user would run them, in a copy of the
clone, and write the files their markers name; its tables of per-codec facts equal the configs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ctc.conf import available, load_section
from ctc.paths import cache_dir

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
# <!-- quick: writes FILE FILE ... --> (or <!-- quick -->), a blank line, then an indented code block
MARKER = re.compile(
    r"^<!-- quick(?::\s*writes\s+(?P<files>[^>]*?))?\s*-->\n\n(?P<block>(?:(?: {4}.*)?\n)+)", re.M
)
BLOCK_TIMEOUT_S = 600


def quick_blocks(text: str) -> list[tuple[str, list[str]]]:
    """Each quick block's shell text and the files (relative to the clone) it says it writes."""
    return [
        (textwrap.dedent(match["block"]).strip() + "\n", (match["files"] or "").split())
        for match in MARKER.finditer(text)
    ]


BLOCKS = quick_blocks(README)


def test_the_readme_marks_its_quick_blocks_and_what_they_write():
    assert len(BLOCKS) >= 3 and all(files for _, files in BLOCKS)
    assert README.count("<!-- quick") == len(BLOCKS), "a quick marker not followed by an indented block"


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A copy of the clone's files (tracked and new, not ignored) with the shared data folder beside it
    as ``../shared``, this environment as its ``.venv``, and a ``make`` that never reinstalls it."""
    from ctc.paths import shared_dir

    if not shared_dir().is_dir():
        pytest.skip(
            f"shared data folder {shared_dir()} is absent (the README's blocks use ../shared/data); "
            "put it beside the clone as ../shared or set GFVC_SHARED"
        )
    top = tmp_path_factory.mktemp("readme")
    tree = top / "gfvc-ctc"
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listing.split("\0")):
        if (ROOT / name).is_file() and not (ROOT / name).is_symlink():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tree / name)
    (top / "shared").symlink_to(shared_dir().resolve())
    (tree / ".venv").symlink_to(Path(sys.prefix))
    make = shutil.which("make")
    assert make, "make is missing: a prerequisite of the README (Before you start)"
    tools = top / "bin"
    tools.mkdir()
    (tools / "make").write_text(f'#!/bin/sh\nexec {make} -o .venv/.installed "$@"\n')
    (tools / "make").chmod(0o755)
    return tree


def user_environment(tree: Path) -> dict[str, str]:
    """A new user's shell in the copy: the environment's commands on PATH (as after activating it), the
    copy's code first, ``../shared`` found beside it; the demo set and weights from this cache."""
    env = {key: value for key, value in os.environ.items() if key not in ("GFVC_SHARED", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(tree.parent / "bin"), str(Path(sys.prefix) / "bin"), env["PATH"]])
    env["PYTHONPATH"] = str(tree)
    env["GFVC_CACHE"] = str(cache_dir())
    return env


@pytest.mark.slow
@pytest.mark.parametrize(
    "index",
    range(len(BLOCKS)),
    ids=[block.split()[0] + f"-{number}" for number, (block, _) in enumerate(BLOCKS)],
)
def test_each_quick_block_runs_and_writes_what_it_says(clone, index):
    block, files = BLOCKS[index]
    assert not [name for name in files if (clone / name).exists()], "written before the block ran"
    proc = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block],
        cwd=clone,
        env=user_environment(clone),
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    output = f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, f"{block}\nexit {proc.returncode}\n{output}"
    missing = [name for name in files if not (clone / name).is_file()]
    assert not missing, f"{block}\ndid not write {missing}\n{output}"


def readme_table(header: str) -> list[list[str]]:
    """The rows of the README's table whose header line is ``header``, as cells."""
    lines = README.split(header + "\n", 1)[1].splitlines()[1:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_slurm_resources_table_names_every_codec_with_its_configs_resources():
    shown = {}
    for codecs, gpus, cpus, memory, minutes in readme_table("| codec | GPUs | CPUs | memory | time limit |"):
        for name in re.findall(r"`(\w+)`", codecs):
            shown[name] = {
                "gpus_per_node": int(gpus),
                "cpus_per_task": int(cpus),
                "mem_gb": int(memory.removesuffix(" GB")),
                "timeout_min": int(minutes.removesuffix(" min")),
            }
    assert sorted(shown) == available("codec")
    for name, resources in shown.items():
        assert resources == {"gpus_per_node": 0, **load_section("codec", name)["slurm"]}, name


def test_the_gfvc_settings_table_names_every_key_frame_codec():
    row = next(line for line in README.splitlines() if line.startswith("| `intra`, `key_frame_format` |"))
    named = set(re.search(r"a `picture_codec`: ([^)]*)\)", row)[1].replace("`", "").split(", "))
    assert named == set(available("picture_codec"))
