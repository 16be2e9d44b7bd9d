"""``ctc-package RUN``: a run as a JVET contribution, one folder (or zip) a cross-checker can check.

The package holds every complete job's bitstream, per-frame metrics and record (``job.json``: the
job's ``result.json`` verbatim, less the proposer's command lines and file names), each codec's
configuration as the sweep resolved it and its identity (binaries' versions, weights' file name and
sha256), the run's tables recomputed from these jobs, a README with the one command that checks it,
and ``MANIFEST.sha256``. The reference sequences are named by file name and md5, never included.

Every job's md5 of its decoded output comes from its ``result.json`` (``decoded_md5``, recorded when
the job decoded the very file it scored); a result made before jobs recorded it is decoded again from
its bitstream with the recorded configuration (:mod:`ctc.report.redecode`, refused when this machine's setup
no longer hashes to the job's).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ctc.hashing import compute_digest
from ctc.identity import UNHASHED_CODEC_KEYS
from ctc.provenance import now_iso
from ctc.report.cli import load_report
from ctc.report.files import write_files
from ctc.report.redecode import RedecodeError, RunFrames
from ctc.report.rows import ReportError, read_provenance
from ctc.results import ResultStatus, iter_results
from ctc.store import PER_FRAME_FILE, PROVENANCE_FILE, write_json_atomic

FORMAT = "gfvc-ctc contribution package 1"
INDEX_FILE = "package.json"
MANIFEST_FILE = "MANIFEST.sha256"
README_FILE = "README.md"
JOBS_DIR = "jobs"
JOB_FILE = "job.json"
TABLES_DIR = "tables"
# what a cross-checker needs to find and read a reference sequence (not the file)
SEQUENCE_KEYS = ("file", "file_md5", "class", "width", "height", "fps", "color_format", "bit_depth")
# result.json keys that stay with the proposer: their machine's command lines and working file names
PRIVATE_KEYS = ("commands", "decoded_file", "log_tail")


class PackageError(ValueError):
    """A run that cannot be packaged, or a package that must not be checked; the message says why."""


def sha256(path: Path) -> str:
    return compute_digest(path, "sha256")


def write_manifest(folder: Path) -> Path:
    """``MANIFEST.sha256`` (``sha256sum`` format) over every other file of ``folder``."""
    lines = [
        f"{sha256(path)}  {path.relative_to(folder).as_posix()}"
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST_FILE
    ]
    manifest = folder / MANIFEST_FILE
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def verify_manifest(folder: Path) -> None:
    """Refuse a package with a file missing, altered or added since its manifest was written."""
    manifest = folder / MANIFEST_FILE
    if not manifest.is_file():
        raise PackageError(f"{folder} has no {MANIFEST_FILE}: not a package made by ctc-package")
    listed: dict[str, str] = {}
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise PackageError(f"{manifest}, line {number}: expected '<sha256>  <file>', got {line!r}")
        listed[name] = digest
    for name, digest in listed.items():
        path = folder / name
        if not path.is_file():
            raise PackageError(f"package file {name} is missing (listed in {MANIFEST_FILE})")
        found = sha256(path)
        if found != digest:
            raise PackageError(
                f"package file {name} is altered: sha256 {found}, {MANIFEST_FILE} says {digest}"
            )
    extra = sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and path.name != MANIFEST_FILE and path.relative_to(folder).as_posix() not in listed
    )
    if extra:
        raise PackageError(
            f"package file {extra[0]} is not in {MANIFEST_FILE}"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
        )


def _decoded_md5(result: Mapping[str, Any], frames: RunFrames) -> tuple[str, str]:
    """The md5 of the job's decoded output and where it comes from."""
    if result.get("decoded_md5"):
        return str(result["decoded_md5"]), "recorded by the job"
    if (result.get("decode_details") or {}).get("output_md5"):
        return str(result["decode_details"]["output_md5"]), "reported by the job's decoder"
    try:
        job = frames.job(result["codec"], result["sequence"], result["rate_point"])
    except RedecodeError as error:
        raise PackageError(f"cannot give the decoded md5 of an older result: {error}") from error
    return hashlib.md5(job.frames.tobytes()).hexdigest(), job.source


