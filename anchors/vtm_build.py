"""``make vtm``: build VTM's EncoderApp and DecoderApp (Release) into the machine's tool cache.

VTM is not on any package registry, so the harness builds it from source, once per machine:

    python -m anchors.vtm_build SOURCE [--tag VTM-22.2] [--sha256 HEX] [--force]

``SOURCE`` is a git URL (cloned at ``--tag``), a local source folder, or a source archive
(``.tar.gz``, ``.tgz``, ``.tar``, ``.zip``; ``--sha256`` checks it before anything is built). The
build goes into ``<tool cache>/vtm/VTM-<version>/`` (``bin/EncoderAppStatic``,
``bin/DecoderAppStatic``, ``cfg/``, ``COPYING``, ``build.json``), outside any clone of the project, so
every clone on the machine finds it (:func:`anchors.vtm.find_program` looks there last). A version
that is already built is not built again. Standard library only: it runs before the project's
virtual environment exists.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

from ctc.cli import finish
from ctc.hashing import compute_digest
from ctc.paths import vtm_cache_dir

VERSION_HEADER = Path("source/Lib/CommonLib/version.h")
VERSION_DEFINE = re.compile(r'#define\s+VTM_VERSION\s+"([\d.]+)"')
BANNER = re.compile(r"VVCSoftware: VTM (?:Encoder|Decoder) Version ([\d.]+)")
PROGRAMS = ("EncoderAppStatic", "DecoderAppStatic")
TARGETS = ("EncoderApp", "DecoderApp")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz", ".zip")
BUILD_RECORD = "build.json"


class BuildError(RuntimeError):
    """The source cannot be used or the build failed; the message names the source and the step."""


def install_dir(version: str, root: Path | None = None) -> Path:
    return (root or vtm_cache_dir()) / f"VTM-{version}"


def is_installed(folder: Path) -> bool:
    return (folder / BUILD_RECORD).is_file() and all(
        os.access(folder / "bin" / name, os.X_OK) for name in PROGRAMS
    )


def source_kind(source: str) -> str:
    """``archive``, ``folder`` or ``git``."""
    if Path(source).is_dir():
        return "folder"
    if source.lower().endswith(ARCHIVE_SUFFIXES):
        if not Path(source).is_file():
            raise BuildError(f"VTM source archive {source} does not exist")
        return "archive"
    if re.match(r"^(https?|ssh|git)://|^[\w.-]+@[\w.-]+:", source):
        return "git"
    raise BuildError(
        f"VTM source {source!r} is not a folder, a source archive "
        f"({', '.join(ARCHIVE_SUFFIXES)}) or a git URL"
    )


def version_in(tree: Path) -> str:
    """The VTM version a source tree declares in ``source/Lib/CommonLib/version.h``."""
    header = tree / VERSION_HEADER
    if not header.is_file():
        raise BuildError(f"{tree} is not a VTM source tree: {VERSION_HEADER} is missing")
    match = VERSION_DEFINE.search(header.read_text(errors="replace"))
    if not match:
        raise BuildError(f"{header} defines no VTM_VERSION")
    return match.group(1)


def source_root(folder: Path) -> Path:
    """The VTM tree in an unpacked archive: the folder itself or its single top folder."""
    if (folder / VERSION_HEADER).is_file():
        return folder
    tops = [path for path in folder.iterdir() if path.is_dir()]
    if len(tops) == 1 and (tops[0] / VERSION_HEADER).is_file():
        return tops[0]
    raise BuildError(f"no VTM source tree ({VERSION_HEADER}) at the top of the archive")


def archive_version(archive: Path) -> str:
    """The version in an archive's ``version.h``, read without unpacking the rest."""
    suffix = str(VERSION_HEADER)
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as bundle:
            names = [name for name in bundle.namelist() if name.endswith(suffix)]
            text = bundle.read(min(names, key=len)).decode(errors="replace") if names else ""
    else:
        with tarfile.open(archive) as bundle:
            member = next((m for m in bundle if m.name.endswith(suffix)), None)
            text = bundle.extractfile(member).read().decode(errors="replace") if member else ""
    match = VERSION_DEFINE.search(text)
    if not match:
        raise BuildError(f"{archive} holds no VTM {VERSION_HEADER} with a VTM_VERSION")
    return match.group(1)


def unpack(archive: Path, into: Path) -> Path:
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(into)
    else:
        with tarfile.open(archive) as bundle:
            bundle.extractall(into, filter="data")
    return source_root(into)


