"""chime's configuration: YAML validated once at start-up into typed objects.

Secrets never live in the file: keys ending in ``_env`` name the environment
variable that holds them. Every error names the dotted key and the file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from model_runtime.options import LlamaCppOptions, ResponderOptions, RuntimeOptions
from model_runtime.protocol import DEFAULT_ASSISTANT_NAME

# The runtime a ``runtime:`` section without ``kind`` configures (and the embedded default).
DEFAULT_RUNTIME_KIND = "llama_cpp"


class ConfigError(ValueError):
    """A configuration file is invalid; the message names the file and the dotted key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: object) -> object:
        # A section whose keys are all commented out reads as null in YAML: its defaults apply.
        if not isinstance(data, dict):
            return data
        sections = {
            name
            for name, f in cls.model_fields.items()
            if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)
        }
        return {k: v for k, v in data.items() if not (v is None and k in sections)}


class AssistantConfig(_Section):
    """Who the assistant is in the conversation."""

    name: str = Field(DEFAULT_ASSISTANT_NAME, min_length=1, max_length=32)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if any(c in v for c in ":\n\r\t@"):
            raise ValueError("the assistant's name may not contain ':', '@' or whitespace control characters")
        return v.strip()


class StoreConfig(_Section):
    """Where messages and decisions are kept."""

    # None: SQLite file chime.db under the data directory. Or e.g. postgresql://user@host/db.
    url: str | None = None
    # Messages and decisions older than this are purged (hourly); None keeps everything.
    retention_days: int | None = Field(None, ge=1)


_ROLES = ("decider", "responder")


def _with_kind(v: object) -> object:
    """A runtime mapping without ``kind`` configures the default backend."""
    if isinstance(v, dict) and "kind" not in v:
        return {"kind": DEFAULT_RUNTIME_KIND, **v}
    return v


def is_short_runtime(v: object) -> bool:
    """``runtime: {kind: ..., ...}`` (no decider/responder keys): one runtime in both roles."""
    return isinstance(v, dict) and not any(role in v for role in _ROLES)


class RuntimeConfig(_Section):
    """Which runtime scores every message (the decider) and which writes the replies (the responder)."""

    decider: RuntimeOptions = Field(default_factory=LlamaCppOptions)
    # None: the decider writes the replies too, with the same loaded model.
    responder: ResponderOptions | None = None

    @model_validator(mode="before")
    @classmethod
    def _roles(cls, data: object) -> object:
        if is_short_runtime(data):
            data = {"decider": data}
        if not isinstance(data, dict):
            return data
        decider = data.get("decider")
        out = {**data, "decider": _with_kind({} if decider is None else decider)}
        if data.get("responder") is not None:
            out["responder"] = _with_kind(data["responder"])
        return out

    @field_validator("decider", mode="before")
    @classmethod
    def _scores(cls, v: object) -> object:
        if isinstance(v, dict) and v.get("kind") == "chat":
            raise ValueError(
                "kind chat only writes replies: put it under runtime.responder "
                "(the decider scores every message: llama_cpp, transformers, openai or rules)"
            )
        return v

    @property
    def shared(self) -> bool:
        """Both roles are one loaded model: no responder, or one configured exactly as the decider."""
        return self.responder is None or self.responder == self.decider


class ConversationConfig(_Section):
    """How the core builds decisions for every channel."""

    # Defaults for channels seen for the first time (each can be changed by admin commands).
    talkativeness: int = Field(50, ge=0, le=100)
    history_messages: int = Field(40, ge=1, le=1000)
    # Token budget of the window given to the runtime (the model's context must hold it).
    window_tokens: int = Field(1536, ge=64)
    # When the window outgrows its limits, the oldest messages are dropped until it fits
    # in this fraction of them, so the window start stays put for many messages (the
    # runtime's per-channel cache only helps while the start does not move).
    trim_to: float = Field(0.6, gt=0.1, lt=1.0)
    # A message longer than this is cut in the prompt (it is stored whole).
    max_message_chars: int = Field(2000, ge=50)
    max_name_chars: int = Field(32, ge=4, le=128)
    # Messages from other bots are stored and shown to the model, but never decided on.
    ignore_bots: bool = True
    # A question addressed to the bot is answered only while it is younger than this
    # (seconds): one asked while the bot was down longer is logged and left unanswered.
    forced_freshness_s: int = Field(900, ge=0)
    # Where the platform can edit messages (Discord, Matrix), a reply is posted as soon as
    # its first words are written and then edited in place as it grows, at most once per
    # this many seconds in a room; typing shows until the first words. 0: replies are
    # sent whole when finished.
    stream_interval_s: float = Field(1.5, ge=0, le=60)


