"""Rows and micro-batches: conversations packed without padding waste, right-padded when rows differ."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from training.fit.labels import IGNORE, Encoded


@dataclass
class Row:
    """One row of a batch: one or more sequences laid end to end, each with positions from 0."""

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    decision: list[bool]

    @property
    def labelled(self) -> int:
        """Tokens in the row that carry a loss."""
        return sum(1 for x in self.labels if x != IGNORE)


def _row(seqs: list[Encoded]) -> Row:
    ids: list[int] = []
    labels: list[int] = []
    pos: list[int] = []
    decision: list[bool] = []
    for s in seqs:
        ids += s.input_ids
        # A sequence's first token has nothing of its own before it: in a packed row it
        # would be "predicted" from the previous conversation, so it is never a target.
        labels += [IGNORE, *s.labels[1:]] if s.labels else []
        pos += list(range(len(s.input_ids)))
        decision += s.decision or [False] * len(s.input_ids)
    return Row(ids, labels, pos, decision)


def make_rows(seqs: list[Encoded], max_length: int, packing: bool, seed: int) -> list[Row]:
    """Shuffle sequences with ``seed``; with packing, fill rows of up to max_length tokens first-fit."""
    order = list(range(len(seqs)))
    random.Random(seed).shuffle(order)
    if not packing:
        return [_row([seqs[i]]) for i in order]
    rows: list[list[Encoded]] = []
    room: list[int] = []
    for i in order:
        n = len(seqs[i].input_ids)
        for r, free in enumerate(room):
            if n <= free:
                rows[r].append(seqs[i])
                room[r] -= n
                break
        else:
            rows.append([seqs[i]])
            room.append(max_length - n)
    return [_row(r) for r in rows]


def collate(rows: list[Row], pad_id: int) -> dict[str, torch.Tensor]:
    """Tensors for a micro-batch, right-padded.

    There is no attention mask: the position ids restart at 0 for every sequence and for
    the padding, and transformers then lets each packed sequence attend only to itself.
    """
    width = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    decision = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        n = len(r.input_ids)
        ids[i, :n] = torch.tensor(r.input_ids)
        labels[i, :n] = torch.tensor(r.labels)
        pos[i, :n] = torch.tensor(r.position_ids)
        decision[i, :n] = torch.tensor(r.decision)
        pos[i, n:] = torch.arange(width - n)
    real = torch.tensor(sum(len(r.input_ids) for r in rows))
    return {"input_ids": ids, "labels": labels, "position_ids": pos, "decision": decision, "tokens": real}


def micro_batches(rows: list[Row], batch_size: int) -> list[list[Row]]:
    """Consecutive groups of ``batch_size`` rows."""
    return [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
