"""``python -m model_runtime.llama_server ARGS``: llama-cpp-python's server, loaded the safe way.

Takes exactly the arguments of ``python -m llama_cpp.server``; the only difference is
that models load without llama.cpp's extra buffer types (see ``model_runtime.llama_load``),
so the server does not crash on CPUs with AMX.
"""

from __future__ import annotations

import logging
import sys

from model_runtime import llama_load


def main() -> None:
    """Start llama-cpp-python's server with safe model defaults; llama.cpp's log goes to stderr via logging."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    llama_load.install()
    from llama_cpp.server.__main__ import main as server_main

    server_main()


if __name__ == "__main__":
    main()
