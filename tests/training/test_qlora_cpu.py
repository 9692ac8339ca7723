"""QLoRA on the CPU: the base really is bitsandbytes 4-bit NF4 and only the LoRA trains.

That such a run lowers the loss is checked by the smoke test's qlora-4bit case.
"""

from __future__ import annotations

from pathlib import Path

from tests.training.test_train_smoke import QLORA, _config
from training.fit.models import check_4bit
from training.fit.prepare import prepare


def test_the_base_is_really_4bit_and_only_lora_trains(tmp_path: Path) -> None:
    import bitsandbytes as bnb

    check_4bit("cpu")  # a clear error here would say bitsandbytes lost CPU support
    prep = prepare(_config(tmp_path / "run", QLORA, max_steps=1))
    # peft's LoRA wrapper is also called Linear4bit; the frozen base layers are bnb's own.
    linear4 = [m for m in prep.model.modules() if type(m) is bnb.nn.Linear4bit]
    assert len(linear4) == 2 * 7  # 2 layers x q, k, v, o, gate, up, down
    assert all(m.weight.quant_state.quant_type == "nf4" for m in linear4)
    trainable = {n for n, p in prep.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
