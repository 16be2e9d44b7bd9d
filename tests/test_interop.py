"""Decoder interoperability codecs: model A's bitstream, unchanged, decoded by model B's generator
through the real trained translator (``../shared/interop``), on real face frames with the real vvenc
key frame; A and B are the tiny golden configurations with random weights."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from rd_fixture import write_run

from ctc.codec import CodecError
from ctc.conf import available, load_section
from ctc.frames import read_rgb444, write_rgb444
from ctc.identity import codec_identity
from ctc.report.cli import write_report
from ctc.testset.sequences import SequenceSpec, load_test_set
from models.bitstream import BitstreamError
from models.checkpoints import ENV_VAR
from models.gfvc import GfvcCodec
from models.interop import InteropCodec
from models.interop_quality import main as interop_quality_main
from models.interop_quality import translation_error
from models.registry import load_model_config
from models.translators import translators_between

SIZE = 256  # tiny CFTE's 4 x 4 feature needs 256 x 256 frames
FRAMES = 4


@pytest.fixture
def checkpoints(shared: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = shared / "interop" / "checkpoints"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    monkeypatch.setenv(ENV_VAR, str(folder))
    return folder


@pytest.fixture(scope="module")
def sequence(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> SequenceSpec:
    """The first frames of the real clip FACES_00 at 256 x 256."""
    (spec,) = load_test_set({"name": "faces", "sequences": ["FACES_00"], "frames": FRAMES})
    frames = np.asarray(spec.read())
    if frames.shape[2:] != (SIZE, SIZE):
        frames = (
            np.stack(
                [cv2.resize(f.transpose(1, 2, 0), (SIZE, SIZE), interpolation=cv2.INTER_AREA) for f in frames]
            )
            .transpose(0, 3, 1, 2)
            .copy()
        )
    folder = tmp_path_factory.mktemp("seq")
    write_rgb444(folder / "face00.rgb", frames)
    return SequenceSpec("face00", "FACES", "face00.rgb", SIZE, SIZE, FRAMES, 30.0, root=folder)


def tiny(model: str, shared: Path) -> dict:
    config = shared / "golden" / model / "tiny" / "config.json"
    if not config.is_file():
        pytest.skip(f"{config} is absent")
    return {**load_model_config(model), "model_params": json.loads(config.read_text())["model_params"]}


def tiny_codec_config(name: str, shared: Path, **overrides) -> dict:
    """Codec config ``name`` with tiny random-weight models, vvenc key frames, encoder reconstruction."""
    config = load_section("codec", name)
    config = {
        **config,
        "model": tiny(config["model"]["type"], shared),
        "weights": "random",
        "intra": load_section("picture_codec", "vvenc"),
        "cpu_batch_size": 2,
        "encoder_reconstruction": True,
        **overrides,
    }
    if "decoder_model" in config:
        config |= {
            "decoder_model": tiny(config["decoder_model"]["type"], shared),
            "decoder_weights": "random",
        }
    return config


def decoded_frames(codec, bitstream: Path, sequence: SequenceSpec, folder: Path) -> tuple[np.ndarray, str]:
    """The decoder's frames and the md5 of its output file."""
    result = codec.decode(bitstream, sequence, folder)
    frames = np.asarray(read_rgb444(result.frames_file, sequence.width, sequence.height))
    return frames, result.details["output_md5"]


def test_every_translator_has_its_interop_codec_config() -> None:
    for name in available("translator"):
        translator = load_section("translator", name)
        codec = load_section("codec", name)
        source, target = translator["source"]["model"], translator["target"]["model"]
        assert (codec["bitstream_of"], codec["model"]["type"], codec["decoder_model"]["type"]) == (
            source,
            source,
            target,
        )
        assert codec["translator"] == translator and translators_between(source, target) == [name]
        native = load_section("codec", source)
        assert {k: v for k, v in codec.items() if k in native and k not in ("name", "module", "type")} == {
            k: v for k, v in native.items() if k not in ("name", "module", "type")
        }


@pytest.mark.slow
@pytest.mark.parametrize("coding", ["ae", "sei"])
def test_fomm_bitstream_decoded_by_cfte_through_the_real_translator(
    shared, checkpoints, sequence, tmp_path, coding
) -> None:
    interop = InteropCodec(tiny_codec_config("fomm2cfte", shared, feature_coding=coding))
    assert interop.translator.source == "fomm" and not interop.translator.random_weights
    assert interop.random_weights
    assert "translator fomm->cfte (FOMM2CFTE_checkpoint.pth.tar)" in interop.version()
    native = GfvcCodec(tiny_codec_config("fomm", shared, feature_coding=coding))
    result = interop.encode(sequence, 42, tmp_path / "interop")
    # the bitstream is FOMM's, byte for byte: any FOMM decoder reads it, and the interop decoder reads FOMM's
    native_result = native.encode(sequence, 42, tmp_path / "native")
    assert result.bitstream.read_bytes() == native_result.bitstream.read_bytes()
    assert result.bits == native_result.bits
    decoded, md5 = decoded_frames(interop, native_result.bitstream, sequence, tmp_path / "dec")
    # closed loop: the encoder's reconstruction took the same translated path (the job compares the md5s)
    recon = tmp_path / "interop" / "face00_qp42_recon.rgb"
    assert recon.read_bytes() == (tmp_path / "dec" / "face00_decoded.rgb").read_bytes()
    assert result.details["reconstruction_md5"] == md5
    by_fomm, _ = decoded_frames(native, native_result.bitstream, sequence, tmp_path / "native_dec")
    assert np.array_equal(decoded[0], by_fomm[0])  # one decoded key frame
    assert not np.array_equal(decoded[1:], by_fomm[1:])  # CFTE's generator made the others
    assert decoded[1:].std() > 1


