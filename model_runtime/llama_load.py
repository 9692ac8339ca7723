"""The one way the project loads a llama.cpp model: no extra buffer types, native logs into ``logging``.

Why no extra buffer types: llama.cpp repacks quantised weights into "extra" CPU buffer
types when the CPU has the instructions for them (AMX on Intel Sapphire Rapids and
later, the interleaved AVX2/AVX-512 layouts elsewhere). Decoding from the AMX buffer
segfaults with the bundled Q4_1 model, in chime's runtime and in plain llama-cpp-python
alike. ``Llama()`` takes no argument for ``llama_model_params.use_extra_bufts``, so the
defaults it starts from are replaced once per process (see ``safe_model_defaults``);
every load in the project calls ``load_llama`` or starts the server through
``model_runtime.llama_server``, and a test fails if one does not.

Why the log callback: llama.cpp prints to stderr by default, which lands in the middle
of the console chat. Its lines go to the ``chime.llama_cpp`` logger instead: warnings
and errors at their level, everything else at debug.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

import llama_cpp
import llama_cpp.llama_cpp as llama_capi

log = logging.getLogger("chime.llama_cpp")

# ggml.h's ggml_log_level: 0 none, 1 debug, 2 info, 3 warn, 4 error, 5 continuation of the
# previous line. (llama-cpp-python's own table predates this order, which is why its
# "warnings" reached the terminal.)
_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
_CONTINUATION = 5

_install_lock = threading.Lock()
_installed = False
_original_defaults = llama_capi.llama_model_default_params


def safe_model_defaults() -> llama_capi.llama_model_params:
    """llama.cpp's default model parameters with extra buffer types (AMX, repacking) turned off."""
    params = _original_defaults()
    params.use_extra_bufts = False
    return params


class _LineLogger:
    """Joins llama.cpp's log fragments into lines and hands each line to ``logging``."""

    def __init__(self) -> None:
        self._buffer = ""
        self._level = logging.DEBUG
        self._lock = threading.Lock()

    def __call__(self, level: int, text: bytes | None, _user_data: ctypes.c_void_p) -> None:
        chunk = (text or b"").decode("utf-8", errors="replace")
        with self._lock:
            if level != _CONTINUATION:
                self._level = _LEVELS.get(level, logging.DEBUG)
            self._buffer += chunk
            *lines, self._buffer = self._buffer.split("\n")
            level_now = self._level
        for line in lines:
            if line.strip():
                log.log(level_now, "%s", line.rstrip())


_line_logger = _LineLogger()
# Kept at module level: llama.cpp holds a raw pointer to it for the life of the process.
_callback = llama_capi.llama_log_callback(_line_logger)


def install() -> None:
    """Once per process: safe default model parameters and llama.cpp's log routed into ``logging``."""
    global _installed
    with _install_lock:
        if _installed:
            return
        # Llama() reads its defaults through this module attribute, so replacing it reaches every load.
        llama_capi.llama_model_default_params = safe_model_defaults
        llama_capi.llama_log_set(_callback, ctypes.c_void_p(0))
        _installed = True


def load_llama(model_path: str, *, extra_buffer_types: bool = False, **kwargs: Any) -> llama_cpp.Llama:
    """``llama_cpp.Llama(model_path, **kwargs)`` without extra buffer types and with logs routed.

    ``extra_buffer_types=True`` is for the benchmark that measures what turning them off
    costs; it crashes on CPUs with AMX.
    """
    install()
    kwargs.setdefault("verbose", False)
    with _install_lock:  # the defaults are process-wide: one load at a time while they are swapped
        if extra_buffer_types:
            llama_capi.llama_model_default_params = _original_defaults
        try:
            return llama_cpp.Llama(model_path=model_path, **kwargs)
        finally:
            llama_capi.llama_model_default_params = safe_model_defaults
