"""``ctc-run``: sweep a codec (and the anchor) over a test set and its rate points.

A Hydra app (``ctc/conf/config.yaml``): config groups ``codec``, ``anchor``, ``testset``, ``metrics``
and ``launcher``, overrides, ``--config-dir`` and ``hydra.searchpath`` as Hydra users expect. A run
composes each configuration of the codec under test (``codec=a,b``) once with Hydra's config loader
and hands the composed configurations to the sweep (:mod:`ctc.sweep.run`), which runs one job per
(codec, sequence, rate point) on the executor ``launcher=`` chose: joblib on this machine, submitit on
a SLURM cluster. Hydra's own modes (``--cfg``, ``--help``, ``--info``) go to ``hydra.main``. Results go
to ``<results_dir>/<run>/``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace

import hydra
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig

from ctc.conf import register_resolvers
from ctc.conf.launchers import register_launchers

RUN_FLAGS = {"-m", "--multirun", "-r", "--run"}  # a run, which is what ctc-run does anyway
# Hydra's flags that choose what it does instead of a run (help, printing the config, ...).
MODE_FLAGS = {
    "-c",
    "--cfg",
    "-i",
    "--info",
    "-sc",
    "--shell-completion",
    "-h",
    "--help",
    "--hydra-help",
}
CFG_FLAGS = {"-c", "--cfg"}  # print the config: shown as the run would compose it (its anchor, each codec)

CONFIG_DIR_FLAGS = ("--config-dir", "-cd")  # followed by a folder added to the config search path
PLAN_FLAG = "--plan"  # print what the sweep would run and why, run and write nothing
# Hydra's flags followed by a value (``--cfg job``, ``-p codec``), which is not an override
VALUE_FLAGS = {
    *CONFIG_DIR_FLAGS,
    *CFG_FLAGS,
    "-p",
    "--package",
    "-cn",
    "--config-name",
    "-cp",
    "--config-path",
}


def _shown_only(config: DictConfig) -> None:
    """Hydra's task for the modes that ctc-run hands it (``--cfg``, ``--help``, ``--info``), which
    print and never run it: a run goes through :func:`_run`."""
    raise AssertionError("ctc-run runs sweeps itself (ctc.runner.main)")


hydra_main = hydra.main(version_base="1.3", config_path="pkg://ctc.conf", config_name="config")(_shown_only)


def main(argv: Sequence[str] | None = None) -> None:
    """Run a sweep; ``argv`` are Hydra overrides (default: the command line).

    Raises ``SystemExit`` with a non-zero status when a job failed or the configuration is wrong, and
    ``SystemExit(130)`` on Ctrl-C (after whatever was running said what it stopped), without a traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if "--version" in args:
        print(version_line())
        return
    if PLAN_FLAG in args:
        raise SystemExit(_plan([arg for arg in args if arg != PLAN_FLAG]))
    _check_early(args)
    flags = {arg.split("=", 1)[0] for arg in args}
    if not MODE_FLAGS & flags:
        _run([arg for arg in args if arg not in RUN_FLAGS])
    elif flags & MODE_FLAGS <= CFG_FLAGS:
        _show_config(args)
    else:
        _hydra(args)


def version_line() -> str:
    """``gfvc-ctc <version> (commit <sha>[, with uncommitted changes])``: what a JVET contribution cites."""
    from ctc import __version__
    from ctc.provenance import git_state

    git = git_state()
    commit = git["commit"] or "unknown: not a git checkout"
    return f"gfvc-ctc {__version__} (commit {commit}{', with uncommitted changes' if git['dirty'] else ''})"


def _show_config(args: list[str]) -> None:
    """``--cfg``: each codec configuration of a sweep (``codec=a,b``) in turn, as its jobs will be composed,
    with the anchor the run will use; several are printed as YAML documents, each headed by its overrides."""
    overrides, flags = _split_arguments(args)
    variants = _variants(overrides)
    for number, variant in enumerate(variants, 1):
        shown = [*flags, *variant]
        if len(variants) > 1:
            print(f"--- # codec configuration {number} of {len(variants)}: {' '.join(variant)}", flush=True)
        _hydra([*shown, *_default_anchor(shown, required=False)])


def _run(args: list[str]) -> None:
    """Compose each codec configuration of the command line once and run the sweep of them."""
    from ctc.sweep.run import run_sweep

    configs = _composed(args)
    try:
        run_sweep(configs)
    except KeyboardInterrupt:
        print("ctc-run: interrupted (Ctrl-C); the same command goes on from here", file=sys.stderr)
        raise SystemExit(130) from None