@pytest.mark.slow
def test_a_native_decoder_refuses_another_models_bitstream_naming_the_translator(
    shared, checkpoints, sequence, tmp_path
) -> None:
    fomm = GfvcCodec(tiny_codec_config("fomm", shared))
    path = fomm.encode(sequence, 52, tmp_path / "enc").bitstream
    cfte = GfvcCodec(tiny_codec_config("cfte", shared))
    with pytest.raises(
        BitstreamError,
        match=r"made by model 'fomm', this decoder is 'cfte'.*translator "
        r"fomm2cfte \(codec=fomm2cfte",
    ):
        cfte.decode(path, sequence, tmp_path / "dec")
    # ... and an interop codec refuses a bitstream of a model other than its encoder's
    own = r"made by model 'fomm', this decoder is 'cfte'; decode it with fomm's own decoder \(codec=fomm\)"
    with pytest.raises(BitstreamError, match=own):
        InteropCodec(tiny_codec_config("cfte2fomm", shared)).decode(path, sequence, tmp_path / "dec")


def test_identity_holds_the_translator_and_decoder_weights(shared, checkpoints) -> None:
    config = tiny_codec_config("fv2v2fomm", shared)
    identity = codec_identity(config)
    expected = load_section("translator", "fv2v2fomm")["sha256"]
    assert identity["translator_weights"] == f"FV2V2FOMM_checkpoint.pth.tar sha256 {expected}"
    assert identity["decoder_weights"].startswith("random") and identity["weights"].startswith("random")
    random_translator = codec_identity({**config, "translator_weights": "random"})
    assert random_translator["translator_weights"].startswith("random")


def test_a_translator_that_does_not_fit_the_models_is_refused(shared, checkpoints) -> None:
    config = tiny_codec_config("fomm2cfte", shared, translator=load_section("translator", "cfte2fomm"))
    expected = "translator cfte->fomm has 16 encoder features, the encoder's model 60"
    with pytest.raises(CodecError, match=expected):
        InteropCodec(config)
    with pytest.raises(CodecError, match="bitstream_of None: expected the name of the codec"):
        InteropCodec({**tiny_codec_config("fomm2cfte", shared), "bitstream_of": None})


def test_reports_show_an_interop_codec_under_its_label(tmp_path) -> None:
    run_dir = write_run(tmp_path / "run")  # its cfte results relabelled as an interop codec's would be
    for path in run_dir.glob("cfte/*/*/result.json"):
        result = json.loads(path.read_text(encoding="utf-8"))
        result["codec_provenance"]["label"] = "fomm→cfte"
        path.write_text(json.dumps(result), encoding="utf-8")
    report = write_report(run_dir, echo=False)
    assert report.label("cfte") == "fomm→cfte [RANDOM WEIGHTS]" and report.label("x265") == "x265"
    assert "## fomm→cfte [RANDOM WEIGHTS] vs anchor vvenc" in (run_dir / "report" / "summary.md").read_text()


def test_translation_error_figures() -> None:
    target = torch.tensor([[0.0, 2.0], [2.0, 0.0]])
    assert translation_error(target.clone(), target) == {"rmse": 0.0, "mae": 0.0, "relative_rmse": 0.0}
    always_the_mean = translation_error(torch.ones(2, 2), target)
    assert always_the_mean == {"rmse": 1.0, "mae": 1.0, "relative_rmse": 1.0}


@pytest.mark.slow
def test_quality_command_on_real_frames_says_when_weights_are_random(checkpoints, capsys, tmp_path) -> None:
    out = tmp_path / "quality.json"
    assert interop_quality_main(["fomm2cfte", "--frames", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fomm→cfte: RMSE" in printed
    assert "RANDOM weights: fomm, cfte; this measures the plumbing only" in printed
    (row,) = json.loads(out.read_text())
    assert row["translator_weights"] == "FOMM2CFTE_checkpoint.pth.tar"
    assert row["random_weights"] == ["fomm", "cfte"]
    assert row["frames"] == 2 * len(load_test_set({"name": "faces"})) and row["rmse"] > 0
