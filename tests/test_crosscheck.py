"""ctc-package and ctc-crosscheck with the real codecs: a small demo run (x265 and CFTE against the vvenc
anchor, 4 frames) packaged, then cross-checked by separate processes in fresh folders, as it is and
tampered with (a bitstream byte, other weights, another reference sequence, a package file)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ctc.crosscheck.checks import TOLERANCES
from ctc.package import INDEX_FILE, JOB_FILE, MANIFEST_FILE, write_manifest
from ctc.paths import PROJECT_ROOT
from ctc.results import read_result
from ctc.runner import main as ctc_run
from ctc.testset.sequences import declared_specs, load_test_set
from models.checkpoints import ENV_VAR

CHECKPOINT = "CFTE-checkpoint.pth.tar"  # the file name ctc/conf/model/cfte.yaml looks for


def save_cfte_checkpoint(path: Path, nudge: float = 0.0) -> None:
    """CFTE's networks on their seeded random weights as a checkpoint file; ``nudge`` changes one weight."""
    from models.gfvc_build import load_model
    from models.registry import load_model_config

    model = load_model("cfte", load_model_config("cfte"), "random", "cpu")
    networks = {name: dict(module.state_dict()) for name, module in model.networks.items()}
    first = next(iter(networks["generator"]))
    networks["generator"][first] = networks["generator"][first] + nudge
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(networks, path)


