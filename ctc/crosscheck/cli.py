"""``ctc-crosscheck PACKAGE``: check a contribution package (:mod:`ctc.package`) with this machine's decoders.

Writes ``crosscheck.md``, ``crosscheck.csv`` and ``crosscheck.json`` (per job pass/fail with its reason,
per BD table the largest difference, the tolerances, an overall verdict line); exit code 0 when it
passes, 1 when a job or table fails, 2 when the package or a reference sequence is refused.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ctc.crosscheck.checks import check_package, open_package
from ctc.crosscheck.tables import write_crosscheck
from ctc.package import PackageError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ctc-crosscheck", description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path, help="a package folder or zip made by ctc-package")
    parser.add_argument("--weights", type=Path, help="folder holding the GFVC checkpoints the package names")
    parser.add_argument(
        "--sequences",
        type=Path,
        help="folder holding the reference sequences (default: where this harness finds the "
        "package's test set)",
    )
    parser.add_argument("--out", type=Path, help="report folder (default: ./crosscheck-<run>)")
    parser.add_argument(
        "--device",
        help="GFVC decoders and metrics: auto, cpu, cuda, cuda:N (default: the "
        "device kind each GFVC codec's jobs ran on; metrics: auto)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ctc-crosscheck-package-") as workdir:
        try:
            package = open_package(args.package, Path(workdir))
            index, checks = check_package(package, args.weights, args.sequences, args.device)
            out = args.out or Path(f"crosscheck-{index['run']}")
            verdict = write_crosscheck(package, index, checks, out)
        except PackageError as error:
            print(f"ctc-crosscheck: refused: {error}", file=sys.stderr)
            return 2
    print(verdict)
    print(f"report: {out / 'crosscheck.md'}")
    return 0 if verdict.startswith("PASS") else 1


if __name__ == "__main__":
    sys.exit(main())
