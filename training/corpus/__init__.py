"""Corpus tools: check and grow seed-format conversation files (``chime data``)."""
