"""Bring your own model: plug-in classes by configuration, composed nested sections, several codec
configurations in one run, and the worked example (examples/my_gfvc_model) run from outside the repo."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ctc.codec import Codec, register_codec
from ctc.conf import compose, load_section, without_hydra
from ctc.paths import PROJECT_ROOT
from ctc.registry import PluginError, Registry
from ctc.runner import main
from ctc.sweep.plan import plan_sweep
from models.complexity import main as main_complexity

EXAMPLE = PROJECT_ROOT / "examples" / "my_gfvc_model"
FACES_ONE = ["testset=faces", "testset.sequences=[FACES_00]", "testset.frames=3"]


def test_a_second_class_under_a_taken_name_is_refused_with_both_named():
    import anchors.vvenc  # noqa: F401  (registers vvenc)

    class Other(Codec):
        pass

    with pytest.raises(
        PluginError,
        match=r"codec name 'vvenc' is registered twice: by anchors\.vvenc\."
        r"VvencCodec and by .*Other; give one of them another name",
    ):
        register_codec("vvenc")(Other)
    registry = Registry("metric")
    registry.add("m", Other)
    assert registry.add("m", Other) is Other  # a module imported twice registers its class again


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"module": "no_such_package.codec", "class": "X"}, "cannot import its module 'no_such_package"),
        ({"module": "ctc.codec", "class": "Nonesuch"}, "module 'ctc.codec' has no class 'Nonesuch'"),
        ({"module": "ctc.codec", "class": "EncodeResult"}, "ctc.codec.EncodeResult is not a Codec"),
        ({"module": "ctc.codec"}, "codec 'x' names no implementation: give 'module' and 'class', or a"),
        ({"type": "nonesuch"}, "unknown codec 'nonesuch'; registered: "),
    ],
)
def test_a_section_naming_no_usable_class_says_why(section, message):
    registry = Registry("codec")
    with pytest.raises(PluginError, match=message):
        registry.resolve({"name": "x", **section}, Codec)


@pytest.fixture(scope="session")
def vtm_root(real_vtm) -> Path:
    """The folder of the machine's VTM build (its ``cfg`` beside its ``bin``)."""
    from anchors.vtm_tools import ENCODER_NAMES, find_program

    encoder = find_program(real_vtm, "encoder", ENCODER_NAMES)
    return next(folder for folder in encoder.parents if (folder / "cfg").is_dir())


@pytest.mark.vtm
def test_nested_overrides_reach_the_key_frame_codec(vtm_root, no_vtm, capsys):
    """With VTM hidden from every other place, ``codec.intra.vtm_dir`` alone makes the key frames VTM's."""
    override = f"codec.intra.vtm_dir={vtm_root}"
    main(["codec=cfte", override, "--cfg", "job"])
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["codec"]["intra"]["vtm_dir"] == str(vtm_root)
    assert shown["codec"]["model"]["type"] == "cfte"  # the model config is composed in too

    def key_frame_codec(*overrides: str) -> dict:
        settings = without_hydra(compose(["codec=cfte", "anchor=none", *FACES_ONE, *overrides]))
        return plan_sweep(settings).identities["test"]["key_frame_codec"]

    found = key_frame_codec(override)
    assert found["config"]["name"] == "vtm" and found["version"] == "VTM 22.2"
    assert found["config"]["vtm_dir"] == str(vtm_root)
    assert key_frame_codec()["config"]["name"] == "vvenc"  # auto: VTM not found, its fallback


