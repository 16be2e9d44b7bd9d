"""Hydra configuration of ctc-run (a package so that Hydra finds it when installed)."""
