"""A SLURM sweep's resources checked against the cluster before the first ``sbatch``: all or nothing.

Each codec's jobs and the scoring tasks ask for CPUs, memory, a time limit and GPUs; every request is
checked here (its type and range, the partition and QOS the cluster knows, the largest node of that
partition as ``sinfo`` lists it) so that a wrong setting stops the sweep with one message before
anything is submitted or written, instead of failing job by job. A default that asks more CPUs than the
largest node has (the scoring task's 4 CPUs on a 2-CPU node) is fitted to that node; a value set on the
command line that does not fit is an error, and so is memory or GPUs no node has.
"""

from __future__ import annotations

import shutil
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ctc.slurm.commands import SlurmCommandError, run_command

# What the launcher runs: sbatch submits, srun starts each job's step on its node (submitit's script),
# squeue, sacct and scancel follow and cancel the jobs, sinfo and sacctmgr tell what the cluster offers.
COMMANDS = ("sbatch", "srun", "squeue", "sacct", "scancel", "sinfo")


class SlurmSettingError(ValueError):
    """A SLURM setting is wrong or asks for what the cluster does not have."""


@dataclass(frozen=True)
class Node:
    partition: str
    default: bool  # the partition is the cluster's default (sinfo marks it with *)
    cpus: int
    memory_mb: int
    gpus: int


def check_commands() -> None:
    missing = [command for command in COMMANDS if shutil.which(command) is None]
    if missing:
        raise SlurmSettingError(
            f"launcher=slurm needs SLURM's commands, and {', '.join(missing)} "
            "is not on PATH (run ctc-run where sbatch works: a login node)"
        )


def cluster_nodes(timeout_s: float) -> list[Node]:
    """Every (partition, node) pair ``sinfo`` lists."""
    try:
        listing = run_command(["sinfo", "--noheader", "--Node", "--format=%P|%c|%m|%G"], timeout_s)
    except SlurmCommandError as exc:
        raise SlurmSettingError(f"cannot read the cluster's nodes: {exc}") from None
    nodes = []
    for line in listing.splitlines():
        partition, cpus, memory, gres = line.strip().split("|")
        nodes.append(
            Node(
                partition.rstrip("*"),
                partition.endswith("*"),
                int(cpus.rstrip("+")),
                int(memory.rstrip("+")),
                _gpus(gres),
            )
        )
    return nodes


def _gpus(gres: str) -> int:
    """The GPUs of a node's GRES (``gpu:2``, ``gpu:a100:4(S:0-1)``, ``(null)``)."""
    count = 0
    for item in gres.split(","):
        fields = item.split("(", 1)[0].split(":")
        if fields[0] == "gpu" and len(fields) > 1 and fields[-1].isdigit():
            count += int(fields[-1])
    return count


def room(node: Node, resources: Mapping[str, Any]) -> int:
    """How many tasks of ``resources`` (cpus_per_task, mem_gb, gpus_per_node) ``node`` runs at once."""
    fits = [node.cpus // int(resources["cpus_per_task"]), int(node.memory_mb // (resources["mem_gb"] * 1024))]
    if resources["gpus_per_node"]:
        fits.append(node.gpus // int(resources["gpus_per_node"]))
    return max(0, min(fits))


def check_qos(qos: str, timeout_s: float) -> None:
    try:
        known = run_command(
            ["sacctmgr", "--noheader", "--parsable2", "list", "qos", "format=name"], timeout_s
        ).split()
    except SlurmCommandError as exc:
        raise SlurmSettingError(f"hydra.launcher.qos={qos}: cannot list the cluster's QOS: {exc}") from None
    if qos not in known:
        raise SlurmSettingError(
            f"hydra.launcher.qos={qos}: the cluster has no such QOS (it has {', '.join(known) or 'none'})"
        )


def partition_nodes(nodes: list[Node], partition: str | None) -> list[Node]:
    """The nodes jobs of ``partition`` (None: the default one) may run on."""
    chosen = [node for node in nodes if (node.partition == partition if partition else node.default)]
    if not chosen:
        known = sorted({node.partition for node in nodes})
        raise SlurmSettingError(
            f"hydra.launcher.partition={partition}: the cluster has no such partition (sinfo lists "
            f"{', '.join(known) or 'none'})"
            if partition
            else "the cluster has no default partition: set hydra.launcher.partition "
            f"(sinfo lists {', '.join(known) or 'none'})"
        )
    return chosen


def checked_resources(what: str, resources: Mapping[str, Any]) -> dict[str, Any]:
    """``resources`` (cpus_per_task, mem_gb, timeout_min, gpus_per_node) when each is a number in range."""
    rules = {
        "cpus_per_task": (int, 1, "a whole number of CPUs, at least 1"),
        "mem_gb": ((int, float), 0, "a memory size in GB, more than 0"),
        "timeout_min": (int, 1, "a time limit in whole minutes, at least 1"),
        "gpus_per_node": (int, 0, "a whole number of GPUs, 0 or more"),
    }
    for key, (kind, least, expected) in rules.items():
        value = resources.get(key)
        wrong = isinstance(value, bool) or not isinstance(value, kind)
        if wrong or value < least or (key == "mem_gb" and value == 0):
            raise SlurmSettingError(f"{what}: {key}={value!r}: expected {expected}")
    return dict(resources)


def fitted_resources(
    what: str, resources: Mapping[str, Any], nodes: list[Node], explicit: Collection[str]
) -> dict[str, Any]:
    """``resources`` within the largest of ``nodes``: a default CPU count larger than any node's is cut
    to the largest; anything else that no node offers is an error with the numbers. ``explicit``: the
    keys set on the command line (never cut)."""
    fitted = dict(resources)
    most_cpus = max(node.cpus for node in nodes)
    if fitted["cpus_per_task"] > most_cpus:
        if "cpus_per_task" in explicit:
            raise SlurmSettingError(
                f"{what}: cpus_per_task={fitted['cpus_per_task']} but the largest node "
                f"of the partition has {most_cpus} CPUs"
            )
        fitted["cpus_per_task"] = most_cpus
    wanted_mb = fitted["mem_gb"] * 1024
    if not any(
        node.memory_mb >= wanted_mb
        and node.cpus >= fitted["cpus_per_task"]
        and node.gpus >= fitted["gpus_per_node"]
        for node in nodes
    ):
        largest = max(nodes, key=lambda node: (node.gpus >= fitted["gpus_per_node"], node.memory_mb))
        raise SlurmSettingError(
            f"{what}: {fitted['cpus_per_task']} CPUs, mem_gb={fitted['mem_gb']} ({wanted_mb:.0f} MB) and "
            f"{fitted['gpus_per_node']} GPUs, but no node of the partition has as much (the largest: "
            f"{largest.cpus} CPUs, {largest.memory_mb} MB, {largest.gpus} GPUs)"
        )
    return fitted
