"""``ctc-run``: sweep a codec (and the anchor) over a test set and its rate points.

A Hydra app (``ctc/conf/config.yaml``): config groups ``codec``, ``anchor``, ``testset``, ``metrics``
and ``launcher``, overrides as Hydra users expect. It always runs as a Hydra multirun whose
``ctc`` sweeper (:mod:`hydra_plugins.gfvc_ctc_sweeper`) expands one job per (codec, sequence, rate
point), skips the complete ones and launches the rest with the chosen launcher: joblib on this
machine, submitit on a SLURM cluster. Results go to ``<results_dir>/<run>/``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import hydra

from ctc.sweep import run_task
from hydra_plugins.gfvc_ctc_sweeper import register

# Hydra's flags that choose what it does instead of our multirun (help, printing the config, ...).
MODE_FLAGS = {"-m", "--multirun", "-r", "--run", "-c", "--cfg", "-i", "--info", "-sc", "--shell-completion",
              "-h", "--help", "--hydra-help"}

hydra_main = hydra.main(version_base="1.3", config_path="conf", config_name="config")(run_task)


def main(argv: Sequence[str] | None = None) -> None:
    """Run a sweep; ``argv`` are Hydra overrides (default: the command line).

    Raises ``SystemExit`` with a non-zero status when a job failed or the configuration is wrong.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(arg.lstrip("+").startswith("anchor=") for arg in args) and _vtm_found():
        print("ctc-run: VTM found: it is the anchor (anchor=vvenc to use vvenc)", file=sys.stderr)
        args.append("anchor=vtm")
    if not MODE_FLAGS & {arg.split("=", 1)[0] for arg in args}:
        args.insert(0, "--multirun")
    register()  # every time: an in-process joblib job restores Hydra's singletons from a snapshot
    saved = sys.argv
    sys.argv = ["ctc-run", *args]
    try:
        hydra_main()
    finally:
        sys.argv = saved


def _vtm_found() -> bool:
    """The CTC anchor is VTM wherever the user has built it; vvenc is the default elsewhere."""
    from anchors.vtm import vtm_installed
    from ctc.conf import load_section

    return vtm_installed(load_section("codec", "vtm"))


if __name__ == "__main__":
    main()