def test_two_configurations_under_one_name_are_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["codec=cfte", "codec.gop_size=4,8", "anchor=none", *FACES_ONE, "report=false"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "two codec configurations are both named 'cfte' but differ (codec.config.gop_size: 4 -> 8)" in err
    assert "give each its own name (codec.name=...)" in err
    with pytest.raises(SystemExit) as stop:
        main(["codec=cfte", "anchor=none", "testset=faces", "testset.frames=2,3"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "testset.frames=2,3: ctc-run sweeps configurations of the codec under test" in err


def test_the_example_is_named_nowhere_in_the_harness():
    names = ("my_gfvc_model", "mine_q", "affine_keypoints", "AffineKeypointModel", "edge_psnr")
    for folder in ("ctc", "models", "anchors"):
        for path in (PROJECT_ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".yaml", ".j2"):
                text = path.read_text(encoding="utf-8")
                assert not [name for name in names if name in text], path


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """The example copied outside the repository, with its own package and config folder."""
    copy = tmp_path / "my_gfvc_model"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert PROJECT_ROOT not in copy.resolve().parents
    return copy


def test_the_example_model_and_metric_load_from_its_own_folder(example, monkeypatch, tmp_path):
    """The composed example config builds the harness's GFVC codec around the example's model class; its
    warp gives sensible pictures and its metric scores them."""
    from ctc.codec import create_codec
    from ctc.frames import read_rgb444
    from ctc.metrics import score_frames, use_metric_modules
    from ctc.testset.sequences import load_test_set

    monkeypatch.syspath_prepend(str(example))
    overrides = ["codec=mine_q8", "metrics=mine", "picture_codec@codec.intra=vvenc", *FACES_ONE]
    config = without_hydra(compose(overrides, config_dirs=[str(example / "conf")]))
    section = config["codec"]
    assert section["name"] == "mine_q8" and section["q_step"] == 8 and section["type"] == "gfvc"
    assert section["model"]["class"] == "AffineKeypointModel" and section["intra"]["type"] == "vvenc"
    codec = create_codec(section)
    assert type(codec.model).__name__ == "AffineKeypointModel" and codec.model.feature_size == 18
    assert "no learned weights" in codec.version() and codec.provenance()["checkpoint"] is None
    (spec,) = load_test_set(config["testset"])
    encoded = codec.encode(spec, 32, tmp_path)
    decoded = codec.decode(encoded.bitstream, spec, tmp_path / "decoded")
    frames = decoded.frames_file.read_bytes()
    assert len(frames) == spec.frames * spec.frame_bytes
    use_metric_modules(config["metrics"]["modules"])
    scores = score_frames(
        spec.read(),
        read_rgb444(decoded.frames_file, spec.width, spec.height, spec.frames),
        config["metrics"]["names"],
    )
    assert list(scores.columns) == ["psnr", "edge_psnr"]
    assert scores.psnr.mean() > 25 and (scores.psnr > 18).all() and (scores.edge_psnr > 25).all()
    assert load_section("metrics", "psnr")["modules"] == []
    assert main_complexity(["--config-dir", str(example / "conf"), "affine_keypoints"]) == 0


def ctc_run_in(example: Path, *overrides: str) -> subprocess.CompletedProcess:
    """``ctc-run --config-dir conf OVERRIDES`` run in an example's folder with the folder on PYTHONPATH,
    as its user runs it; it must succeed."""
    command = [str(Path(sys.executable).parent / "ctc-run"), "--config-dir", "conf", *overrides]
    env = {**os.environ, "PYTHONPATH": str(example)}
    done = subprocess.run(command, cwd=example, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow  # about a minute: two configurations of the model and the anchor, each in worker processes
def test_the_example_runs_through_ctc_run_from_outside_the_repository(example, tmp_path):
    results = tmp_path / "results"
    done = ctc_run_in(
        example,
        "codec=mine_q4,mine_q8",
        "picture_codec@codec.intra=vvenc",
        "anchor=vvenc",
        *FACES_ONE,
        "metrics=psnr",
        "metrics.names=[psnr,edge_psnr]",
        "metrics.modules=[my_gfvc_model.metrics]",
        f"results_dir={results}",
        "jobs=2",
    )
    run_dir = results / "faces-f3"
    bd = pd.read_csv(run_dir / "report" / "bd.csv")
    rows = bd[bd.level == "sequence"]
    assert sorted(set(rows.codec)) == ["mine_q4", "mine_q8"] and set(rows.metric) == {"psnr", "edge_psnr"}
    assert all(math.isfinite(value) for value in rows.bd_rate)
    table = pd.read_csv(run_dir / "summary.csv")
    assert sorted(set(table.codec)) == ["mine_q4", "mine_q8", "vvenc"] and (table.status == "ok").all()
    rates = {codec: rows.set_index("rate_point").kbps for codec, rows in table.groupby("codec")}
    assert (rates["mine_q8"] >= rates["mine_q4"]).all() and rates["mine_q8"].sum() > rates["mine_q4"].sum()
    assert table[table.codec == "mine_q4"].psnr.max() > 25  # the warped key frame is a sensible picture
    q4, q8 = (
        json.loads((run_dir / codec / "FACES_00" / "22" / "result.json").read_text())
        for codec in ("mine_q4", "mine_q8")
    )
    assert [result["identity"]["codec"]["config"]["q_step"] for result in (q4, q8)] == [4, 8]
    assert q4["identity"]["codec"]["weights"] == "none" and q4["random_weights"] is False
    assert q4["config_hash"] != q8["config_hash"]
    assert "## mine_q4 vs anchor vvenc" in done.stdout and "## mine_q8 vs anchor vvenc" in done.stdout
    assert (run_dir / "report" / "index.html").is_file()  # its comparisons decode the example's bitstreams
    # ctc-report finds the run's plug-in modules as its sweep did, without PYTHONPATH
    bare = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    pictures = run_dir / "report" / "visuals"
    visuals = sorted(path.relative_to(pictures) for path in pictures.rglob("*"))
    report = subprocess.run(
        [str(Path(sys.executable).parent / "ctc-report"), str(run_dir)],
        cwd=tmp_path,
        env=bare,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    assert visuals and sorted(path.relative_to(pictures) for path in pictures.rglob("*")) == visuals


@pytest.mark.slow  # about a minute: the new anchor and vvenc on three frames
def test_an_anchor_from_one_module_and_one_yaml_outside_the_repository_is_swept_and_reported(tmp_path):
    """examples/my_anchor: a conventional codec (H.264 through libx264) is one module and one codec yaml;
    nothing of the harness is edited, and the sweep codes, scores and reports it against vvenc."""
    example = tmp_path / "my_anchor"
    shutil.copytree(
        PROJECT_ROOT / "examples" / "my_anchor", example, ignore=shutil.ignore_patterns("__pycache__")
    )
    assert sorted(path.relative_to(example).as_posix() for path in example.rglob("*") if path.is_file()) == [
        "conf/codec/x264.yaml",
        "my_x264.py",
    ]
    results = tmp_path / "results"
    done = ctc_run_in(
        example, "codec=x264", "anchor=vvenc", *FACES_ONE, "metrics=psnr", f"results_dir={results}", "jobs=2"
    )
    table = pd.read_csv(results / "faces-f3" / "summary.csv")
    assert sorted(set(table.codec)) == ["vvenc", "x264"] and (table.status == "ok").all()
    x264 = table[table.codec == "x264"].sort_values("rate_point")
    assert list(x264.rate_point) == [32, 37, 42, 47]
    assert x264.kbps.is_monotonic_decreasing and x264.psnr.is_monotonic_decreasing  # coarser QP, fewer bits
    result = json.loads((results / "faces-f3" / "x264" / "FACES_00" / "32" / "result.json").read_text())
    assert "libx264" in result["codec_version"]
    bd = pd.read_csv(results / "faces-f3" / "report" / "bd.csv")
    assert math.isfinite(bd[(bd.codec == "x264") & (bd.level == "sequence")].bd_rate.iloc[0])
    assert "## x264 vs anchor vvenc" in done.stdout
