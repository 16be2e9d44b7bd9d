"""The real VTM 22.2, built from ``../shared/vtm`` (``make test`` builds it once per machine first).

A few frames of a real face clip at two QPs, in YUV 4:2:0 and in RGB 4:4:4: the decoder's output
equals the encoder's reconstruction byte for byte, and the harness's figures equal VTM's own
closing summary: its bitrate, and its Y/U/V PSNRs, compared like for like (the harness's PSNR of the
very pictures VTM coded, against VTM's decoded ones, as VTM computes it: the mean over frames of
each plane's PSNR at peak 255; with RGB input VTM's Y, U, V are the G, B, R planes).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from anchor_helpers import HEIGHT, WIDTH, face_clip, rgb_frames, rgb_psnr

from ctc.codec import IntraCodec, create_codec
from ctc.frames import read_rgb444
from ctc.rates import kbps
from ctc.results import read_result
from ctc.runner import main

pytestmark = [pytest.mark.vtm, pytest.mark.slow]
FRAMES = 4
QPS = (37, 47)
RECORDED = Path(__file__).parent / "fake_vtm"
# VTM prints its bitrate and PSNRs with 4 decimals
PRINTED = 5e-5


@pytest.fixture(scope="module")
def clip(shared: Path, tmp_path_factory: pytest.TempPathFactory):
    spec, frames = face_clip(shared, tmp_path_factory.mktemp("clip"))
    return replace(spec, frames=FRAMES), frames[:FRAMES]


@pytest.mark.parametrize("input_format", ["yuv420", "rgb444"])
def test_real_vtm_round_trip_matches_its_own_figures(real_vtm, clip, tmp_path, input_format):
    spec, original = clip
    codec = create_codec({**real_vtm, "input_format": input_format})
    assert codec.version() == "VTM 22.2"
    sizes = []
    for qp in QPS:
        encoded = codec.encode(spec, qp, tmp_path)
        decoded = codec.decode(encoded.bitstream, spec, tmp_path)
        assert decoded.details["output_md5"] == encoded.details["reconstruction_md5"]
        reported = encoded.details["vtm_summary"]
        assert reported["frames"] == FRAMES and reported["layer"] == 0
        assert kbps(encoded.total_bits, FRAMES, spec.fps) == pytest.approx(reported["kbps"], abs=PRINTED)
        for plane in "yuv":
            assert decoded.details["coded_psnr"][f"psnr_{plane}"] == pytest.approx(
                reported[f"psnr_{plane}"], abs=PRINTED
            )
        frames = read_rgb444(decoded.frames_file, WIDTH, HEIGHT)
        assert 25 < rgb_psnr(frames, original) < 50
        sizes.append(encoded.total_bits)
    assert sizes[0] > sizes[1] > 0
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        name for qp in QPS for name in (f"face_qp{qp}.bin", f"face_qp{qp}_decoded.rgb")
    )


@pytest.mark.parametrize("input_format", ["yuv420", "rgb444"])
def test_real_vtm_intra_picture(real_vtm, clip, tmp_path, input_format):
    _, original = clip
    codec = create_codec({**real_vtm, "input_format": input_format})
    assert isinstance(codec, IntraCodec)
    data = codec.encode_picture(original[0], 32, tmp_path)
    assert data == codec.encode_picture(original[0], 32, tmp_path)  # deterministic
    picture = codec.decode_picture(data, WIDTH, HEIGHT, tmp_path)
    assert picture.shape == (3, HEIGHT, WIDTH) and rgb_psnr(picture[None], original[:1]) > 30
    assert not (tmp_path / "results").exists()


def ctc_sequences(folder: Path, shared: Path) -> Path:
    """VOXCELEB_001 of the CTC set, as its file is named, holding two real 256x256 face frames."""
    frames = rgb_frames(shared / "data/faces/00.mp4", 2, 256, 256)
    folder.mkdir()
    frames.tofile(folder / "VOXCELEB_001_256x256_25_8bit_444.rgb")
    return folder


def test_the_ctc_set_takes_vtm_as_its_anchor_and_the_report_names_it(real_vtm, shared, tmp_path, capsys):
    root = ctc_sequences(tmp_path / "ctc", shared)
    main(
        [
            "codec=x265",
            "testset=ctc",
            f"testset.root={root}",
            "testset.sequences=[VOXCELEB_001]",
            "testset.frames=2",
            "metrics=psnr",
            f"results_dir={tmp_path / 'results'}",
            "jobs=2",
        ]
    )
    captured = capsys.readouterr()
    assert "anchor vtm (the default of test set ctc" in captured.err
    run_dir = tmp_path / "results" / "ctc-f2"
    for qp in real_vtm["rate_points"]:
        result = read_result(run_dir / "vtm" / "VOXCELEB_001" / str(qp))
        assert result["status"] == "ok" and result["codec_version"] == "VTM 22.2"
        assert result["kbps"] == pytest.approx(result["encode_details"]["vtm_summary"]["kbps"], abs=PRINTED)
        assert result["identity"]["codec"]["cfg"] == "encoder_lowdelay_vtm.cfg"
    summary = (run_dir / "report" / "summary.md").read_text()
    assert "vtm: role anchor; version VTM 22.2" in summary and "## x265 vs anchor vtm" in summary
    assert json.loads((run_dir / "provenance.json").read_text())["anchor"] == "vtm"


def test_the_ctc_set_without_vtm_stops_before_anything_runs(no_vtm, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["codec=x265", "testset=ctc", f"results_dir={tmp_path / 'results'}"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "the anchor of test set ctc is VTM, the CTC's anchor. VTM not found" in err
    assert "make vtm" in err and "anchor=vvenc" in err
    assert not (tmp_path / "results").exists()


def test_record_the_real_logs_the_fake_vtm_prints(real_vtm, clip, tmp_path):
    """The fake VTM prints only these recorded lines of the real VTM 22.2; they must be what it prints."""
    spec, _ = clip
    codec = create_codec(real_vtm)
    encoded = codec.encode(spec, 37, tmp_path)
    decoded = codec.decode(encoded.bitstream, spec, tmp_path)
    for kind, log in (("encoder", encoded.log), ("decoder", decoded.log)):
        recorded = (RECORDED / f"{kind}_22.2.log").read_text().splitlines()
        assert [_shape(line) for line in recorded] == [_shape(line) for line in log.strip("\n").splitlines()]
    shutil.rmtree(tmp_path)


def _shape(line: str) -> str:
    """A log line with its numbers, paths and times blanked (the day and month of `started @ Sun Nov 29
    13:30:22 2026` too): what stays the same from run to run."""
    line = re.sub(r"@ \w{3} \w{3} ", "@ ", line)
    return " ".join(re.sub(r"[\d.]+|/\S+", "#", line).split())
