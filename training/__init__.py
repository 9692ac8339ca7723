"""Offline training: seed-format conversations -> a LoRA adapter that learns when to stay silent.

Nothing in the bot imports this package; the CLI dispatches ``chime train``, ``chime export``,
``chime eval`` and ``chime data`` to its subpackages (fit, export, eval, corpus) lazily.
"""
