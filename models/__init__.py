"""GFVC codecs: the generative models (FOMM, CFTE, FV2V) and the pipeline that codes with them."""
