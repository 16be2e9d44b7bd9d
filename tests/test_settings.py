"""Every bad setting is one clear message and exit code 2 before anything runs or is written, and no
name, however it is spelled, makes the harness write outside ``results_dir``."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctc.runner import main

QUICK = [
    "codec=x265",
    "anchor=vvenc",
    "testset=demo",
    "testset.frames=2",
    "testset.sequences=[DEMO_001]",
    "metrics=psnr",
]


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*")}


def refused(args: list[str], tmp_path: Path, capsys) -> str:
    """Run ``ctc-run args``; assert exit 2, nothing written under ``tmp_path``; return the error line."""
    before = files_under(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main([*args, f"results_dir={tmp_path / 'results'}"])
    assert stop.value.code == 2
    assert files_under(tmp_path) == before  # no results folder, no job folder, no provenance
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ctc-run: error:")]
    assert len(errors) == 1, errors
    return errors[0]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("jobs=0", "jobs=0: expected a positive number of parallel workers"),
        ("jobs=-3", "jobs=-3: expected a positive number of parallel workers"),
        ("metrics.names=[psnr,no_such_metric]", "metrics.names: unknown metric 'no_such_metric'"),
        ("anchor.rate_points=[37,42]", "anchor vvenc has 2 rate points ([37, 42]); BD-rate needs at least 4"),
        ("run=../escaped", "run '../escaped' cannot name a results folder"),
        ("run=..", "run '..' cannot name a results folder"),
    ],
)
def test_bad_settings_are_refused_before_anything_runs(override, message, tmp_path, capsys):
    assert message in refused([*QUICK, override], tmp_path, capsys)


def test_a_missing_vtm_binary_path_is_refused(tmp_path, capsys):
    error = refused(
        [*QUICK[:1], "anchor=vtm", *QUICK[2:], "anchor.encoder=/nowhere/EncoderApp"], tmp_path, capsys
    )
    assert "anchor vtm: codec.encoder = /nowhere/EncoderApp is not an executable file" in error


def test_a_missing_checkpoint_path_is_refused(tmp_path, capsys):
    error = refused(
        ["codec=cfte", "anchor=none", *QUICK[2:], "codec.weights=/nowhere/CFTE.pth.tar"], tmp_path, capsys
    )
    assert "codec cfte: cfte: checkpoint /nowhere/CFTE.pth.tar does not exist" in error


def test_a_q_step_that_disagrees_with_the_sei_precision_is_refused(tmp_path, capsys):
    error = refused(["codec=cfte", "anchor=none", *QUICK[2:], "codec.q_step=8"], tmp_path, capsys)
    assert "q_step 8 disagrees with the SEI layout's coordinate_precision 2 (2^2 = 4)" in error


# "../../../escaped": from results/<run>/<codec>/ up to tmp_path, where refused() sees every new file
@pytest.mark.parametrize("name", ["../../../escaped", "a/b", "..", "white space", "x;rm"])
def test_sequence_names_that_would_be_paths_are_refused(name, tmp_path, capsys):
    sequences = tmp_path / "seqs"
    sequences.mkdir()
    (sequences / "clip.rgb").write_bytes(bytes(2 * 3 * 64 * 64))
    listing = tmp_path / "sequences.yaml"
    listing.write_text(
        "file_template: 'clip.rgb'\ntest_sets:\n  mine:\n    root: null\n"
        "    defaults: {width: 64, height: 64, frames: 2, fps: 25}\n"
        f"    sequences:\n      - {{name: '{name}', class: A}}\n"
    )
    conf = tmp_path / "conf" / "testset"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text(
        f"name: mine\nroot: {sequences}\nsequences: null\nframes: null\n"
        f"sequences_file: {listing}\ndefault_anchor: vvenc\n"
    )
    error = refused(
        [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "codec=x265", "testset=mine", "metrics=psnr"],
        tmp_path,
        capsys,
    )
    assert f"sequence name {name!r} cannot name a results folder" in error
    assert not (tmp_path / "escaped").exists()
