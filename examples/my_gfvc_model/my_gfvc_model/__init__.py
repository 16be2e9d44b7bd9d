"""An example GFVC model in a package of its own, run through the gfvc-ctc harness by configuration only."""