class MemoryConfig(_Section):
    """The group's memory: questions about the channel's past are answered from its history and documents."""

    enabled: bool = True
    # The share of a question's (weighted) words a passage must hold to answer it.
    min_coverage: float = Field(0.25, gt=0.0, le=1.0)
    # Per channel key (platform:channel_id), a folder of Markdown and text files it knows.
    knowledge: dict[str, Path] = Field(default_factory=dict)

    @field_validator("knowledge")
    @classmethod
    def _channel_keys(cls, v: dict[str, Path]) -> dict[str, Path]:
        # A key that names no channel would file its documents under a channel nobody talks in.
        wrong = [key for key in v if not all(key.partition(":")[::2])]
        if wrong:
            raise ValueError(
                f"{', '.join(map(repr, wrong))}: a key is a channel's platform:channel_id "
                "(console:console, matrix:!room:example.org, discord:CHANNEL_ID)"
            )
        return v


class ConsoleConfig(_Section):
    """The terminal group chat."""

    enabled: bool = True
    # The speaker of lines typed without "Name:".
    default_speaker: str = "you"


class DiscordConfig(_Section):
    """The Discord adapter (discord.py)."""

    enabled: bool = False
    # Environment variable holding the bot token (never the token itself).
    token_env: str = "DISCORD_TOKEN"
    # Allow lists are empty = everything allowed; deny lists win over allow lists.
    # Guilds (servers) the bot listens in; DMs are governed by respond_to_dms.
    allowed_guilds: list[int] = Field(default_factory=list)
    denied_guilds: list[int] = Field(default_factory=list)
    # Channel ids; a thread matches by its own id or its parent channel's.
    allowed_channels: list[int] = Field(default_factory=list)
    denied_channels: list[int] = Field(default_factory=list)
    # Only members with one of these roles are listened to (guild messages only).
    allowed_roles: list[int] = Field(default_factory=list)
    # Members with one of these roles are not listened to (their messages are not stored).
    denied_roles: list[int] = Field(default_factory=list)
    # User ids listened to (empty: everyone) and never listened to, in guilds and DMs.
    allowed_users: list[int] = Field(default_factory=list)
    denied_users: list[int] = Field(default_factory=list)
    # Members with this role id may run admin commands (besides those with Manage Server).
    admin_role: int | None = None
    # Answer direct messages (every DM is addressed to the bot).
    respond_to_dms: bool = True
    # Pass other bots' messages to the core (stored and shown to the model; whether they
    # trigger decisions is conversation.ignore_bots). The bot's own messages never pass.
    read_other_bots: bool = True
    # Sharding, for bots in many guilds: Discord routes a guild to shard (guild_id >> 22) % shard_count.
    # None: one connection (no sharding). With shard_count, this process runs the shards in
    # shard_ids (None: all of them); several processes, each with its own shard_ids, share
    # one PostgreSQL store. Direct messages arrive on shard 0.
    shard_count: int | None = Field(None, ge=1, le=65536)
    shard_ids: list[int] | None = None
    # Only for tests against a local fake Discord: the REST API base, e.g. http://127.0.0.1:8080/api/v10.
    api_base_url: str | None = None

    @model_validator(mode="after")
    def _shards(self) -> DiscordConfig:
        if self.shard_ids is None:
            return self
        if self.shard_count is None:
            raise ValueError("shard_ids needs shard_count (how many shards the bot has in all)")
        if not self.shard_ids:
            raise ValueError("shard_ids: give at least one shard id, or null for all shards")
        wrong = [i for i in self.shard_ids if not 0 <= i < self.shard_count]
        if wrong:
            raise ValueError(f"shard_ids: {wrong} not in 0..{self.shard_count - 1} (shard_count is {self.shard_count})")
        if len(set(self.shard_ids)) != len(self.shard_ids):
            raise ValueError(f"shard_ids: {self.shard_ids} lists a shard twice")
        return self


