"""Completion-only labels per chat template: exactly the assistant turns and their end-of-turn token."""

from __future__ import annotations

import pytest

from model_runtime.protocol import SILENCE
from training.fit.dataset import conversation_messages
from training.fit.labels import IGNORE, TemplateError, encode_conversation, render

CONVERSATION = [
    {"role": "user", "name": "Ann", "content": "anyone seen my keys"},
    {"role": "user", "name": "Bob", "content": "who wrote Dune? forgot the name"},
    {"role": "assistant", "content": "Frank Herbert wrote Dune."},
    {"role": "user", "name": "Ann", "content": "thanks! also lunch?"},
]
EOT = {"chatml": "<|im_end|>", "llama2": "</s>", "zephyr": "</s>", "openchat": "<|end_of_turn|>"}


def _tokenizer(name, smollm2_tokenizer, sp_tokenizers):
    return smollm2_tokenizer if name == "chatml" else sp_tokenizers[name]


def _labelled_runs(enc) -> list[list[int]]:
    runs, current = [], []
    for tid, lab in zip(enc.input_ids, enc.labels, strict=True):
        if lab != IGNORE:
            assert lab == tid
            current.append(tid)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


@pytest.mark.parametrize("template", ["chatml", "llama2", "zephyr", "openchat"])
def test_labels_cover_exactly_the_assistant_turns(template, smollm2_tokenizer, sp_tokenizers) -> None:
    tok = _tokenizer(template, smollm2_tokenizer, sp_tokenizers)
    msgs = conversation_messages(CONVERSATION)
    enc = encode_conversation(tok, msgs)
    runs = _labelled_runs(enc)
    expected = [m["content"] for m in msgs if m["role"] == "assistant"]
    assert len(runs) == len(expected) == 3 and enc.merged_boundaries == 0
    for run, content in zip(runs, expected, strict=True):
        text = tok.decode(run)
        assert tok.convert_ids_to_tokens(run[-1]) == EOT[template]
        # Only spaces may surround the content (Llama-2 writes " content </s>").
        assert text.removesuffix(EOT[template]).strip() == content


@pytest.mark.parametrize("template", ["chatml", "llama2", "zephyr", "openchat"])
def test_training_tokens_start_with_the_decision_prompt(template, smollm2_tokenizer, sp_tokenizers) -> None:
    """Before each assistant turn, the training tokens are the prompt the runtime evaluates."""
    tok = _tokenizer(template, smollm2_tokenizer, sp_tokenizers)
    msgs = conversation_messages(CONVERSATION)
    enc = encode_conversation(tok, msgs)
    starts = [i for i in range(len(enc.labels)) if enc.labels[i] != IGNORE and (i == 0 or enc.labels[i - 1] == IGNORE)]
    for start, k in zip(starts, [i for i, m in enumerate(msgs) if m["role"] == "assistant"], strict=True):
        prompt = render(tok, msgs[:k], generation_prompt=True)
        assert enc.input_ids[:start] == tok(prompt, add_special_tokens=False)["input_ids"]


def test_zephyr_marker_tokenises_differently_in_context(sp_tokenizers) -> None:
    """The seed article's pitfall is present in this tokenizer, so the tests above mean something."""
    tok = sp_tokenizers["zephyr"]
    alone = tok("<|assistant|>\n", add_special_tokens=False)["input_ids"]
    enc = encode_conversation(tok, conversation_messages(CONVERSATION))
    found = any(enc.input_ids[i : i + len(alone)] == alone for i in range(len(enc.input_ids)))
    assert not found


def test_full_conversation_switch_labels_everything(smollm2_tokenizer) -> None:
    enc = encode_conversation(smollm2_tokenizer, conversation_messages(CONVERSATION), completion_only=False)
    assert enc.labels == enc.input_ids


def test_silence_is_inserted_after_unanswered_turns() -> None:
    msgs = conversation_messages(CONVERSATION)
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 3
    assert msgs[1]["content"] == SILENCE and msgs[-1]["content"] == SILENCE
    assert msgs[2]["content"] == "Bob: who wrote Dune? forgot the name"
    assert msgs[3]["content"] == "(response) Frank Herbert wrote Dune."


def test_names_are_sanitised_like_the_bot_does() -> None:
    msgs = conversation_messages([{"role": "user", "name": "Eve: (response)\nassistant", "content": "hi"}])
    name = msgs[0]["content"].split(": ", 1)[0]
    assert "\n" not in name and "(" not in name and ":" not in name


def test_template_that_rewrites_history_is_refused(sp_tokenizers) -> None:
    tok = sp_tokenizers["zephyr"]
    original = tok.chat_template
    # Drops earlier assistant turns once the conversation goes on (as reasoning templates do).
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'user' or loop.last %}{{ m['role'] + ': ' + m['content'] + '\\n' }}"
        "{% endif %}{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
    )
    try:
        with pytest.raises(TemplateError, match="prefix"):
            encode_conversation(tok, conversation_messages(CONVERSATION))
    finally:
        tok.chat_template = original


def test_a_packed_sequence_never_predicts_its_first_token_from_the_previous_one() -> None:
    from training.fit.batching import make_rows
    from training.fit.labels import IGNORE, Encoded

    # Full-conversation training labels every token, the first one included.
    seqs = [Encoded([1, 2, 3], [1, 2, 3], 0), Encoded([4, 5], [4, 5], 0), Encoded([6, 7, 8], [6, 7, 8], 0)]
    [row] = make_rows(seqs, max_length=16, packing=True, seed=0)
    starts = [i for i, p in enumerate(row.position_ids) if p == 0]
    assert len(starts) == 3
    assert all(row.labels[i] == IGNORE for i in starts)
    assert sorted(x for x in row.labels if x != IGNORE) == [2, 3, 5, 7, 8]


@pytest.mark.parametrize("template", ["chatml", "llama2", "zephyr", "openchat"])
def test_decision_tokens_are_the_marker_of_each_assistant_turn(template, smollm2_tokenizer, sp_tokenizers) -> None:
    """The tokens marked as the decision spell each turn's "(response" / "(silence" and nothing after it."""
    tok = _tokenizer(template, smollm2_tokenizer, sp_tokenizers)
    msgs = conversation_messages(CONVERSATION)
    enc = encode_conversation(tok, msgs)
    assert len(enc.decision) == len(enc.input_ids)
    runs, current = [], []
    for tid, marked, lab in zip(enc.input_ids, enc.decision, enc.labels, strict=True):
        if marked:
            assert lab == tid  # a decision token always carries a loss
            current.append(tid)
        elif current:
            runs.append(current)
            current = []
    assert len(runs) == 3
    decoded = [tok.decode(r).strip() for r in runs]
    assert decoded == ["(silence", "(response", "(silence"] or all(
        d.startswith(("(silence", "(response")) and len(d) <= len("(response)") + 1 for d in decoded
    )
