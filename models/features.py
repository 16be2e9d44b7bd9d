"""Coding one GOP's features: ``ae`` (the common software's entropy coder, bit-exact:
:mod:`models.entropy`) or ``sei`` (the GFV SEI message: :mod:`models.sei_layout`).

Every inter frame's features are coded as the residual against the previous *reconstructed*
features, starting from the features of the *decoded* key frame (closed loop, so the encoder and
decoder never drift). A key frame starts the prediction afresh.
"""

from __future__ import annotations

import numpy as np

from models import entropy
from models import sei_layout as sei
from models.bitstream import BitstreamError
from models.sei_nal import SeiError

FEATURE_CODINGS = ("ae", "sei")


def ae_reconstruct(previous: np.ndarray, quantised: list[int], q_step: float) -> np.ndarray:
    """``previous + q / q_step``: the one reconstruction formula the encoder and decoder share."""
    return previous + np.asarray(quantised, np.float64) / q_step


def code_ae(reference: np.ndarray, driving: np.ndarray, q_step: float) -> tuple[list[bytes], np.ndarray]:
    """``ae`` mode: payloads (the key frame's empty) and the closed-loop reconstruction of ``driving``."""
    payloads, recon = [b""], []
    previous = reference
    for current in driving:
        quantised = entropy.quantise(current - previous, q_step)
        payloads.append(entropy.encode_values(quantised))
        previous = ae_reconstruct(previous, quantised, q_step)
        recon.append(previous)
    return payloads, np.asarray(recon, np.float64).reshape(len(driving), reference.size)


def code_sei(
    reference: np.ndarray, driving: np.ndarray, layout: sei.SeiLayout
) -> tuple[list[bytes], np.ndarray]:
    """``sei`` mode: a GFV SEI NAL unit per frame (the key frame's: the base picture), the reconstruction."""
    writer = sei.GfvSeiWriter(layout)
    payloads, recon = [writer.write(reference, 0)[0]], []
    for index, current in enumerate(driving, start=1):
        payload, rec = writer.write(current, index)
        payloads.append(payload)
        recon.append(rec)
    return payloads, np.asarray(recon, np.float64).reshape(len(driving), reference.size)


def decode(
    payloads: list[bytes],
    reference: np.ndarray,
    mode: str,
    q_step: float,
    layout: sei.SeiLayout | None,
    source: str,
    start: int = 0,
) -> np.ndarray:
    """The inter frames' reconstructed features ``(n-1, D)`` float64 of a GOP whose payloads (key
    frame first, at frame ``start``) are ``payloads``; ``reference``: the decoded key frame's features."""
    size = reference.size
    recon: list[np.ndarray] = []
    try:
        if mode == "ae":
            if payloads[0]:
                raise BitstreamError(f"{source}: key frame {start} carries a feature payload in ae mode")
            previous = reference
            for payload in payloads[1:]:
                previous = ae_reconstruct(previous, entropy.decode_values(payload, size), q_step)
                recon.append(previous)
        else:
            parser = sei.GfvSeiParser(layout, size)
            parser.read(payloads[0], 0)
            for index, payload in enumerate(payloads[1:], 1):  # one by one: an error names its frame
                recon.append(parser.read(payload, index))
    except (entropy.EntropyError, SeiError) as exc:
        raise BitstreamError(f"{source}: frame {start + len(recon) + 1}: {exc}") from exc
    return np.asarray(recon, np.float64).reshape(len(payloads) - 1, size)
