"""What ``ctc-run`` shows before a run: its version and commit (also in every result), and ``--cfg`` composed
as the run composes it (the test set's default anchor, each codec configuration of ``codec=a,b``)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import test_runner
import yaml

import ctc
from ctc.runner import main

tiny = test_runner.tiny  # the fixture: a tiny test set, the fake codec and anchor
ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_version_prints_the_release_and_the_commit(capsys):
    main(["--version"])
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(
        rf"gfvc-ctc {re.escape(ctc.__version__)} \(commit {git_commit()}"
        r"(, with uncommitted changes)?\)",
        line,
    ), line


def test_the_changelog_and_the_citation_name_the_current_version():
    releases = re.findall(r"^## \[([^]]+)\]", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.M)
    assert releases and releases[0] == ctc.__version__
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["version"] == ctc.__version__ and citation["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")


def test_every_result_carries_the_version_and_commit_that_made_it(tiny):
    main([*tiny, "launcher=basic", "testset.sequences=[SEQ_A]"])
    results = sorted(test_runner.run_dir_of(tiny).glob("*/*/*/result.json"))
    assert len(results) == 4  # 2 codecs x 2 rate points
    for path in results:
        made_by = json.loads(path.read_text())["made_by"]
        assert made_by["version"] == ctc.__version__ and made_by["git"]["commit"] == git_commit()


def test_cfg_shows_the_anchor_the_run_will_use(no_vtm, capsys):
    """The CTC set's default anchor is VTM: shown as such; without a VTM build, with the warning the run
    would stop on (the run itself exits 2, tests/test_vtm_real.py)."""
    main(["testset=ctc", "--cfg", "job"])
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out)["anchor"]["name"] == "vtm"
    assert "warning: the anchor of test set ctc is VTM, the CTC's anchor. VTM not found" in captured.err
    main(["testset=ctc", "anchor=vvenc", "--cfg", "job", "-p", "anchor"])
    assert yaml.safe_load(capsys.readouterr().out)["name"] == "vvenc"


def test_cfg_of_several_codec_configurations_shows_each(capsys):
    main(["codec=x265,vvenc", "codec.threads=2", "--cfg", "job"])
    out = capsys.readouterr().out
    shown = list(yaml.safe_load_all(out))
    assert [config["codec"]["name"] for config in shown] == ["x265", "vvenc"]
    assert {config["codec"]["threads"] for config in shown} == {2}
    assert {config["anchor"]["name"] for config in shown} == {"vvenc"}  # the demo set's default anchor
    assert "--- # codec configuration 2 of 2: codec=vvenc codec.threads=2" in out


def test_cfg_of_a_sweep_of_anything_but_the_codec_says_what_to_do(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["testset.frames=2,3", "--cfg", "job"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "testset.frames=2,3: ctc-run sweeps configurations of the codec under test" in err
