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
from hydra.errors import ConfigCompositionException

from ctc.sweep import run_task
from hydra_plugins.gfvc_ctc_sweeper import register

# Hydra's flags that choose what it does instead of our multirun (help, printing the config, ...).
MODE_FLAGS = {"-m", "--multirun", "-r", "--run", "-c", "--cfg", "-i", "--info", "-sc", "--shell-completion",
              "-h", "--help", "--hydra-help"}

CONFIG_DIR_FLAGS = ("--config-dir", "-cd")  # followed by a folder added to the config search path

hydra_main = hydra.main(version_base="1.3", config_path="conf", config_name="config")(run_task)


def main(argv: Sequence[str] | None = None) -> None:
    """Run a sweep; ``argv`` are Hydra overrides (default: the command line).

    Raises ``SystemExit`` with a non-zero status when a job failed or the configuration is wrong.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not MODE_FLAGS & {arg.split("=", 1)[0] for arg in args}:
        args = ["--multirun", *_first_variant(args)]
        args += _default_anchor(args)
    register()  # every time: an in-process joblib job restores Hydra's singletons from a snapshot
    saved = sys.argv
    sys.argv = ["ctc-run", *args]
    try:
        hydra_main()
    finally:
        sys.argv = saved


def _first_variant(args: list[str]) -> list[str]:
    """A sweep of several codec configurations (``codec=a,b``) composed as its first one, the others
    handed to the sweeper: Hydra composes a multirun's config without its sweeps, so overrides of the
    codec's nested defaults (``picture_codec@codec.intra=vvenc``) would find the default codec's."""
    from ctc.identity import encode_identity
    from ctc.jobs import quote
    from ctc.sweep_plan import SweepConfigError, codec_variants

    overrides, flags = _split_arguments(args)
    try:
        variants = codec_variants(overrides)
    except SweepConfigError as exc:
        print(f"ctc-run: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if len(variants) == 1:
        return args
    return [*flags, *variants[0], f"hydra.sweeper.variants={quote(encode_identity({'variants': variants}))}"]


def _default_anchor(args: Sequence[str]) -> list[str]:
    """``anchor=<the test set's default_anchor>`` unless the command line names an anchor; says which
    anchor the run uses and why. The test set and the anchor's settings are composed as the sweep
    composes them (the user's search path and overrides included). A config that does not compose, or
    an anchor that this machine lacks (the CTC set's VTM without a build), is an error (exit code 2)."""
    from ctc.codec import codec_class
    from ctc.conf import ConfigNotFound, compose, without_hydra

    overrides, flags = _split_arguments(args)
    config_dirs = [value for flag, value in zip(flags, flags[1:], strict=False) if flag in CONFIG_DIR_FLAGS]
    try:  # a config that does not compose (an unknown codec or test set) is a bad setting: exit code 2
        testset = without_hydra(compose(overrides, config_dirs=config_dirs, multirun=True))["testset"]
    except (ConfigNotFound, ConfigCompositionException) as exc:
        print(f"ctc-run: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    for arg in args:
        if arg.lstrip("+").startswith("anchor="):
            print(f"ctc-run: anchor {arg.split('=', 1)[1]} (asked for)", file=sys.stderr)
            return []
    anchor = testset.get("default_anchor") or "vvenc"
    try:
        section = without_hydra(compose([*overrides, f"anchor={anchor}"], config_dirs=config_dirs,
                                        multirun=True))["anchor"]
        missing = codec_class(section).missing(section)
    except (ConfigNotFound, ConfigCompositionException, KeyError):
        return []  # Hydra (or the sweep's check) names what is wrong
    if missing:
        about = "VTM, the CTC's anchor" if anchor == "vtm" else anchor
        build = "Build it with `make vtm`, or choose" if anchor == "vtm" else "Choose"
        print(f"ctc-run: error: the anchor of test set {testset['name']} is {about}. {missing}\n"
              f"{build} another anchor on purpose (anchor=vvenc).", file=sys.stderr)
        raise SystemExit(2)
    print(f"ctc-run: anchor {anchor} (the default of test set {testset['name']}; anchor=NAME for another)",
          file=sys.stderr)
    return [f"anchor={anchor}"]


def _split_arguments(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """A command line's overrides, and its flags (each ``--config-dir`` with its folder as two items)."""
    overrides, flags = [], []
    arguments = iter(args)
    for arg in arguments:
        if not arg.startswith("-"):
            overrides.append(arg)
            continue
        flag, equals, value = arg.partition("=")
        flags.append(flag)
        if equals or flag in CONFIG_DIR_FLAGS:
            flags.append(value if equals else next(arguments, ""))
    return overrides, flags


if __name__ == "__main__":
    main()
