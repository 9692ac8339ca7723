"""Bad input reports file:line; long conversations are split at turn boundaries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_runtime.seed_format import SeedFormatError
from training.fit.dataset import conversation_messages, load_sequences, split_to_fit
from training.fit.labels import IGNORE, encode_conversation

GOOD = [{"role": "user", "name": "Ann", "content": "hi"}, {"role": "assistant", "content": "hello"}]
BAD_LINES = {
    "bad JSON": '[{"role": "user",',
    "unknown role": json.dumps([{"role": "system", "content": "x"}]),
    "starts with an assistant": json.dumps([{"role": "assistant", "content": "x"}]),
    "two assistant messages": json.dumps(GOOD + [{"role": "assistant", "content": "again"}]),
    "without a name": json.dumps([{"role": "user", "content": "x"}]),
    "empty or missing content": json.dumps([{"role": "user", "name": "Ann", "content": " "}]),
}


def _file(tmp_path: Path, lines: list[str]) -> Path:
    p = tmp_path / "data.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


@pytest.mark.parametrize("reason", list(BAD_LINES))
def test_bad_line_names_file_line_and_reason(reason: str, tmp_path: Path, smollm2_tokenizer) -> None:
    p = _file(tmp_path, [json.dumps(GOOD), BAD_LINES[reason]])
    with pytest.raises(SeedFormatError) as e:
        load_sequences(p, smollm2_tokenizer, max_length=512)
    assert str(e.value).startswith(f"{p}:2: ") and reason in str(e.value)


def test_skip_bad_counts_and_keeps_the_rest(tmp_path: Path, smollm2_tokenizer) -> None:
    p = _file(tmp_path, [json.dumps(GOOD), *BAD_LINES.values(), json.dumps(GOOD)])
    seqs, stats = load_sequences(p, smollm2_tokenizer, max_length=512, skip_bad=True)
    assert len(seqs) == 2 and stats.conversations == 2 and len(stats.skipped_lines) == len(BAD_LINES)
    assert "bad lines skipped" in stats.summary()


def test_a_line_that_is_not_utf8_is_named_and_can_be_skipped(tmp_path: Path, smollm2_tokenizer) -> None:
    p = tmp_path / "latin1.jsonl"
    latin1 = json.dumps([{"role": "user", "name": "Zoë", "content": "café"}], ensure_ascii=False).encode("latin-1")
    p.write_bytes(json.dumps(GOOD).encode() + b"\n" + latin1 + b"\n" + json.dumps(GOOD).encode() + b"\n")
    with pytest.raises(SeedFormatError) as e:
        load_sequences(p, smollm2_tokenizer, max_length=512)
    assert str(e.value).startswith(f"{p}:2: not UTF-8 text")
    seqs, stats = load_sequences(p, smollm2_tokenizer, max_length=512, skip_bad=True)
    assert len(seqs) == 2 and len(stats.skipped_lines) == 1


def _long_conversation(n: int) -> list[dict[str, str]]:
    conv = []
    for i in range(n):
        conv.append({"role": "user", "name": f"P{i % 3}", "content": f"message number {i} about the weekend plans"})
        if i % 4 == 3:
            conv.append({"role": "assistant", "content": f"answer {i}: the museum opens at nine on Saturdays"})
    return conv


def test_long_conversation_is_split_at_turn_boundaries(smollm2_tokenizer) -> None:
    msgs = conversation_messages(_long_conversation(24))

    def encode(m):
        return encode_conversation(smollm2_tokenizer, m)

    whole = encode(msgs)
    pieces, dropped = split_to_fit(msgs, encode, max_length=200)
    assert dropped == 0 and len(pieces) > 2 and all(len(p.input_ids) <= 200 for p in pieces)

    # Every assistant turn is trained on exactly once and whole: the labelled token
    # texts of the pieces add up to those of the unsplit conversation.
    def labelled(e):
        return smollm2_tokenizer.decode([t for t, lab in zip(e.input_ids, e.labels, strict=True) if lab != IGNORE])

    assert "".join(labelled(p) for p in pieces) == labelled(whole)
    assert sum(p.assistant_turns for p in pieces) == whole.assistant_turns


def test_exchange_longer_than_max_length_is_dropped_not_cut(smollm2_tokenizer) -> None:
    conv = _long_conversation(4) + [{"role": "user", "name": "Ann", "content": "word " * 400}]
    msgs = conversation_messages(conv)
    pieces, dropped = split_to_fit(msgs, lambda m: encode_conversation(smollm2_tokenizer, m), max_length=200)
    assert dropped == 1 and pieces and all(len(p.input_ids) <= 200 for p in pieces)
