"""The code that made a result is part of its identity: editing a plug-in model redoes its jobs, editing a
metric redoes only the scores, a VTM binary is known by its bytes, and refactoring a binary's Python
wrapper redoes nothing (ctc.fingerprint, anchors.command_identity, ``ctc-run --plan``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_crosscheck import tool

from ctc.fingerprint import code_fingerprint
from ctc.hashing import compute_digest
from ctc.identity import changes
from ctc.paths import PROJECT_ROOT, cache_dir

EXAMPLE = PROJECT_ROOT / "examples" / "my_gfvc_model"
TREE = ("ctc", "anchors", "models")
ONE_DEMO_CLIP = [
    "testset=demo",
    "testset.sequences=[DEMO_001]",
    "testset.frames=2",
    "metrics=psnr",
    "report=false",
    "jobs=1",
]


def ctc_run(args: list[str], cwd: Path, python_path: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "GFVC_CACHE": str(cache_dir()), "PYTHONWARNINGS": "ignore"}
    if python_path:
        env["PYTHONPATH"] = str(python_path)
    return tool("ctc.runner", *args, cwd=cwd, env=env)


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def results(run_dir: Path) -> dict[str, dict]:
    return {
        str(path.parent.relative_to(run_dir)): json.loads(path.read_text())
        for path in sorted(run_dir.glob("*/*/*/result.json"))
    }


def bitstream_digests(run_dir: Path) -> dict[str, str]:
    return {
        label: compute_digest(run_dir / label / result["bitstream"], "sha256")
        for label, result in results(run_dir).items()
    }


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_a_fingerprint_ignores_comments_and_docstrings_but_not_statements(tmp_path, monkeypatch):
    package = tmp_path / "thumbcodec"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("SCALE = 2\n")
    (package / "model.py").write_text(
        '"""A model."""\nfrom thumbcodec.helpers import SCALE\n\n'
        "def up(x):\n    return x * SCALE  # bicubic\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_fingerprint(["thumbcodec.model"])
    assert sorted(before) == ["thumbcodec/__init__.py", "thumbcodec/helpers.py", "thumbcodec/model.py"]
    replace_in(package / "model.py", "# bicubic", "# bilinear, said a reviewer")
    replace_in(package / "model.py", '"""A model."""', '"""A better model."""')
    assert code_fingerprint(["thumbcodec.model"]) == before
    replace_in(package / "helpers.py", "SCALE = 2", "SCALE = 3")  # a module the model imports
    assert changes({"code": before}, {"code": code_fingerprint(["thumbcodec.model"])}) == [
        "thumbcodec/helpers.py changed"
    ]


def test_a_gfvc_codec_hashes_its_models_code_and_a_binary_codec_its_binary_and_command_lines():
    from ctc.conf import load_section
    from ctc.identity import codec_identity
    from ctc.tools import ffmpeg_exe

    cfte = codec_identity(
        {
            **load_section("codec", "cfte"),
            "weights": "random",
            "intra": load_section("picture_codec", "x265"),
            "rate_points": [22, 32, 42, 51],  # key-frame QPs HEVC has (0 to 51)
        }
    )
    assert {"models/gfvc.py", "models/cfte.py", "ctc/frames.py"} <= set(cfte["code"])
    assert not [path for path in cfte["code"] if path.startswith("ctc/") and path != "ctc/frames.py"]
    key_frames = cfte["key_frame_codec"]
    ffmpeg = Path(ffmpeg_exe())
    assert "code" not in key_frames
    assert key_frames["binaries"]["ffmpeg"] == f"{ffmpeg.name} sha256 {compute_digest(ffmpeg, 'sha256')}"
    assert "-qp" in key_frames["encode_command"] and "{qp}" in key_frames["encode_command"]
    assert key_frames["encode_command"][0] == ffmpeg.name and "{bitstream}" in key_frames["encode_command"]
    assert key_frames["input_code"] == code_fingerprint(["ctc.frames"])


@pytest.mark.slow  # three sweeps of a plug-in GFVC codec (4 jobs of 2 frames each) and two plans
def test_editing_a_plug_in_model_outside_the_repository_redoes_its_jobs_and_names_the_file(tmp_path):
    example = tmp_path / "my_gfvc_model"
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("__pycache__"))
    sweep = [
        "--config-dir",
        "conf",
        "codec=mine_q4",
        "picture_codec@codec.intra=vvenc",
        "anchor=none",
        *ONE_DEMO_CLIP,
        f"results_dir={tmp_path / 'results'}",
    ]
    ok(ctc_run(sweep, example, example))
    run_dir = tmp_path / "results" / "demo-f2"
    first = results(run_dir)
    assert len(first) == 4 and {result["status"] for result in first.values()} == {"ok"}
    assert "my_gfvc_model/affine.py" in first["mine_q4/DEMO_001/22"]["identity"]["codec"]["code"]
    again = ok(ctc_run(sweep, example, example))
    assert "to run" not in again.stderr and results(run_dir) == first
    replace_in(example / "my_gfvc_model" / "affine.py", 'mode="bilinear"', 'mode="nearest"')
    plan = ok(ctc_run([*sweep, "--plan"], example, example))
    assert "mine_q4: 4 to code, 0 to score only, 0 reused" in plan.stdout
    assert "4 to code: my_gfvc_model/affine.py changed" in plan.stdout
    assert results(run_dir) == first  # the plan wrote nothing
    redone = ok(ctc_run(sweep, example, example))
    assert "mine_q4: my_gfvc_model/affine.py changed, 4 jobs to run" in redone.stderr
    assert {label: result["config_hash"] for label, result in results(run_dir).items()} != {
        label: result["config_hash"] for label, result in first.items()
    }


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """The harness's packages copied outside the repository, to be edited as a developer would."""
    copy = tmp_path / "tree"
    for folder in TREE:
        shutil.copytree(PROJECT_ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_ROOT / "sequences.yaml", copy)
    return copy