def _codec_records(run_dir: Path, complete: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per codec: its role, the configuration its sweep resolved, the decoder's class and identity
    (one per codec: jobs made by two setups of a codec are not one contribution)."""
    records: dict[str, dict[str, Any]] = {}
    for result in complete:
        codec, identity = result["codec"], (result.get("identity") or {}).get("codec")
        if identity is None:
            raise PackageError(
                f"{run_dir / codec}: a result made before results recorded their identity; "
                "run the sweep again"
            )
        if codec in records:
            if records[codec]["identity"] != identity:
                raise PackageError(
                    f"{run_dir / codec} holds jobs made by more than one setup of {codec} "
                    "(the report lists the stale rows): run the sweep again first"
                )
            continue
        provenance = read_provenance(run_dir / codec)
        if not provenance.get("codec_config"):
            raise PackageError(
                f"{run_dir / codec / PROVENANCE_FILE} records no codec_config: the "
                f"cross-checker could not rebuild {codec}'s decoder"
            )
        # the decoder's configuration is the identity's (what made the bitstreams), with the settings
        # that never change a bitstream (a tool's timeout) from the sweep's
        unhashed = {
            key: value for key, value in provenance["codec_config"].items() if key in UNHASHED_CODEC_KEYS
        }
        records[codec] = {
            "role": result.get("role"),
            "class": (result.get("codec_provenance") or {}).get("class"),
            "version": result.get("codec_version"),
            "codec_config": {**identity["config"], **unhashed},
            "identity": identity,
            "binaries": _binaries(result),
        }
    return records


def _binaries(result: Mapping[str, Any]) -> dict[str, str]:
    """The sha256 of each program the job's command lines ran (by file name), where it is still there."""
    commands = result.get("commands") or {}
    programs = {
        Path(command[0]) for step in ("decode", "encode") for command in commands.get(step) or [] if command
    }
    return {program.name: sha256(program) for program in sorted(programs) if program.is_file()}


def _job_record(result: Mapping[str, Any], md5: str, md5_source: str) -> dict[str, Any]:
    record = {key: value for key, value in result.items() if key not in PRIVATE_KEYS}
    return {**record, "decoded_md5": md5, "decoded_md5_from": md5_source}


def build_package(run_dir: Path, out: Path, device: str = "auto") -> dict[str, Any]:
    """Write the package of ``run_dir`` into the new folder ``out``; returns its index."""
    run_dir = Path(run_dir)
    if out.exists():
        raise PackageError(f"{out} already exists: a package goes into a new folder")
    try:
        report = load_report(run_dir)
    except ReportError as error:
        raise PackageError(str(error)) from error
    results = list(iter_results(run_dir))
    complete = [result for _, result in results if result.get("status") == ResultStatus.OK]
    left_out = [
        f"{directory.relative_to(run_dir).as_posix()}: {result.get('error') or 'unfinished'}"
        for directory, result in results
        if result.get("status") != ResultStatus.OK
    ]
    if not complete:
        raise PackageError(f"{run_dir} holds no complete job to package")
    frames = RunFrames(run_dir, device)
    codecs = _codec_records(run_dir, complete)
    staging = Path(tempfile.mkdtemp(prefix=".ctc-package-", dir=out.parent))
    try:
        jobs, sequences = [], {}
        for result in complete:
            folder = Path(JOBS_DIR, result["codec"], result["sequence"], str(result["rate_point"]))
            source = run_dir / folder.relative_to(JOBS_DIR)
            bitstream = source / str(result.get("bitstream") or "")
            if not result.get("bitstream") or not bitstream.is_file():
                raise PackageError(f"{source}: the bitstream {result.get('bitstream')!r} is gone")
            if 8 * bitstream.stat().st_size != result["bits"]["total"]:
                raise PackageError(
                    f"{bitstream} is {bitstream.stat().st_size} bytes; its result.json counts "
                    f"{result['bits']['total']} bits: the file changed since the job"
                )
            (staging / folder).mkdir(parents=True)
            shutil.copy2(bitstream, staging / folder / bitstream.name)
            if (source / PER_FRAME_FILE).is_file():
                shutil.copy2(source / PER_FRAME_FILE, staging / folder / PER_FRAME_FILE)
            md5, md5_source = _decoded_md5(result, frames)
            write_json_atomic(staging / folder / JOB_FILE, _job_record(result, md5, md5_source))
            jobs.append(folder.as_posix())
            sequence = result["identity"]["sequence"]
            sequences[result["sequence"]] = {key: sequence.get(key) for key in SEQUENCE_KEYS}
        write_files(report, staging / TABLES_DIR)
        index = {
            "format": FORMAT,
            "run": run_dir.name,
            "created": now_iso(),
            "anchor": report.anchor,
            "testset": report.info.get("testset"),
            "metrics": report.directions,
            "bd_method": report.method,
            "codecs": codecs,
            "sequences": sequences,
            "jobs": jobs,
            "left_out": left_out,
        }
        write_json_atomic(staging / INDEX_FILE, index)
        (staging / README_FILE).write_text(readme(index), encoding="utf-8")
        write_manifest(staging)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return index


def readme(index: Mapping[str, Any]) -> str:
    """The package's README: what it holds and the one command that cross-checks it."""
    lines = [
        f"# Contribution package: run {index['run']}",
        "",
        f"Made by gfvc-ctc ({index['created']}): {len(index['jobs'])} jobs, anchor {index['anchor']}, "
        f"test set {index['testset']}, metrics {', '.join(index['metrics'])}.",
        "",
        "## Cross-check it",
        "",
        "    ctc-crosscheck PACKAGE --sequences FOLDER [--weights FOLDER]",
        "",
        "decodes every bitstream with your gfvc-ctc, compares the decoded md5, recomputes the rates, "
        "the metrics against your copies of the reference sequences and the BD tables, and writes "
        "crosscheck.md, crosscheck.csv and crosscheck.json (see docs/crosscheck.md).",
        "",
        "## Decoders",
        "",
    ]
    for name, codec in index["codecs"].items():
        weights = codec["identity"].get("weights")
        lines.append(
            f"- {name} ({codec['role']}): {codec['class']}, {codec['version']}"
            + (f"; weights: {weights}" if weights else "")
            + "".join(f"; {program} sha256 {digest}" for program, digest in codec["binaries"].items())
        )
    lines += [
        "",
        "Weights named by a file name and sha256 go in the folder given to --weights.",
        "",
        "## Reference sequences (not included; --sequences holds them)",
        "",
    ]
    lines += [
        f"- {name}: {about['file']} md5 {about['file_md5']}" for name, about in index["sequences"].items()
    ]
    lines += [
        "",
        f"`{TABLES_DIR}/` holds the run's tables (bd.csv, summary.csv, summary.md, report.xlsx), "
        f"`{JOBS_DIR}/<codec>/<sequence>/<rate point>/` each job's bitstream, {JOB_FILE} and "
        f"{PER_FRAME_FILE}; {MANIFEST_FILE} the sha256 of every file (`sha256sum -c {MANIFEST_FILE}`).",
    ]
    if index["left_out"]:
        lines += ["", "Jobs left out (not complete in the run):", ""]
        lines += [f"- {item}" for item in index["left_out"]]
    return "\n".join(lines) + "\n"


def write_zip(folder: Path, archive: Path) -> None:
    """``folder``'s files in a zip, in name order, under one top folder named after the archive."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                handle.write(path, Path(archive.stem, path.relative_to(folder)).as_posix())


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ctc-package", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder, e.g. results/demo")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, help="the package folder (default: <run>-package beside the run)")
    where.add_argument("--zip", type=Path, help="write the package as this zip file instead of a folder")
    parser.add_argument(
        "--device",
        default="auto",
        help="where an older result's bitstream is decoded again for its md5 (default: auto)",
    )
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    try:
        if args.zip:
            if args.zip.exists():
                raise PackageError(f"{args.zip} already exists")
            with tempfile.TemporaryDirectory(prefix="ctc-package-") as workdir:
                folder = Path(workdir) / args.zip.stem
                index = build_package(run_dir, folder, args.device)
                write_zip(folder, args.zip)
            where_to, size = args.zip, args.zip.stat().st_size
        else:
            out = args.out or run_dir.parent / f"{run_dir.name}-package"
            index = build_package(run_dir, out, args.device)
            where_to, size = out, folder_size(out)
    except PackageError as error:
        print(f"ctc-package: error: {error}", file=sys.stderr)
        return 2
    print(f"package of {len(index['jobs'])} jobs ({size / 1e3:.1f} kB): {where_to}")
    for item in index["left_out"]:
        print(f"  left out: {item}", file=sys.stderr)
    print(f"cross-check: ctc-crosscheck {where_to} --sequences FOLDER [--weights FOLDER]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
