"""Conventional codecs: VTM (the CTC anchor), vvenc and x265."""
