"""The results store: atomic result files, configuration hashes, the results table."""

import json

from ctc.hashing import payload_hash
from ctc.results import COLUMNS, is_complete, load_results, read_result
from ctc.store import write_json_atomic


def test_write_json_atomic_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "job" / "result.json"
    path.parent.mkdir()
    write_json_atomic(path, {"status": "failed"})
    write_json_atomic(path, {"status": "ok", "kbps": 1.5})
    assert json.loads(path.read_text()) == {"status": "ok", "kbps": 1.5}
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]


def test_payload_hash_ignores_key_order_but_not_values():
    a = payload_hash({"codec": {"name": "x265", "preset": "slow"}, "rate_point": 37})
    assert a == payload_hash({"rate_point": 37, "codec": {"preset": "slow", "name": "x265"}})
    assert a != payload_hash({"codec": {"name": "x265", "preset": "fast"}, "rate_point": 37})
    assert a != payload_hash({"codec": {"name": "x265", "preset": "slow"}, "rate_point": 42})


def test_is_complete_needs_status_ok_and_the_same_hash():
    assert is_complete({"status": "ok", "config_hash": "abc"}, "abc")
    assert not is_complete({"status": "ok", "config_hash": "abc"}, "abd")
    assert not is_complete({"status": "failed", "config_hash": "abc"}, "abc")
    assert not is_complete(None, "abc")
    psnr_code = {"ctc/metrics/psnr.py": "1a"}
    scored = {
        "status": "ok",
        "config_hash": "abc",
        "metrics": {"psnr": 30.0},
        "metric_code": {"psnr": psnr_code},
    }
    assert is_complete(scored, "abc", {"psnr": psnr_code})
    assert not is_complete(scored, "abc", {"psnr": psnr_code, "lpips": {}})


def test_a_score_made_by_other_metric_code_is_not_complete():
    scored = {
        "status": "ok",
        "config_hash": "abc",
        "metrics": {"psnr": 30.0},
        "metric_code": {"psnr": {"ctc/metrics/psnr.py": "1a"}},
    }
    assert not is_complete(scored, "abc", {"psnr": {"ctc/metrics/psnr.py": "2b"}})
    assert not is_complete({**scored, "metric_code": {}}, "abc", {"psnr": {"ctc/metrics/psnr.py": "1a"}})


def _result(codec, sequence, rate_point, **extra):
    return {
        "status": "ok",
        "codec": codec,
        "role": "test",
        "seq_class": "C",
        "sequence": sequence,
        "rate_point": rate_point,
        "kbps": 10.0 * rate_point,
        "bits": {"total": 800, "parts": {"video": 800}},
        "frames": 3,
        "fps": 25.0,
        "enc_seconds": 0.5,
        "dec_seconds": 0.25,
        "config_hash": "h",
        "metrics": {"psnr": 30.0 + rate_point},
        **extra,
    }


def test_load_results_has_one_row_per_job_and_one_column_per_metric(tmp_path):
    results = [
        _result("b", "S1", 2),
        _result("a", "S2", 1, random_weights=True),
        _result("a", "S1", 3),
        _result("a", "S1", 1, status="failed", metrics={}),
    ]
    for result in results:
        directory = tmp_path / result["codec"] / result["sequence"] / str(result["rate_point"])
        directory.mkdir(parents=True)
        write_json_atomic(directory / "result.json", result)
    (tmp_path / "a" / "S9" / "1").mkdir(parents=True)  # a job that never finished: no row
    (tmp_path / "b" / "S1" / "7").mkdir(parents=True)
    (tmp_path / "b" / "S1" / "7" / "result.json").write_text("{trunc")  # unreadable: no row
    table = load_results(tmp_path)
    assert list(table.columns) == COLUMNS + ["psnr"]
    assert list(zip(table.codec, table.sequence, table.rate_point, strict=True)) == [
        ("a", "S1", 1),
        ("a", "S1", 3),
        ("a", "S2", 1),
        ("b", "S1", 2),
    ]
    assert list(table.bits) == [800] * 4
    assert list(table.random_weights) == [False, False, True, False]
    assert table.psnr.isna().tolist() == [True, False, False, False]
    assert read_result(tmp_path / "b" / "S1" / "7") is None
