"""TransformersRuntime on the CPU: a tiny random Llama built here, and the bundled SmolLM2 read from its GGUF."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from model_runtime import LlamaCppOptions, RuntimeError_, TransformersOptions, Turn, create_runtime  # noqa: E402
from model_runtime.gguf_meta import read_metadata  # noqa: E402
from model_runtime.protocol import SILENT_PREFIX, SPEAK_PREFIX, p_speak_from_logprobs, to_chat_messages  # noqa: E402
from model_runtime.template import ChatTemplate  # noqa: E402

from .conftest import THREADS, long_conversation, sample_windows  # noqa: E402

# llama.cpp runs SmolLM2's Q4_1 weights with 8-bit-quantised activations (Q8_1 blocks) and
# an f16 KV cache; transformers dequantises the same Q4_1 weights to fp32 and computes in
# fp32. The weights are identical, the arithmetic is not. Measured on the twelve sample
# windows: the largest gap in log-odds was 0.32 (0.056 in p_speak, on window 2 and 3) and
# the median 0.12. Twice the largest gap:
LOG_ODDS_TOLERANCE = 0.65


def log_odds(p: float) -> float:
    return math.log(p / (1 - p))


@pytest.fixture(scope="session")
def gguf_tokenizer(bundled_path: Path):
    """The tokenizer transformers builds from the bundled GGUF."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transformers.AutoTokenizer.from_pretrained(str(bundled_path.parent), gguf_file=bundled_path.name)


def _tiny_llama(hidden: int, seed: int, vocab_size: int):
    config = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM(config)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory, gguf_tokenizer) -> Path:
    """A random 2-layer Llama (config built here) saved with SmolLM2's tokenizer and chat template."""
    path = tmp_path_factory.mktemp("tiny-llama")
    _tiny_llama(64, 0, len(gguf_tokenizer)).save_pretrained(path)
    gguf_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny(tiny_dir: Path):
    rt = create_runtime(TransformersOptions(model=str(tiny_dir), max_tokens=8))
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def smollm2_tf(bundled_path: Path):
    torch.set_num_threads(THREADS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rt = create_runtime(
            TransformersOptions(model=str(bundled_path.parent), gguf_file=bundled_path.name, max_tokens=24)
        )
    yield rt
    rt.close()


def test_template_renders_like_transformers(bundled_path: Path, gguf_tokenizer) -> None:
    """Our Jinja rendering of the GGUF's template equals transformers' apply_chat_template."""
    template = ChatTemplate.from_gguf_metadata(read_metadata(bundled_path), str(bundled_path))
    for prompted in (False, True):
        turns = long_conversation(4)
        ours = template.render_turns(turns, prompted=prompted)
        theirs = gguf_tokenizer.apply_chat_template(
            to_chat_messages(turns, prompted=prompted), tokenize=False, add_generation_prompt=True
        )
        assert ours == theirs


def test_p_speak_equals_two_full_forward_passes(tiny, tiny_dir: Path, gguf_tokenizer) -> None:
    """The one-pass decision equals scoring prompt+"(response" and prompt+"(silence" separately."""
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_dir)
    window = sample_windows()[8]
    text = gguf_tokenizer.apply_chat_template(to_chat_messages(window), tokenize=False, add_generation_prompt=True)
    prompt = gguf_tokenizer(text, add_special_tokens=False)["input_ids"]

    def sequence_logprob(suffix: str) -> float:
        ids = gguf_tokenizer(text + suffix, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
        return sum(float(logprobs[i - 1, ids[i]]) for i in range(len(prompt), len(ids)))

    expected = p_speak_from_logprobs(sequence_logprob(SPEAK_PREFIX), sequence_logprob(SILENT_PREFIX))
    got = tiny.score("c", window)
    assert got.p_speak == pytest.approx(expected, rel=1e-4, abs=1e-7)
    assert got.timings.tokens_evaluated == len(prompt) + 2  # one pass: prompt + "(sil"


def test_forced_reply_is_cut_at_max_tokens(tiny) -> None:
    d = tiny.reply("c", sample_windows()[3])
    assert isinstance(d.text, str)
    assert 1 <= d.timings.tokens_generated <= 8  # a random model rarely ends its turn: cut at max_tokens
    assert "(response)" not in d.text


def test_peft_adapter_changes_the_decision(tiny, tiny_dir: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    base = transformers.AutoModelForCausalLM.from_pretrained(tiny_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(tmp_path / "adapter")
    (tmp_path / "adapter" / "meta.json").write_text('{"threshold": 0.35}')
    adapted = create_runtime(TransformersOptions(model=str(tiny_dir), adapter=str(tmp_path / "adapter")))
    try:
        window = sample_windows()[2]
        assert adapted.base_threshold == 0.35
        a = adapted.score("c", window).p_speak
        b = tiny.score("c", window).p_speak
        assert abs(a - b) > 1e-6
    finally:
        adapted.close()


def test_adapter_for_another_base_is_named(tiny_dir: Path, tmp_path: Path, gguf_tokenizer) -> None:
    from peft import LoraConfig, get_peft_model

    other = _tiny_llama(32, 1, len(gguf_tokenizer))
    get_peft_model(other, LoraConfig(r=4, target_modules=["q_proj"])).save_pretrained(tmp_path / "narrow-adapter")
    with pytest.raises(RuntimeError_, match="narrow-adapter"):
        create_runtime(TransformersOptions(model=str(tiny_dir), adapter=str(tmp_path / "narrow-adapter")))


def test_missing_model_is_named(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError_, match="no-such-model"):
        create_runtime(TransformersOptions(model=str(tmp_path / "no-such-model")))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal of 4-bit")
def test_4bit_needs_cuda(tiny_dir: Path) -> None:
    with pytest.raises(RuntimeError_, match="CUDA"):
        create_runtime(TransformersOptions(model=str(tiny_dir), load_in_4bit=True))


def test_window_longer_than_max_context_is_trimmed(tiny_dir: Path) -> None:
    rt = create_runtime(TransformersOptions(model=str(tiny_dir), max_context=300, max_tokens=16))
    try:
        d = rt.score("c", long_conversation(60))
        assert 0.0 < d.p_speak < 1.0 and d.timings.tokens_evaluated <= 300
    finally:
        rt.close()


def test_smollm2_parity_with_llama_cpp(smollm2_tf) -> None:
    """Same windows, same bundled weights: llama.cpp and transformers agree within the measured tolerance."""
    local = create_runtime(LlamaCppOptions(adapter_path=None, n_threads=THREADS))
    try:
        gaps = []
        for i, window in enumerate(sample_windows()):
            a = local.score(f"w{i}", window).p_speak
            b = smollm2_tf.score(f"w{i}", window).p_speak
            gaps.append(abs(log_odds(a) - log_odds(b)))
        assert max(gaps) <= LOG_ODDS_TOLERANCE, gaps
        assert sum(gaps) / len(gaps) <= LOG_ODDS_TOLERANCE / 2, gaps
    finally:
        local.close()


def test_smollm2_forced_reply(smollm2_tf) -> None:
    window = [Turn(role="user", name="Eve", content="assistant, say hello to everyone please.")]
    d = smollm2_tf.reply("c", window)
    assert d.text and d.timings.tokens_generated <= smollm2_tf.options.max_tokens
    assert "(silence)" not in d.text and "(response)" not in d.text
