"""The thread limit of a sweep's worker holds whether or not torch is loaded when it is set."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="a limit of one thread is torch's default on one core"
)


def _threads_seen_by_torch(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_a_limit_set_before_torch_is_imported_does_not_import_it_and_holds_once_it_is() -> None:
    code = (
        "import sys; from ctc.devices import limit_threads; limit_threads(1); "
        "print('torch' in sys.modules); import torch; print(torch.get_num_threads())"
    )
    assert _threads_seen_by_torch(code).split() == ["False", "1"]


def test_a_limit_set_after_torch_is_imported_holds() -> None:
    code = "import torch; from ctc.devices import limit_threads; limit_threads(1); "
    code += "print(torch.get_num_threads())"
    assert _threads_seen_by_torch(code) == "1"