def tool(
    module: str, *args: object, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python -m module args`` as a separate process in ``cwd`` (the installed command's code), in
    ``env`` (default: this environment with the project on PYTHONPATH)."""
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)} if env is None else dict(env)
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The run, its package, the proposer's checkpoint folder and the reference sequences' folder."""
    root = tmp_path_factory.mktemp("contribution")
    weights = root / "weights"
    save_cfte_checkpoint(weights / CHECKPOINT)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV_VAR, str(weights))
        ctc_run(
            [
                "codec=x265,cfte",
                "anchor=vvenc",
                "testset=demo",
                "testset.frames=4",
                "testset.sequences=[DEMO_001]",
                "metrics=psnr",
                "report_page.enabled=false",
                f"results_dir={root / 'results'}",
                "jobs=2",
            ]
        )
    run_dir = root / "results" / "demo-f4"
    package = root / "package"
    made = tool("ctc.package", run_dir, "--out", package, cwd=root)
    assert made.returncode == 0, made.stderr
    return {
        "run": run_dir,
        "package": package,
        "weights": weights,
        "root": root,
        "sequences": declared_specs("demo")[0].root,
    }


def crosscheck(package: Path, folder: Path, *args: object) -> subprocess.CompletedProcess:
    """ctc-crosscheck in a fresh folder of its own."""
    folder.mkdir(parents=True)
    return tool("ctc.crosscheck.cli", package, *args, cwd=folder)


def job_verdicts(folder: Path) -> dict[str, tuple[str, str]]:
    table = pd.read_csv(folder / "crosscheck-demo-f4" / "crosscheck.csv", keep_default_na=False)
    return {f"{row.codec}/{row.rate_point}": (row.verdict, row.reason) for row in table.itertuples()}


def tampered_copy(made: dict[str, Path], name: str) -> Path:
    copy = made["root"] / name
    shutil.copytree(made["package"], copy)
    return copy


@pytest.mark.slow
def test_the_package_holds_bitstreams_and_records_not_decoded_video(made):
    package = made["package"]
    index = json.loads((package / INDEX_FILE).read_text())
    assert len(index["jobs"]) == 12 and not index["left_out"]
    assert {name: codec["role"] for name, codec in index["codecs"].items()} == {
        "vvenc": "anchor",
        "x265": "test",
        "cfte": "test",
    }
    weights_sha = hashlib.sha256((made["weights"] / CHECKPOINT).read_bytes()).hexdigest()
    assert index["codecs"]["cfte"]["identity"]["weights"] == f"{CHECKPOINT} sha256 {weights_sha}"
    ffmpeg = index["codecs"]["x265"]["binaries"]  # the programs its command lines ran, by sha256
    assert len(ffmpeg) == 1 and len(next(iter(ffmpeg.values()))) == 64
    assert index["codecs"]["x265"]["codec_config"]["timeout_s"] > 0  # what the identity leaves out
    sequence = index["sequences"]["DEMO_001"]
    reference = made["sequences"] / sequence["file"]
    assert sequence["file_md5"] == hashlib.md5(reference.read_bytes()).hexdigest()
    for job in index["jobs"]:
        record = json.loads((package / job / JOB_FILE).read_text())
        result = read_result(made["run"] / Path(job).relative_to("jobs"))
        assert record["identity"] == result["identity"] and record["made_by"] == result["made_by"]
        assert record["decoded_md5"] == result["decoded_md5"]
        assert record["decoded_md5_from"] == "recorded by the job"
        assert "commands" not in record
    names = [path.relative_to(package).as_posix() for path in package.rglob("*") if path.is_file()]
    assert not [name for name in names if name.endswith((".rgb", ".yuv"))]  # no video but the bitstreams
    assert {"tables/bd.csv", "tables/report.xlsx", "tables/summary.csv", "README.md"} <= set(names)
    listed = (package / MANIFEST_FILE).read_text().splitlines()
    assert sorted(line.split("  ", 1)[1] for line in listed) == sorted(set(names) - {MANIFEST_FILE})
    assert "ctc-crosscheck PACKAGE" in (package / "README.md").read_text()


@pytest.mark.slow
def test_an_older_result_without_its_decoded_md5_is_decoded_again_for_it(made, tmp_path):
    run = tmp_path / "demo-f4"
    shutil.copytree(made["run"], run)
    path = run / "x265" / "DEMO_001" / "42" / "result.json"
    result = json.loads(path.read_text())
    recorded = result.pop("decoded_md5")
    path.write_text(json.dumps(result))
    packaged = tool("ctc.package", run, "--zip", tmp_path / "older.zip", cwd=tmp_path)
    assert packaged.returncode == 0, packaged.stderr
    with zipfile.ZipFile(tmp_path / "older.zip") as archive:
        record = json.loads(archive.read("older/jobs/x265/DEMO_001/42/job.json"))
    assert record["decoded_md5"] == recorded and record["decoded_md5_from"] == "bitstream decoded again"


@pytest.mark.slow
def test_every_job_passes_and_the_bd_tables_are_equal(made):
    folder = made["root"] / "checker"
    checked = crosscheck(
        made["package"], folder, "--weights", made["weights"], "--sequences", made["sequences"]
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "PASS: 12 of 12 jobs pass, 0 fail, 0 not checked; BD tables equal" in checked.stdout
    assert {verdict for verdict, _ in job_verdicts(folder).values()} == {"pass"}
    report = json.loads((folder / "crosscheck-demo-f4" / "crosscheck.json").read_text())
    assert {
        table["codec"]: (table["verdict"], table["largest_bd_rate_difference"]) for table in report["tables"]
    } == {"x265": ("pass", 0.0), "cfte": ("pass", 0.0)}
    assert report["tolerances"]["metrics_per_frame"]["psnr"] == TOLERANCES["psnr"]


@pytest.mark.slow
def test_a_changed_bitstream_byte_fails_its_job_only(made):
    package = tampered_copy(made, "one-byte")
    bitstream = next((package / "jobs" / "x265" / "DEMO_001" / "42").glob("*.265"))
    data = bytearray(bitstream.read_bytes())
    data[-10] ^= 0x5A  # in the last picture's slice data (x265's own SEI with its settings comes first)
    bitstream.write_bytes(bytes(data))
    write_manifest(package)  # the proposer's own package, with a bitstream that is not what they decoded
    folder = made["root"] / "checker-one-byte"
    checked = crosscheck(package, folder, "--weights", made["weights"], "--sequences", made["sequences"])
    assert checked.returncode == 1 and checked.stdout.count("FAIL: 11 of 12 jobs pass, 1 fail") == 1
    verdicts = job_verdicts(folder)
    verdict, reason = verdicts.pop("x265/42")
    assert verdict == "fail" and ("decoded md5 differs" in reason or "decoder refused" in reason)
    assert {verdict for verdict, _ in verdicts.values()} == {"pass"}


@pytest.mark.slow
def test_other_weights_fail_the_gfvc_jobs_naming_both_sha256(made, tmp_path):
    other = tmp_path / "other-weights"
    save_cfte_checkpoint(other / CHECKPOINT, nudge=1e-3)
    folder = made["root"] / "checker-other-weights"
    checked = crosscheck(made["package"], folder, "--weights", other, "--sequences", made["sequences"])
    assert checked.returncode == 1
    ours, theirs = (
        hashlib.sha256((where / CHECKPOINT).read_bytes()).hexdigest() for where in (made["weights"], other)
    )
    for name, (verdict, reason) in job_verdicts(folder).items():
        if name.startswith("cfte/"):
            assert verdict == "fail" and ours in reason and theirs in reason
        else:
            assert verdict == "pass"


@pytest.mark.slow
def test_gfvc_jobs_without_their_weights_here_are_not_checked(made, tmp_path):
    folder = made["root"] / "checker-no-weights"
    checked = crosscheck(made["package"], folder, "--weights", tmp_path, "--sequences", made["sequences"])
    assert checked.returncode == 0, checked.stderr
    assert "PASS: 8 of 12 jobs pass, 0 fail, 4 not checked" in checked.stdout
    for name, (verdict, reason) in job_verdicts(folder).items():
        assert verdict == ("not checked" if name.startswith("cfte/") else "pass")
        assert (f"{CHECKPOINT} sha256" in reason) == name.startswith("cfte/")


@pytest.mark.slow
def test_a_changed_reference_sequence_is_refused_before_decoding(made, tmp_path):
    sequences = tmp_path / "sequences"
    shutil.copytree(made["sequences"], sequences)
    reference = sequences / "DEMO_001_256x256_25_8bit_444.rgb"
    data = bytearray(reference.read_bytes())
    data[100] ^= 1
    reference.write_bytes(bytes(data))
    folder = made["root"] / "checker-other-sequence"
    checked = crosscheck(made["package"], folder, "--weights", made["weights"], "--sequences", sequences)
    assert checked.returncode == 2
    assert "reference sequence refused before decoding" in checked.stderr and str(reference) in checked.stderr
    assert hashlib.md5(bytes(data)).hexdigest() in checked.stderr
    assert checked.stdout == "" and not (folder / "crosscheck-demo-f4").exists()  # nothing decoded


@pytest.mark.slow
def test_a_package_with_a_file_missing_or_altered_is_refused_naming_it(made):
    missing = tampered_copy(made, "missing-file")
    (missing / "jobs" / "vvenc" / "DEMO_001" / "47" / JOB_FILE).unlink()
    checked = crosscheck(missing, made["root"] / "checker-missing")
    assert checked.returncode == 2
    assert "package file jobs/vvenc/DEMO_001/47/job.json is missing" in checked.stderr
    altered = tampered_copy(made, "altered-file")
    table = altered / "tables" / "bd.csv"
    table.write_text(table.read_text().replace("DEMO_001", "DEMO_00I", 1))
    zipped = made["root"] / "altered.zip"
    from ctc.package import write_zip

    write_zip(altered, zipped)
    checked = crosscheck(zipped, made["root"] / "checker-altered")
    assert checked.returncode == 2 and "package file tables/bd.csv is altered" in checked.stderr


@pytest.mark.slow
def test_float32_metrics_vary_far_less_than_their_tolerance_with_batch_size_and_threads():
    """The cross-machine tolerance of DISTS and LPIPS is 100 times what batch size and thread count
    change here (another CPU or a GPU reorders the same float32 sums in the same way)."""
    from ctc.metrics import score_frames

    (spec,) = load_test_set({"name": "demo", "sequences": ["DEMO_001"], "frames": 4})  # built if missing
    reference = np.array(spec.read()[:4])
    noisy = np.clip(
        reference.astype(np.int16) + np.random.default_rng(0).integers(-12, 13, reference.shape), 0, 255
    ).astype(np.uint8)
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = score_frames(reference, noisy, ["dists", "lpips"], batch_size=1)
        torch.set_num_threads(2)
        four = score_frames(reference, noisy, ["dists", "lpips"], batch_size=4)
    finally:
        torch.set_num_threads(saved)
    assert float((one - four).abs().to_numpy().max()) < TOLERANCES["default"] / 100


@pytest.mark.slow
def test_dists_and_lpips_are_computed_again_within_their_tolerance(tmp_path):
    """The CTC metrics on a smaller run (x265 at one rate point against the vvenc anchor, 2 frames)."""
    ctc_run(
        [
            "codec=x265",
            "codec.rate_points=[42]",
            "anchor=vvenc",
            "testset=demo",
            "testset.frames=2",
            "testset.sequences=[DEMO_002]",
            "metrics=ctc",
            "report_page.enabled=false",
            f"results_dir={tmp_path / 'results'}",
            "jobs=2",
        ]
    )
    packaged = tool(
        "ctc.package", tmp_path / "results" / "demo-f2", "--out", tmp_path / "package", cwd=tmp_path
    )
    assert packaged.returncode == 0, packaged.stderr
    folder = tmp_path / "checker"
    checked = crosscheck(tmp_path / "package", folder)  # the demo set where this harness finds it
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "PASS: 5 of 5 jobs pass" in checked.stdout
    table = pd.read_csv(folder / "crosscheck-demo-f2" / "crosscheck.csv")
    for metric in ("dists", "lpips", "psnr"):
        assert (table[f"max_diff_{metric}"] <= TOLERANCES.get(metric, TOLERANCES["default"])).all()
