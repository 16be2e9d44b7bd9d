"""ctc/identity.py: a job's identity, what differs between two, why a job runs again (texts by hand)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctc.identity import (
    _shown_pair,
    changes,
    codec_identity,
    identity_hash,
    job_identity,
    redo_reason,
    scoring_reason,
    sequence_identity,
)
from ctc.testset.sequences import SequenceSpec

IDENTITY = job_identity({"name": "vtm", "qp_offset": 0}, {"name": "seq", "frames": 2}, 37)


def test_job_identity_holds_the_codec_the_sequence_and_an_integer_rate_point() -> None:
    identity = job_identity({"name": "vtm"}, {"name": "seq"}, "37")  # type: ignore[arg-type]
    assert identity == {"codec": {"name": "vtm"}, "sequence": {"name": "seq"}, "rate_point": 37}
    assert type(identity["rate_point"]) is int


def test_changes_name_each_differing_leaf_by_its_path() -> None:
    old = {"codec": {"weights": "random", "qp": 1}, "sequence": {"frames": 2}}
    new = {"codec": {"weights": "fomm.pth", "qp": 1}, "sequence": {"frames": 2}, "rate_point": 3}
    assert changes(old, new) == ["codec.weights: random -> fomm.pth", "rate_point: absent -> 3"]
    assert changes(new, old) == ["codec.weights: fomm.pth -> random", "rate_point: 3 -> absent"]
    assert changes(old, old) == []
    assert changes(1, 2) == ["identity: 1 -> 2"]
    assert changes({2: "x", "a": 1}, {2: "y", "a": 2}) == ["2: x -> y", "a: 1 -> 2"]  # keys sorted as text
    assert changes({"codec": {"a": 1}}, {"codec": "vtm"}) == ['codec: {"a": 1} -> vtm']  # a mapping, then not


def test_changes_in_a_code_fingerprint_are_by_file() -> None:
    old = {"codec": {"code": {"a.py": "1", "b.py": "2", "d.py": "5"}, "input_code": {"x.py": "1"}}}
    new = {"codec": {"code": {"b.py": "3", "c.py": "4", "d.py": "5"}, "input_code": {"x.py": "2"}}}
    assert changes(old, new) == ["a.py removed", "b.py changed", "c.py added", "x.py changed"]
    deeper = changes({"a": {"b": {"code": {"m.py": "1"}}}}, {"a": {"b": {"code": {"m.py": "2"}}}})
    assert deeper == ["m.py changed"]  # a fingerprint by its own key, however deep


def test_redo_reason_says_why_a_job_runs() -> None:
    digest = identity_hash(IDENTITY)
    psnr_code = {"ctc/metrics/psnr.py": "1"}
    assert redo_reason(None, IDENTITY, {}) == "not done yet"
    assert redo_reason({}, IDENTITY, {}) == "not done yet"
    same = {"config_hash": digest, "identity": IDENTITY}
    assert redo_reason({**same, "status": "failed"}, IDENTITY, {}) == "failed before"
    assert redo_reason({**same, "status": "decoded"}, IDENTITY, {}) == "decoded, to score"
    assert redo_reason({**same, "status": "ok"}, IDENTITY, {"psnr": psnr_code}) == "to score psnr"
    assert redo_reason({**same, "status": "ok"}, IDENTITY, {}) == "incomplete"
    assert redo_reason({"config_hash": "old"}, IDENTITY, {}) == "made before results recorded their identity"


def test_redo_reason_lists_two_changes_and_counts_the_rest() -> None:
    def changed(**codec: int) -> dict:
        return job_identity({**IDENTITY["codec"], **codec}, IDENTITY["sequence"], 37)

    two = {"config_hash": "old", "identity": changed(a=1, b=1)}
    assert redo_reason(two, changed(a=2, b=2), {}) == "codec.a: 1 -> 2; codec.b: 1 -> 2"
    three = {"config_hash": "old", "identity": changed(a=1, b=1, c=1)}
    assert redo_reason(three, changed(a=2, b=2, c=2), {}) == "codec.a: 1 -> 2; codec.b: 1 -> 2 (+1 more)"
    four = {"config_hash": "old", "identity": changed(a=1, b=1, c=1, d=1)}
    assert redo_reason(four, changed(a=2, b=2, c=2, d=2), {}) == "codec.a: 1 -> 2; codec.b: 1 -> 2 (+2 more)"


def test_identity_hash_ignores_key_order_but_not_values() -> None:
    reordered = {"rate_point": 37, "sequence": IDENTITY["sequence"], "codec": IDENTITY["codec"]}
    assert identity_hash(reordered) == identity_hash(IDENTITY)
    assert identity_hash({**IDENTITY, "rate_point": 42}) != identity_hash(IDENTITY)


def test_scoring_reason_names_missing_and_changed_metrics() -> None:
    code = {"psnr": {"ctc/metrics/psnr.py": "2"}, "ssim": {"ctc/metrics/ssim.py": "1"}}
    scored = {"metrics": {"psnr": 30.0}, "metric_code": {"psnr": {"ctc/metrics/psnr.py": "1"}}}
    assert scoring_reason(scored, code) == "to score ssim; to score psnr again (ctc/metrics/psnr.py changed)"
    unrecorded = {"metrics": {"psnr": 30.0, "ssim": 0.9}}
    assert scoring_reason(unrecorded, code) == (
        "to score psnr again (scored before results recorded their code); "
        "to score ssim again (scored before results recorded their code)"
    )
    many = {"a.py": "1", "b.py": "1", "c.py": "1"}
    old = {"metrics": {"psnr": 1.0}, "metric_code": {"psnr": many}}
    assert (
        scoring_reason(old, {"psnr": {k: "2" for k in many}})
        == "to score psnr again (a.py changed, b.py changed)"
    )
    done = {"metrics": {"psnr": 30.0}, "metric_code": {"psnr": {"ctc/metrics/psnr.py": "2"}}}
    assert scoring_reason(done, {"psnr": {"ctc/metrics/psnr.py": "2"}}) is None
    assert scoring_reason({"metrics": None, "metric_code": None}, {"psnr": {}}) == "to score psnr"
    assert scoring_reason({}, {"psnr": {}, "ssim": {}}) == "to score psnr, ssim"


@pytest.mark.parametrize(
    ("old", "new", "shown"),
    [
        ("random", None, ("random", "absent")),
        ({"b": 1, "a": 2}, [1], ('{"a": 2, "b": 1}', "[1]")),  # JSON with sorted keys; strings unquoted
        (Path("/a/b"), {"p": Path("c")}, ("/a/b", '{"p": "c"}')),  # what JSON cannot hold: as text
        ("x" * 48, "y" * 48, ("x" * 48, "y" * 48)),  # up to 48 characters: whole
        # 49: cut to 46 around the first difference (at 0: from the start), "…" where cut
        ("x" * 49, "y" * 49, ("x" * 46 + "…", "y" * 46 + "…")),
        # differing at 61 of 62: from 61 - 12 = 49 to the end
        ("v" + "a" * 60 + "X", "v" + "a" * 60 + "Y", ("…" + "a" * 12 + "X", "…" + "a" * 12 + "Y")),
        # differing at 20 of 100: from 8, 46 characters
        (
            "a" * 20 + "b" * 80,
            "a" * 20 + "c" * 80,
            ("…" + "a" * 12 + "b" * 34 + "…", "…" + "a" * 12 + "c" * 34 + "…"),
        ),
        # one a prefix of the other: they differ where the shorter ends (50)
        ("p" * 50, "p" * 50 + "q", ("…" + "p" * 12, "…" + "p" * 12 + "q")),
    ],
)
def test_shown_pair_cuts_long_values_around_their_first_difference(old, new, shown) -> None:
    assert _shown_pair(old, new) == shown


def test_codec_identity_leaves_out_what_never_changes_a_bitstream() -> None:
    """Of a plug-in codec's config, timeout_s, slurm and rate_points stay out; its version and code are in."""
    section = {
        "name": "f",
        "module": "fake_codec",
        "type": "fake",
        "q": 3,
        "timeout_s": 5,
        "slurm": {"time": 1},
        "rate_points": [1],
    }
    identity = codec_identity(section)
    assert identity["config"] == {"name": "f", "module": "fake_codec", "type": "fake", "q": 3}
    assert identity["version"] == "fake 1.0" and "fake_codec.py" in identity["code"]


def test_sequence_identity_is_its_entry_with_the_files_md5(tmp_path: Path) -> None:
    """The declared md5, else the file's own: md5 of b"abc" is 900150983cd24fb0d6963f7d28e17f72."""
    (tmp_path / "s.rgb").write_bytes(b"abc")
    spec = SequenceSpec("s", "A", "s.rgb", 1, 1, 1, 25.0, root=tmp_path)
    assert sequence_identity(spec) == {**spec.entry(), "file_md5": "900150983cd24fb0d6963f7d28e17f72"}
    declared = SequenceSpec("s", "A", "s.rgb", 1, 1, 1, 25.0, md5="declared", root=tmp_path)
    assert sequence_identity(declared)["file_md5"] == "declared"
