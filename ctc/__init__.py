"""gfvc-ctc: the evaluation harness for Generative Face Video Coding under the JVET CTC.

A sequence flows through the stages, one module each:
``sequences`` (test sets) -> ``codec`` (encode, bitstream, decode) -> ``metrics`` -> ``store`` (results)
-> ``bd`` / ``report`` (tables and curves). ``runner`` sweeps jobs over them.
"""

# The release, read by setup.cfg (`version = attr: ctc.__version__`); CHANGELOG.md says what each changed.
__version__ = "0.4.1"