def _composed(args: list[str]) -> list[DictConfig]:
    """Each codec configuration that the command line sweeps (``codec=a,b``), composed as its own
    command line would be, with the run's anchor; a config that does not compose: one line, exit 2."""
    from ctc.conf import ConfigNotFound, compose

    overrides, flags = _split_arguments(args)
    if {"-cp", "--config-path"} & set(flags):
        print(
            "ctc-run: error: --config-path: a run composes ctc-run's own config; add your folder to its "
            "search path with --config-dir instead",
            file=sys.stderr,
        )
        raise SystemExit(2)
    variants = _variants(overrides)
    # composed as the first codec configuration: Hydra composes a sweep's config without its sweeps, so
    # overrides of the codec's nested defaults (picture_codec@codec.intra=vvenc) would find the default's
    anchor = _default_anchor([*flags, *variants[0]])
    try:
        return [compose([*variant, *anchor], **_compose_flags(flags), multirun=True) for variant in variants]
    except (ConfigNotFound, ConfigCompositionException) as exc:
        print(f"ctc-run: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _compose_flags(flags: list[str]) -> dict:
    """What Hydra's flags of a command line tell :func:`ctc.conf.compose`: the ``--config-dir`` folders
    and the ``--config-name``."""
    pairs = list(zip(flags, flags[1:], strict=False))  # a flag and what follows it: its value if it takes one
    names = [value for flag, value in pairs if flag in ("-cn", "--config-name")]
    config_dirs = [value for flag, value in pairs if flag in CONFIG_DIR_FLAGS]
    return {"config_name": names[-1] if names else "config", "config_dirs": config_dirs}


def _hydra(args: list[str]) -> None:
    """Hydra's own modes (``--cfg``, ``--help``, ...), through ``hydra.main`` as users know it."""
    register_resolvers()
    register_launchers()
    saved = sys.argv
    sys.argv = ["ctc-run", *args]
    try:
        hydra_main()
    finally:
        sys.argv = saved


def _check_early(args: Sequence[str]) -> None:
    """Settings that Hydra's launchers read before the sweep checks its configuration (``jobs``: their
    worker count, which they would refuse with a validation dump): one line and exit 2."""
    for arg in args:
        key, _, value = arg.lstrip("+").partition("=")
        if key == "jobs" and value != "auto" and not (value.isdigit() and int(value) > 0):
            shown = value if value.lstrip("-").isdigit() else repr(value)
            print(
                f"ctc-run: error: jobs={shown}: expected a positive number of parallel workers (or auto)",
                file=sys.stderr,
            )
            raise SystemExit(2)


def _plan(args: list[str]) -> int:
    """``ctc-run ... --plan``: each codec configuration composed and planned as the sweep plans it
    (identities resolved, settings checked), then, per codec and stage, what would run and why."""
    from ctc.conf import without_hydra
    from ctc.sweep.plan import SweepConfigError, check_variants, describe_plans, plan_sweep

    configs = _composed(args)
    try:
        plans = [plan_sweep(without_hydra(config)) for config in configs]
        check_variants(plans)
    except SweepConfigError as exc:
        print(f"ctc-run: error: {exc}", file=sys.stderr)
        return 2
    print(describe_plans(plans))
    from ctc.sweep.costs import describe_costs, estimate, launcher_of, load_costs
    from ctc.sweep.executors import executor_for

    launcher = launcher_of(configs[0])
    if launcher.cluster:  # how many tasks its nodes run at once
        try:
            launcher = replace(launcher, lanes=executor_for(configs).lanes(plans))
        except SweepConfigError as exc:
            launcher = replace(launcher, unknown_room=str(exc))
    print(describe_costs(estimate(plans, launcher, load_costs()), launcher))
    return 0


def _variants(overrides: list[str]) -> list[list[str]]:
    """The overrides of each codec configuration the command line sweeps; a sweep of anything else is
    an error (exit 2)."""
    from ctc.sweep.plan import SweepConfigError, codec_variants

    try:
        return codec_variants(overrides)
    except SweepConfigError as exc:
        print(f"ctc-run: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _default_anchor(args: Sequence[str], required: bool = True) -> list[str]:
    """``anchor=<the test set's default_anchor>`` unless the command line names an anchor; says which
    anchor the run uses and why. The test set and the anchor's settings are composed as the sweep
    composes them (the user's search path and overrides included). A config that does not compose is an
    error (exit code 2); an anchor that this machine lacks (the CTC set's VTM without a build) is an error
    when ``required`` (a run), else a warning (``--cfg``)."""
    from ctc.codec import codec_class
    from ctc.conf import ConfigNotFound, compose, without_hydra

    overrides, flags = _split_arguments(args)
    where = _compose_flags(flags)
    try:  # a config that does not compose (an unknown codec or test set) is a bad setting: exit code 2
        testset = without_hydra(compose(overrides, **where, multirun=True))["testset"]
    except (ConfigNotFound, ConfigCompositionException) as exc:
        print(f"ctc-run: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    for arg in args:
        if arg.lstrip("+").startswith("anchor="):
            print(f"ctc-run: anchor {arg.split('=', 1)[1]} (asked for)", file=sys.stderr)
            return []
    anchor = testset.get("default_anchor") or "vvenc"
    try:
        section = without_hydra(compose([*overrides, f"anchor={anchor}"], **where, multirun=True))["anchor"]
        missing = codec_class(section).missing(section)
    except (ConfigNotFound, ConfigCompositionException, KeyError):
        return []  # Hydra (or the sweep's check) names what is wrong
    if missing:
        about = "VTM, the CTC's anchor" if anchor == "vtm" else anchor
        build = "Build it with `make vtm`, or choose" if anchor == "vtm" else "Choose"
        print(
            f"ctc-run: {'error' if required else 'warning'}: the anchor of test set {testset['name']} is "
            f"{about}. {missing}\n{build} another anchor on purpose (anchor=vvenc).",
            file=sys.stderr,
        )
        if required:
            raise SystemExit(2)
    print(
        f"ctc-run: anchor {anchor} (the default of test set {testset['name']}; anchor=NAME for another)",
        file=sys.stderr,
    )
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
        if equals or flag in VALUE_FLAGS:
            flags.append(value if equals else next(arguments, ""))
    return overrides, flags


if __name__ == "__main__":
    main()
