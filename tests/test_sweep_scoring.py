"""Scoring sequence by sequence in a sweep: interrupted and resumed, it gives the per-frame values of
scoring a job at a time (scoring=job) with the real DISTS and LPIPS; a version that cannot be scored
fails its own job only, and its bitstream is reused next time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_runner import run_dir_of, tiny  # noqa: F401 (the fixture)

from ctc.results import read_result
from ctc.runner import main

pytestmark = pytest.mark.slow  # real DISTS and LPIPS on 12 jobs


def per_frame(run_dir) -> dict[str, pd.DataFrame]:
    return {
        str(path.parent.relative_to(run_dir)): pd.read_csv(path, index_col=0)
        for path in sorted(run_dir.glob("*/*/*/per_frame.csv"))
    }


def test_interrupted_sequence_scoring_resumes_to_the_values_of_scoring_a_job_at_a_time(
    tiny,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    overrides = [*tiny, "launcher=basic", "metrics=ctc"]
    one_at_a_time = [*overrides[:-3], f"results_dir={tmp_path / 'reference'}", *overrides[-2:], "scoring=job"]
    main(one_at_a_time)

    import ctc.metrics

    real = ctc.metrics.score_versions

    def interrupted(reference, versions, *args, labels=(), **kwargs):
        if any("SEQ_B" in label for label in labels):
            raise KeyboardInterrupt  # Ctrl-C while SEQ_B is scored
        return real(reference, versions, *args, labels=labels, **kwargs)

    monkeypatch.setattr(ctc.metrics, "score_versions", interrupted)
    with pytest.raises(SystemExit, match="130"):
        main(overrides)
    run_dir = run_dir_of(tiny)
    assert {read_result(path)["status"] for path in run_dir.glob("fake*/SEQ_B/*")} == {"decoded"}
    assert not list(run_dir.glob("*/SEQ_C/*/result.json"))
    monkeypatch.setattr(ctc.metrics, "score_versions", real)
    main(overrides)

    expected, found = per_frame(run_dir_of(one_at_a_time)), per_frame(run_dir)
    assert sorted(found) == sorted(expected) and len(found) == 12
    largest = max(float(np.abs(found[key].to_numpy() - expected[key].to_numpy()).max()) for key in found)
    assert largest <= 1e-6
    assert not list(run_dir.glob("*/*/*/*decoded.rgb"))  # removed once scored (keep_decoded=false)
    assert not (run_dir / ".scoring").exists()  # no folder of the scoring tasks is left in the run


def test_a_version_that_cannot_be_scored_fails_alone_and_is_only_scored_next_time(
    tiny,  # noqa: F811
    monkeypatch,
    capsys,
):
    overrides = [*tiny, "launcher=basic", "anchor=none"]
    run_dir = run_dir_of(tiny)

    import ctc.metrics
    from ctc.metrics import MetricError

    real = ctc.metrics.score_versions

    def one_bad(reference, versions, *args, labels=(), **kwargs):
        tables = real(reference, versions, *args, labels=labels, **kwargs)
        return [
            MetricError("broken") if label == "fake/SEQ_A/3" else table
            for label, table in zip(labels, tables, strict=True)
        ]

    monkeypatch.setattr(ctc.metrics, "score_versions", one_bad)
    with pytest.raises(SystemExit):
        main(overrides)
    assert "1 of 6 jobs failed" in capsys.readouterr().err
    failed = read_result(run_dir / "fake/SEQ_A/3")
    assert failed["status"] == "failed" and failed["error"] == "broken" and failed["bits"]
    coded = (run_dir / "fake/SEQ_A/3/stream.bin").stat().st_mtime_ns
    monkeypatch.setattr(ctc.metrics, "score_versions", real)
    main(overrides)  # its decoded file is whole: scored, neither coded nor decoded again
    assert read_result(run_dir / "fake/SEQ_A/3")["status"] == "ok"
    assert "fake: failed before, 1 job to run" in capsys.readouterr().err
    assert read_result(run_dir / "fake/SEQ_A/3")["dec_seconds"] == failed["dec_seconds"]
    assert (run_dir / "fake/SEQ_A/3/stream.bin").stat().st_mtime_ns == coded