@pytest.mark.slow
@pytest.mark.vtm
def test_refactoring_the_vtm_wrapper_redoes_nothing_and_a_metric_edit_redoes_only_the_scores(
    tree_copy, real_vtm, tmp_path
):
    sweep = [
        "codec=vtm",
        "codec.rate_points=[37]",
        "anchor=x265",
        "anchor.rate_points=[37]",
        *ONE_DEMO_CLIP,
        f"results_dir={tmp_path / 'results'}",
    ]
    ok(ctc_run(sweep, tmp_path, tree_copy))
    run_dir = tmp_path / "results" / "demo-f2"
    first, bitstreams = results(run_dir), bitstream_digests(run_dir)
    assert set(first) == {"vtm/DEMO_001/37", "x265/DEMO_001/37"}
    vtm_identity = first["vtm/DEMO_001/37"]["identity"]["codec"]
    assert "code" not in vtm_identity and vtm_identity["binaries"]["encoder"].startswith("EncoderApp")
    assert "--QP={qp}" in vtm_identity["encode_command"]
    # a refactor of the wrapper that keeps its command lines, and a comment in the metric
    wrapper = tree_copy / "anchors" / "vtm.py"
    replace_in(wrapper, "_checked_summary", "_summary_checked")
    replace_in(wrapper, "    def version(self) -> str:", "    def version(self) -> str:  # VTM's banner")
    replace_in(tree_copy / "ctc" / "metrics" / "psnr.py", "\nimport", "\n# the CTC's PSNR\nimport")
    plan = ok(ctc_run([*sweep, "--plan"], tmp_path, tree_copy))
    assert "vtm: 0 to code, 0 to score only, 1 reused" in plan.stdout
    # a change of the metric's code: scored again from the kept bitstreams, nothing coded again
    replace_in(tree_copy / "ctc" / "metrics" / "psnr.py", "\nimport", "\nEDITED = True\nimport")
    plan = ok(ctc_run([*sweep, "--plan"], tmp_path, tree_copy))
    assert "vtm: 0 to code, 1 to score only, 0 reused" in plan.stdout
    assert "1 to score: to score psnr again (ctc/metrics/psnr.py changed)" in plan.stdout
    rescored = ok(ctc_run(sweep, tmp_path, tree_copy))
    assert "to score psnr again (ctc/metrics/psnr.py changed), 1 job to run" in rescored.stderr
    after = results(run_dir)
    assert bitstream_digests(run_dir) == bitstreams
    assert all(result["reused_bitstream"] for result in after.values())
    assert {label: result["config_hash"] for label, result in after.items()} == {
        label: result["config_hash"] for label, result in first.items()
    }
    assert after["vtm/DEMO_001/37"]["metrics"] == first["vtm/DEMO_001/37"]["metrics"]


@pytest.mark.slow
@pytest.mark.vtm
def test_a_vtm_binary_whose_bytes_change_under_the_same_version_redoes_its_jobs(real_vtm, tmp_path):
    from anchors.vtm_tools import DECODER_NAMES, ENCODER_NAMES, find_encoder_cfg, find_program, vtm_version

    encoder, decoder = (
        find_program(real_vtm, role, names)
        for role, names in (("encoder", ENCODER_NAMES), ("decoder", DECODER_NAMES))
    )
    copy = tmp_path / "vtm"
    (copy / "bin").mkdir(parents=True)
    for program in (encoder, decoder):
        shutil.copy2(program, copy / "bin" / program.name)
    shutil.copytree(find_encoder_cfg(real_vtm, encoder).parent, copy / "cfg")
    sweep = [
        "codec=vtm",
        "codec.rate_points=[37]",
        f"codec.vtm_dir={copy}",
        "anchor=none",
        *ONE_DEMO_CLIP,
        f"results_dir={tmp_path / 'results'}",
    ]
    ok(ctc_run(sweep, tmp_path))
    run_dir = tmp_path / "results" / "demo-f2"
    first = results(run_dir)["vtm/DEMO_001/37"]
    rebuilt = copy / "bin" / encoder.name
    with open(rebuilt, "ab") as binary:
        binary.write(b"\0")  # other bytes, the same program and banner
    assert vtm_version(rebuilt) == vtm_version(encoder)
    plan = ok(ctc_run([*sweep, "--plan"], tmp_path))
    assert "vtm: 1 to code, 0 to score only, 0 reused" in plan.stdout
    assert "codec.binaries.encoder: " in plan.stdout
    redone = ok(ctc_run(sweep, tmp_path))
    assert "1 job to run" in redone.stderr
    after = results(run_dir)["vtm/DEMO_001/37"]
    assert after["config_hash"] != first["config_hash"] and not after["reused_bitstream"]
