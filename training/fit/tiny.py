"""A tiny random llama-architecture model with a tokenizer trained on the data, for tests and smoke runs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from training.fit.config import TinyModel

# ChatML without a default system prompt; the markers are special tokens.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer (like SmolLM2's) trained on ``texts``, with the ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<|endoftext|>", bos_token="<|im_start|>", eos_token="<|im_end|>"
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny(sizes: TinyModel, texts: Iterable[str], seed: int) -> tuple[Any, Any]:
    """A random LlamaForCausalLM (seeded) and its tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = train_tokenizer(texts, sizes.vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=sizes.hidden_size,
        intermediate_size=sizes.intermediate_size,
        num_hidden_layers=sizes.layers,
        num_attention_heads=sizes.heads,
        num_key_value_heads=sizes.kv_heads,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.unk_token_id,
        tie_word_embeddings=True,
        # With the default 0.02 the tied embeddings are too small for confident logits,
        # and a LoRA over them can barely move the loss.
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config), tokenizer


def save_tiny(model: Any, tokenizer: Any, directory: Path) -> None:
    """Keep the random base beside the adapter so that resume and export find the same weights."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def seed_texts(conversations: Iterable[list[dict[str, str]]]) -> Iterable[str]:
    """Text to train the tiny tokenizer on: every message with the protocol's markers."""
    for conv in conversations:
        for m in conv:
            if m["role"] == "user":
                yield f"{m['name']}: {m['content']}"
            else:
                yield f"(response) {m['content']}"
        yield "(silence)"
