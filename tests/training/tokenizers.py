"""Llama-style tokenizers built locally (no model hub): a BPE over sentencepiece's "▁" spaces with byte
fallback, trained on chat text, with each model family's chat template written out here.

Only ``<s>``, ``</s>``, ``<unk>`` (and OpenChat's ``<|end_of_turn|>``) are special, as in the
real models: ``[INST]`` or ``<|assistant|>`` are plain text whose tokens depend on context.
"""

from __future__ import annotations

from typing import Any

LLAMA2_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + message['content'] | trim + ' [/INST]' }}"
    "{% else %}{{ ' ' + message['content'] | trim + ' ' + eos_token }}{% endif %}{% endfor %}"
)
ZEPHYR_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
OPENCHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ 'GPT4 Correct ' + message['role'] | title + ': ' + message['content'] + '<|end_of_turn|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'GPT4 Correct Assistant:' }}{% endif %}"
)

CORPUS = [
    "Ana: who wrote Dune? I keep forgetting the name of the author",
    "Frank Herbert wrote Dune, and his son continued the series later on.",
    "Bob: lunch at noon? the noodle place is open again after the works",
    "Chen: what is 15% of 80? I need it for the tip, quick please",
    "Dara: the train was late again, so annoying, third time this week",
    "response silence assistant user correct instruction [INST] [/INST] <|user|> <|assistant|>",
    "GPT4 Correct User: GPT4 Correct Assistant: (silence) (response)",
]


def _sp_bpe(specials: list[str], template: str) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    # Pieces never cross a space and stay short, like those of a tokenizer trained on a large corpus.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    tok.decoder = decoders.Sequence([decoders.Metaspace(), decoders.ByteFallback(), decoders.Fuse()])
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=700, special_tokens=specials + byte_tokens, max_token_length=6, show_progress=False
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    extra = [s for s in specials if s not in ("<unk>", "<s>", "</s>")]
    if extra:
        fast.add_special_tokens({"additional_special_tokens": extra})
    fast.chat_template = template
    return fast


def llama2_tokenizer() -> Any:
    """Llama-2-chat's ``[INST]`` format."""
    return _sp_bpe(["<unk>", "<s>", "</s>"], LLAMA2_TEMPLATE)


def zephyr_tokenizer() -> Any:
    """Zephyr's ``<|user|>`` / ``<|assistant|>`` format (markers are plain text)."""
    return _sp_bpe(["<unk>", "<s>", "</s>"], ZEPHYR_TEMPLATE)


def openchat_tokenizer() -> Any:
    """OpenChat-3.5's ``GPT4 Correct User:`` format with its special end-of-turn token."""
    return _sp_bpe(["<unk>", "<s>", "</s>", "<|end_of_turn|>"], OPENCHAT_TEMPLATE)