def run(command: list[str], log: Path, cwd: Path | None = None) -> None:
    """Run one build step, its output appended to ``log``; a failure shows the log's tail."""
    print("$ " + " ".join(command), flush=True)
    with open(log, "a", encoding="utf-8") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        proc = subprocess.run(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise BuildError(
            f"{command[0]} {command[1] if len(command) > 1 else ''} exited with status "
            f"{proc.returncode} (full log: {log})\n{tail}"
        )


def banner_version(program: Path) -> str:
    proc = subprocess.run(
        [str(program), "--help"], capture_output=True, text=True, errors="replace", timeout=60, check=False
    )
    match = BANNER.search(proc.stdout + proc.stderr)
    if not match:
        raise BuildError(f"the built {program} printed no VTM banner")
    return match.group(1)


def build_tree(tree: Path, build: Path, target: Path, log: Path, jobs: int) -> None:
    """cmake-build ``tree`` (a private copy: VTM writes its binaries into ``<tree>/bin``) into ``target``."""
    run(["cmake", "-S", str(tree), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"], log)
    run(["cmake", "--build", str(build), "--parallel", str(jobs), "--target", *TARGETS], log)
    (target / "bin").mkdir(parents=True)
    for name in PROGRAMS:
        built = tree / "bin" / name
        if not built.is_file():
            raise BuildError(f"the build finished without {built} (full log: {log})")
        shutil.copy2(built, target / "bin" / name)
    shutil.copytree(tree / "cfg", target / "cfg")
    if (tree / "COPYING").is_file():
        shutil.copy2(tree / "COPYING", target / "COPYING")


def build(
    source: str,
    tag: str | None = None,
    sha256: str | None = None,
    force: bool = False,
    root: Path | None = None,
    jobs: int | None = None,
) -> Path:
    """Build VTM from ``source`` into the tool cache (unless that version is there); returns its folder."""
    kind = source_kind(source)
    root = root or vtm_cache_dir()
    if kind == "archive":
        archive = Path(source).resolve()
        if sha256:
            found = compute_digest(archive, "sha256")
            if found != sha256.lower():
                raise BuildError(
                    f"{archive} has sha256 {found}, expected {sha256.lower()}: not the VTM "
                    "source archive it should be"
                )
        version = archive_version(archive)
    elif kind == "folder":
        version = version_in(Path(source))
    else:
        if not tag:
            raise BuildError(f"a git source ({source}) needs a tag (e.g. --tag VTM-22.2)")
        version = tag.removeprefix("VTM-")
    target = install_dir(version, root)
    if is_installed(target) and not force:
        print(f"VTM {version} is already built: {target} (--force to build it again)")
        return target
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:  # a second make vtm on this machine waits for the first
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_installed(target) and not force:
            print(f"VTM {version} is already built: {target}")
            return target
        return _build_locked(source, kind, tag, version, target, root, jobs or os.cpu_count() or 1)


def _build_locked(
    source: str, kind: str, tag: str | None, version: str, target: Path, root: Path, jobs: int
) -> Path:
    started = time.time()
    with tempfile.TemporaryDirectory(prefix=".build-", dir=root) as scratch_name:
        scratch = Path(scratch_name)
        log = scratch / "build.log"
        print(f"building VTM {version} from {source} (about 5 minutes on 2 cores) ...", flush=True)
        if kind == "archive":
            tree = unpack(Path(source), scratch / "src")
        elif kind == "folder":
            tree = scratch / "src"
            shutil.copytree(source, tree, ignore=shutil.ignore_patterns(".git", "bin", "build", "lib"))
        else:
            tree = scratch / "src"
            run(["git", "clone", "--quiet", "--depth", "1", "--branch", str(tag), source, str(tree)], log)
        declared = version_in(tree)
        if declared != version:
            raise BuildError(f"{source} declares VTM {declared}, expected {version}")
        staging = scratch / "install"
        try:
            build_tree(tree, scratch / "build", staging, log, jobs)
            built = banner_version(staging / "bin" / PROGRAMS[0])
        except BuildError:
            shutil.copy2(log, root / f"build-{version}.log")
            raise
        if built != version:
            raise BuildError(f"the built encoder reports VTM {built}, expected {version}")
        record = {
            "version": version,
            "source": source,
            "kind": kind,
            "tag": tag,
            "sha256": compute_digest(Path(source), "sha256") if kind == "archive" else None,
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": round(time.time() - started, 1),
            "host": os.uname().nodename,
        }
        (staging / BUILD_RECORD).write_text(json.dumps(record, indent=2) + "\n")
        shutil.copy2(log, staging / "build.log")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    print(f"built VTM {version} in {time.time() - started:.0f} s: {target}/bin/{{{','.join(PROGRAMS)}}}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anchors.vtm_build", description=__doc__.split("\n")[0])
    parser.add_argument("source", help="git URL, VTM source folder, or source archive")
    parser.add_argument("--tag", help="git tag to build (git sources), e.g. VTM-22.2")
    parser.add_argument("--sha256", help="expected sha256 of a source archive")
    parser.add_argument("--force", action="store_true", help="build again even when this version is built")
    parser.add_argument("--jobs", type=int, help="parallel compile jobs (default: the CPU cores)")
    args = parser.parse_args(argv)
    return finish(
        "make vtm",
        lambda: build(args.source, args.tag, args.sha256 or None, args.force, jobs=args.jobs),
        (BuildError,),
    )


if __name__ == "__main__":
    sys.exit(main())
