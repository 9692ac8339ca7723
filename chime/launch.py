"""The ``chime`` command's entry point: Ctrl-C while the program is still loading ends it quietly."""

from __future__ import annotations

# Exit status of a program stopped by SIGINT (128 + 2), as the CLI returns once loaded.
INTERRUPTED = 130


def main() -> int:
    """Import the CLI and run it; an interrupt during the imports exits 130 without a traceback."""
    try:
        from chime.cli import main as cli_main
    except KeyboardInterrupt:
        return INTERRUPTED
    try:
        return cli_main()
    except KeyboardInterrupt:  # between the CLI's own handler and the interpreter's exit
        return INTERRUPTED
