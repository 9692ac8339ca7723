"""Configuration: the example loads, every key is documented, errors name key and file."""

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from bot.config import Config, ConfigError, load_config, parse_config, secret_from_env
from model_runtime.options import ChatOptions, LlamaCppOptions, OpenAICompatOptions, TransformersOptions

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.yaml"


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        out.add(key)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out |= _keys(ann, key + ".")
    return out


def _yaml_keys(data: dict, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in data.items():
        out.add(f"{prefix}{k}")
        if isinstance(v, dict):
            out |= _yaml_keys(v, f"{prefix}{k}.")
    return out


def test_example_config_loads_and_matches_defaults() -> None:
    config = load_config(EXAMPLE)
    assert isinstance(config.runtime.decider, LlamaCppOptions) and config.runtime.responder is None
    assert config.runtime.shared
    assert config.model_dump() == Config().model_dump()


def test_example_documents_every_key() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    written = _yaml_keys(data)
    expected = _keys(Config) | {f"runtime.decider.{k}" for k in LlamaCppOptions.model_fields}
    assert expected - written == set(), "keys missing from config.example.yaml"
    text = EXAMPLE.read_text()
    for options in (TransformersOptions, OpenAICompatOptions, ChatOptions):
        for key in options.model_fields:
            assert f"#   {key}:" in text or key in LlamaCppOptions.model_fields or key == "kind", key


def test_typo_key_is_rejected_by_name(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("conversation:\n  talkativenes: 10\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "conversation.talkativenes: unknown key" in str(info.value)


def test_bad_value_names_the_dotted_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("runtime:\n  kind: llama_cpp\n  n_ctx: lots\nadapters:\n  discord:\n    allowed_guilds: [x]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "runtime.n_ctx:" in msg
    assert "adapters.discord.allowed_guilds.0:" in msg


def test_unknown_runtime_option_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"runtime\.gpu_layers: unknown key"):
        parse_config({"runtime": {"kind": "llama_cpp", "gpu_layers": 3}}, "x.yaml")


def test_decider_and_responder_take_any_kind_and_name_their_keys() -> None:
    chat = {"kind": "chat", "base_url": "http://127.0.0.1:8080/v1", "model": "big"}
    config = parse_config({"runtime": {"decider": {"n_threads": 2}, "responder": chat}})
    assert isinstance(config.runtime.decider, LlamaCppOptions) and config.runtime.decider.n_threads == 2
    assert isinstance(config.runtime.responder, ChatOptions) and not config.runtime.shared
    # A responder configured exactly as the decider is the same model, loaded once.
    assert parse_config({"runtime": {"responder": {}}}).runtime.shared
    with pytest.raises(ConfigError, match=r"runtime\.responder\.timeout_s: Input should be greater than 0"):
        parse_config({"runtime": {"responder": {**chat, "timeout_s": 0}}})
    with pytest.raises(ConfigError, match=r"runtime\.responder\.base_url: Field required"):
        parse_config({"runtime": {"responder": {"kind": "chat", "model": "big"}}})
    with pytest.raises(ConfigError, match=r"runtime\.decider\.n_treads: unknown key"):
        parse_config({"runtime": {"decider": {"n_treads": 2}}})
    with pytest.raises(ConfigError, match=r"runtime\.decider: kind chat only writes replies"):
        parse_config({"runtime": {"decider": chat}})


def test_unknown_runtime_kind_is_rejected() -> None:
    with pytest.raises(ConfigError, match="runtime"):
        parse_config({"runtime": {"kind": "magic"}}, "x.yaml")


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("log_level: INFO\nstore: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: not valid YAML"):
        load_config(path)


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        parse_config(["a"], "x.yaml")


def test_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHIME_TEST_TOKEN", "s3cret")
    assert secret_from_env("CHIME_TEST_TOKEN", "adapters.discord.token_env") == "s3cret"
    monkeypatch.delenv("CHIME_TEST_TOKEN")
    with pytest.raises(ConfigError, match="CHIME_TEST_TOKEN is not set"):
        secret_from_env("CHIME_TEST_TOKEN", "adapters.discord.token_env")


def test_default_store_is_sqlite_under_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    config = parse_config({})
    assert config.resolved_data_dir() == tmp_path / "chime"
    assert config.store_url() == f"sqlite:///{tmp_path / 'chime' / 'chime.db'}"


def test_assistant_name_cannot_contain_separators() -> None:
    with pytest.raises(ConfigError, match="assistant.name"):
        parse_config({"assistant": {"name": "bot: x"}})


@pytest.mark.parametrize(
    ("discord", "error"),
    [
        ({"shard_ids": [0]}, "shard_ids needs shard_count"),
        ({"shard_count": 2, "shard_ids": [2]}, r"shard_ids: \[2\] not in 0..1"),
        ({"shard_count": 2, "shard_ids": [1, 1]}, "lists a shard twice"),
        ({"shard_count": 2, "shard_ids": []}, "at least one shard id"),
        ({"shard_count": 0}, r"adapters\.discord\.shard_count"),
    ],
)
def test_discord_shards_are_checked(discord: dict, error: str) -> None:
    with pytest.raises(ConfigError, match=error) as info:
        parse_config({"adapters": {"discord": discord}}, "shards.yaml")
    assert "adapters.discord" in str(info.value)


def test_discord_shards_of_one_process() -> None:
    cfg = parse_config({"adapters": {"discord": {"shard_count": 4, "shard_ids": [1, 3]}}}).adapters.discord
    assert (cfg.shard_count, cfg.shard_ids) == (4, [1, 3])


def test_knowledge_folders_are_keyed_by_platform_and_channel() -> None:
    ok = parse_config({"memory": {"knowledge": {"matrix:!abc:example.org": "/srv/kb", "discord:123": "/srv/kb2"}}})
    assert set(ok.memory.knowledge) == {"matrix:!abc:example.org", "discord:123"}
    for key in ("general", ":123", "discord:"):
        with pytest.raises(ConfigError, match=r"memory\.knowledge: .*platform:channel_id"):
            parse_config({"memory": {"knowledge": {key: "/srv/kb"}}}, "x.yaml")
