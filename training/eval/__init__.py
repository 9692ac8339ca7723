"""Evaluation: replay conversations and real traffic, and measure when the runtime speaks (``chime eval``)."""
