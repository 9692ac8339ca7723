"""Offline training: seed-format conversations -> a LoRA adapter that learns when to stay silent.

Nothing imports this package; the CLI dispatches ``chime train`` and ``chime export`` to it lazily.
"""
