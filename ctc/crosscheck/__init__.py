"""Cross-checking a contribution package: :mod:`ctc.crosscheck.cli` (``ctc-crosscheck``)."""
