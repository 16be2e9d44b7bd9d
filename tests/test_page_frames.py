"""The report page of a sweep shows the versions the sweep decoded without decoding them again
(ctc.sweep.page_frames); the page of an older run decodes again what it must, and says so."""

from __future__ import annotations

import pytest
from test_html_report import RUN_OVERRIDES

from ctc.report.cli import main as report_main
from ctc.report.redecode import DECODED_SUFFIX, RunFrames
from ctc.runner import main as run

# x265 against the vvenc anchor, four rate points each, one demo sequence of four frames, in this process
SWEEP = ["codec=x265", *RUN_OVERRIDES]


@pytest.fixture
def decoder_calls(monkeypatch):
    """Every decode of a job's bitstream by the report page (ctc.report.redecode), as (codec, job folder)."""
    calls = []
    decode = RunFrames._decode

    def counted(self, codec_name, directory, result, spec):
        calls.append((codec_name, directory.name))
        return decode(self, codec_name, directory, result, spec)

    monkeypatch.setattr(RunFrames, "_decode", counted)
    return calls


@pytest.mark.slow
def test_the_page_decodes_none_of_its_sweeps_versions_and_an_older_runs_again(
    tmp_path, decoder_calls, capsys
):
    run([*SWEEP, f"results_dir={tmp_path}"])
    run_dir = tmp_path / "page"
    page = (run_dir / "report" / "index.html").read_text()
    assert decoder_calls == []  # no decoder ran for the page
    assert "kept decoded file" in page and ".mp4" in page
    assert not list(run_dir.rglob(f"*{DECODED_SUFFIX}"))  # the files kept for the page are gone after it
    capsys.readouterr()

    assert report_main([str(run_dir), "--no-plots"]) == 0  # an older run: nothing decoded is left
    err = capsys.readouterr().err
    assert decoder_calls and {codec for codec, _ in decoder_calls} == {"x265", "vvenc"}
    assert "ctc-report: decoded again from the bitstream (no decoded file was kept)" in err
    assert "DEMO_001: x265 QP" in err
    assert "bitstream decoded again" in (run_dir / "report" / "index.html").read_text()
