"""`make mutants`: mutation testing of the modules in tests/mutants.toml, each against its covering tests.

For each module, a scratch copy of the tracked files under ``results/mutants/work/<module>`` gets a
``[tool.mutmut]`` section that mutates only that module and runs only its tests; ``mutmut run`` then
checks every mutant (or those of the module's ``functions``, where it names some). Survivors that
tests/mutants_equivalent.toml lists (matched by function and by the changed line, not by mutmut's
numbering) are reviewed equivalents; the others are written with their diffs to
``results/mutants/report.md``, with the mutation score per module: killed / (total - equivalent),
timeouts counting as killed.

    python tests/mutants.py [MODULE ...] [--jobs N]    (default: every module of tests/mutants.toml)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import tomllib

from ctc.paths import shared_dir

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tests" / "mutants.toml"
EQUIVALENT = ROOT / "tests" / "mutants_equivalent.toml"
OUT = ROOT / "results" / "mutants"
DETECTED = {"killed", "timeout", "segfault"}


def scratch_copy(module: str) -> Path:
    """The tracked files of the worktree (as they are now, edits included) in a fresh folder."""
    work = OUT / "work" / module.replace("/", "_").removesuffix(".py")
    shutil.rmtree(work, ignore_errors=True)
    files = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file() and not name.startswith(("notebooks/", "docs/", "examples/")):
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, work / name)
    return work


def configure(work: Path, module: str, tests: list[str], skip_lines: list[str]) -> None:
    """mutmut's settings in the copy's pyproject.toml: this module only, these tests only, no mutants in
    the statements whose first line matches one of ``skip_lines``."""
    package = module.split("/")[0]
    others = sorted(
        p.name for p in work.iterdir() if p.name not in (package, "pyproject.toml", "setup.cfg", "tests")
    )
    section = {
        "source_paths": [package],
        "only_mutate": [module],
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": ["-p", "no:cacheprovider"],
        "also_copy": others,
        "do_not_mutate_patterns": skip_lines,
    }
    lines = ["", "[tool.mutmut]"] + [f"{key} = {json.dumps(value)}" for key, value in section.items()]
    with open(work / "pyproject.toml", "a", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")


def environment() -> dict[str, str]:
    """Without PYTHONPATH (the mutants come first); one OpenMP thread: mutmut forks a worker per mutant, and
    an OpenMP pool (torch's) does not survive a fork: the worker would hang until its timeout."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # the work copy is not beside ../shared: without this, the tests that need it skip and every mutant
    # they would check is "not checked"
    env.setdefault("GFVC_SHARED", str(shared_dir()))
    return {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def mutmut(work: Path, *args: str) -> str:
    env = environment()
    done = subprocess.run(
        [sys.executable, "-m", "mutmut", *args],
        cwd=work,
        env=env,
        text=True,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0 and args[0] != "run":
        raise SystemExit(f"mutmut {' '.join(args)} failed in {work}:\n{done.stdout}{done.stderr}")
    return done.stdout + done.stderr


def statuses(work: Path) -> dict[str, str]:
    """Each mutant's name and mutmut's verdict on it."""
    found = re.findall(r"^\s*(\S+__mutmut_\d+): (.+)$", mutmut(work, "results", "--all", "true"), re.M)
    return {name: status.strip() for name, status in found}


# mutmut's own diff of each mutant, all in one process (`mutmut show NAME` takes a second per mutant)
DIFFS = """import json, sys
from mutmut.mutation.diff_apply import find_mutant, get_diff_for_mutant
names = json.load(sys.stdin)
print(json.dumps({name: get_diff_for_mutant(name, path=find_mutant(name).path) for name in names}))
"""


def diffs(work: Path, names: list[str]) -> dict[str, str]:
    env = environment()
    done = subprocess.run(
        [sys.executable, "-c", DIFFS],
        cwd=work,
        env=env,
        input=json.dumps(names),
        text=True,
        capture_output=True,
        check=False,
    )
    if done.returncode == 0:
        return json.loads(done.stdout)
    return {name: mutmut(work, "show", name) for name in names}  # another mutmut version: its command


def changed_lines(diff: str) -> tuple[str, str]:
    """The original and the mutated line of a mutant's diff, stripped."""
    lines = diff.splitlines()
    removed = [line[1:].strip() for line in lines if line.startswith("-") and not line.startswith("---")]
    added = [line[1:].strip() for line in lines if line.startswith("+") and not line.startswith("+++")]
    return " / ".join(removed), " / ".join(added)


def function_of(name: str) -> str:
    """``ctc.report.bd.x_bd_rate__mutmut_3`` -> ``bd_rate``; methods: ``Class.method``."""
    local = name.split("__mutmut_")[0].rsplit(".", 1)[-1]
    return local.replace("xǁ", "").replace("ǁ", ".").removeprefix("x_")


def is_equivalent(entry: dict[str, str], module: str, function: str, original: str, mutated: str) -> bool:
    return (entry["module"], entry["function"], entry["original"], entry["mutated"]) == (
        module,
        function,
        original,
        mutated,
    )


def mutant_pattern(function: str) -> str:
    """mutmut's names of a function's mutants, as a pattern: ``*.x_name__mutmut_*``; a method
    ``Class.name``: ``*.xǁClassǁname__mutmut_*``."""
    local = "xǁ" + function.replace(".", "ǁ") if "." in function else f"x_{function}"
    return f"*.{local}__mutmut_*"


def run_module(module: str, settings: dict, jobs: int, equivalents: list[dict[str, str]]) -> dict:
    work = scratch_copy(module)
    entry = settings["modules"][module]
    configure(work, module, entry["tests"], settings.get("skip_lines", []))
    functions = entry.get("functions", [])  # only these functions' mutants are checked and counted
    log = mutmut(work, "run", "--max-children", str(jobs), *map(mutant_pattern, functions))
    (work / "mutmut-run.log").write_text(log, encoding="utf-8")
    verdicts = {
        name: status
        for name, status in statuses(work).items()
        if not functions or function_of(name) in functions
    }
    if not verdicts:
        raise SystemExit(
            f"mutmut made no mutants of {module}; its log, {work / 'mutmut-run.log'}, ends:\n{log[-3000:]}"
        )
    survivors, equivalent = [], []
    undetected = sorted(name for name, status in verdicts.items() if status not in DETECTED)
    for name, diff in diffs(work, undetected).items():
        status = verdicts[name]
        original, mutated = changed_lines(diff)
        function = function_of(name)
        record = {
            "name": name,
            "status": status,
            "function": function,
            "original": original,
            "mutated": mutated,
            "diff": diff.strip(),
        }
        matched = any(is_equivalent(e, module, function, original, mutated) for e in equivalents)
        (equivalent if matched else survivors).append(record)
    counts = Counter(verdicts.values())
    killed = sum(counts[s] for s in DETECTED)
    score = killed / max(len(verdicts) - len(equivalent), 1)
    return {
        "module": module,
        "total": len(verdicts),
        "killed": killed,
        "timeouts": counts["timeout"],
        "equivalent": len(equivalent),
        "survived": len(survivors),
        "score": score,
        "statuses": dict(counts),
        "survivors": survivors,
    }


def write_report(results: list[dict]) -> Path:
    lines = [
        "# Mutation testing (`make mutants`)",
        "",
        "score = killed / (total - reviewed equivalent); equivalents: tests/mutants_equivalent.toml",
        "",
        "| module | mutants | killed (of which timeouts) | equivalent | surviving | score |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['module']} | {r['total']} | {r['killed']} ({r['timeouts']}) | {r['equivalent']} | "
        f"{r['survived']} | {r['score']:.1%} |"
        for r in results
    ]
    for result in results:
        for survivor in result["survivors"]:
            lines += [
                "",
                f"## {result['module']}: {survivor['name']} ({survivor['status']})",
                "",
                "```diff",
                survivor["diff"],
                "```",
            ]
    OUT.mkdir(parents=True, exist_ok=True)
    report = OUT / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (OUT / "report.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    settings = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    modules = settings["modules"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"modules to mutate (default: all of {CONFIG.name})")
    parser.add_argument("--jobs", type=int, default=2, help="mutants checked at once (default 2)")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in modules]
    if unknown:
        parser.error(f"{', '.join(unknown)} not in {CONFIG}; it lists {', '.join(modules)}")
    equivalents = tomllib.loads(EQUIVALENT.read_text(encoding="utf-8")).get("mutant", [])
    results = []
    for module in args.modules or list(modules):
        print(f"mutating {module} against {' '.join(modules[module]['tests'])}", flush=True)
        results.append(run_module(module, settings, args.jobs, equivalents))
        r = results[-1]
        print(
            f"  {r['total']} mutants: {r['killed']} killed ({r['timeouts']} by timeout), "
            f"{r['equivalent']} equivalent, {r['survived']} surviving; score {r['score']:.1%}",
            flush=True,
        )
    print(f"report: {write_report(results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