class MatrixConfig(_Section):
    """The Matrix adapter (matrix-nio)."""

    enabled: bool = False
    homeserver: str = "https://matrix.org"
    user_id: str = ""
    # One of the two: an access token (preferred) or a password, each from the environment.
    access_token_env: str | None = "MATRIX_ACCESS_TOKEN"
    password_env: str | None = None
    device_id: str | None = None
    device_name: str = "chime"
    # Invites are accepted from these users or servers (e.g. "@ann:example.org", "example.org"); empty: nobody.
    allowed_inviters: list[str] = Field(default_factory=list)
    admin_power_level: int = Field(50, ge=0, le=100)
    command_prefix: str = "!assistant"
    # End-to-end encryption needs matrix-nio[e2e] and a persistent store directory.
    e2ee: bool = False
    # The E2EE key store (keep it: losing it means new devices and undecryptable history).
    store_dir: Path | None = None
    # Long-poll time of each /sync request; the server answers earlier when events arrive.
    sync_timeout_ms: int = Field(30000, ge=0, le=300000)
    # Events per room per sync; a longer gap (e.g. while the bot was down) is fetched page by page.
    timeline_limit: int = Field(50, ge=1, le=500)
    # Reconnect backoff after network errors at login: starts at 1 s and doubles up to this.
    # A failing sync is retried at most adapters.matrix.adapter.SYNC_RETRY_MAX_S apart.
    reconnect_max_delay_s: float = Field(60.0, ge=1.0, le=3600.0)
    # How many M_LIMIT_EXCEEDED answers to wait out (as long as the server says) before giving up a request.
    max_rate_limit_retries: int = Field(10, ge=0, le=1000)


class AdaptersConfig(_Section):
    """Which platforms to join."""

    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    discord: DiscordConfig = Field(default_factory=DiscordConfig)
    matrix: MatrixConfig = Field(default_factory=MatrixConfig)


class Config(_Section):
    """The whole configuration."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # None: $XDG_DATA_HOME/chime (~/.local/share/chime).
    data_dir: Path | None = None
    assistant: AssistantConfig = Field(default_factory=AssistantConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    conversation: ConversationConfig = Field(default_factory=ConversationConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    adapters: AdaptersConfig = Field(default_factory=AdaptersConfig)

    def resolved_data_dir(self) -> Path:
        """The data directory, defaulting to the XDG data home."""
        if self.data_dir is not None:
            return self.data_dir.expanduser()
        return default_data_dir()

    def store_url(self) -> str:
        """The store URL, defaulting to SQLite under the data directory."""
        if self.store.url:
            return self.store.url
        return f"sqlite:///{(self.resolved_data_dir() / 'chime.db').resolve()}"


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/chime``, or ``~/.local/share/chime``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "chime"


def _format_errors(source: str, err: ValidationError, short_runtime: bool = False) -> str:
    lines = [f"{source}: invalid configuration"]
    for e in err.errors():
        # Union members add their tag to the location; keep the keys the user wrote.
        loc = ".".join(str(p) for p in e["loc"] if not (isinstance(p, str) and p in _RUNTIME_TAGS))
        if short_runtime and loc.startswith("runtime.decider"):
            loc = "runtime" + loc[len("runtime.decider") :]  # the user wrote the short form
        msg = "unknown key (check its spelling)" if e["type"] == "extra_forbidden" else e["msg"]
        msg = msg.removeprefix("Value error, ")
        lines.append(f"  {loc or '(top level)'}: {msg}")
    return "\n".join(lines)


_RUNTIME_TAGS = {"rules", "llama_cpp", "transformers", "openai", "chat"}


def parse_config(data: object, source: str = "<config>") -> Config:
    """Validate already-parsed YAML data."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(source, e, is_short_runtime(data.get("runtime")))) from None


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the configuration: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    return parse_config(data, str(p))


def secret_from_env(var: str | None, what: str) -> str:
    """The secret held in environment variable ``var``; a ConfigError naming it when unset."""
    if not var:
        raise ConfigError(f"{what}: no environment variable configured")
    value = os.environ.get(var, "")
    if not value:
        raise ConfigError(f"{what}: environment variable {var} is not set")
    return value


def configure_logging(level: str, log_file: Path | None = None, *, quiet_stderr: bool = False) -> None:
    """Send chime's logs at ``level`` to stderr and to ``log_file``; with ``quiet_stderr`` only warnings reach stderr."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(getattr(logging, level))
    stderr = logging.StreamHandler()
    stderr.setFormatter(fmt)
    root.handlers[:] = [stderr]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.setFormatter(fmt)
        root.addHandler(to_file)
    if quiet_stderr:
        # The console chat keeps the terminal for the conversation.
        stderr.setLevel(logging.WARNING)
    # Client libraries log request URLs at INFO/DEBUG, which can carry tokens, and nio logs
    # a line per event it handles: chime's own INFO lines are one per decision.
    for noisy in ("httpx", "httpcore", "urllib3", "discord.http", "nio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, getattr(logging, level)))
