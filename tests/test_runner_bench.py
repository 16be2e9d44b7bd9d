"""ctc-bench: the table, its pluggable benches, and the runner's own figures."""

from __future__ import annotations

import pytest

from bench import cli as bench


def test_bench_rows_are_figures_or_mappings_with_a_name_and_a_value():
    assert bench.as_figure({"case": "fomm cpu", "value": 2, "unit": "frames/s"}) == bench.Figure(
        "fomm cpu", 2.0, "frames/s"
    )
    with pytest.raises(ValueError, match="needs 'name'"):
        bench.as_figure({"method": "batched", "seconds": 1.0})


def test_a_bench_whose_module_is_missing_is_skipped_with_a_note(monkeypatch, capsys):
    monkeypatch.setattr(bench, "BENCHES", ["ctc.no_such_bench:bench_x", "bench.cli:bench_io"])
    assert bench.main([]) == 0
    out = capsys.readouterr().out
    assert "skipped: module ctc.no_such_bench does not exist yet" in out
    assert "read + convert" in out and "well under 1 s" in out


@pytest.mark.slow  # 30 sparse sequences, 240 results and a ctc-run process
def test_the_cached_sweep_bench_reruns_240_complete_jobs_without_coding_any():
    (figure,) = bench.bench_cached_sweep()  # raises if a job was coded again or the run failed
    assert figure.note.startswith("240 jobs") and figure.value > 0
