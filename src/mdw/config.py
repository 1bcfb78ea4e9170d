"""Settings: environment variables, an optional ``mdw.toml``, and flags, in rising precedence.

Every bad value becomes a :class:`~mdw.errors.ConfigError` whose one line names the setting and
the accepted form, so the CLI can print it and exit 2.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict, TypeVar, Unpack

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from mdw.errors import ConfigError
from mdw.plans import RATE_FORMS, Delay, History, Limits, Plan, RateLimit

_Parsed = TypeVar("_Parsed", Plan, History, Delay)

__all__ = ["RATE_FORMS", "RateLimit", "Settings", "SettingsValues", "check_known", "load_settings"]


class Settings(BaseSettings):
    """All of mdw's settings in one typed object."""

    model_config = SettingsConfigDict(env_prefix="MDW_", extra="ignore", frozen=True)

    # The official clients read MASSIVE_*; the older POLYGON_* names win when both are set.
    polygon_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("POLYGON_API_KEY", "MASSIVE_API_KEY"))
    polygon_base_url: str = Field(default="https://api.massive.com",
                                  validation_alias=AliasChoices("POLYGON_BASE_URL", "MASSIVE_BASE_URL"))
    database_url: str = "sqlite:///mdw.db"
    # The key's plan (MDW_PLAN): history depth, delay, rate and flat files in one setting; the
    # three settings below override their part of it. None: not said (no history bound, real
    # time, and the rate limit's own default).
    plan: Annotated[Plan | None, NoDecode] = None
    history: Annotated[History | None, NoDecode] = None
    data_delay: Annotated[Delay | None, NoDecode] = None
    # How long after the plan's delay a window must have ended before it is final (delayed plans
    # only): the vendor publishes a delayed minute around its delay, not to the millisecond.
    delay_margin_s: int = Field(default=60, ge=0)
    # NoDecode: the env value is a rate string, not JSON (RateLimit is a dataclass, which
    # pydantic-settings would otherwise try to json-decode).
    rate_limit: Annotated[RateLimit, NoDecode] = RateLimit(5.0, 60.0)
    max_in_flight: int = Field(default=16, ge=1, le=1000)
    retry_attempts: int = Field(default=5, ge=1, le=100)
    retry_base_s: float = Field(default=1.0, gt=0)
    retry_cap_s: float = Field(default=300.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    request_timeout_s: float = Field(default=60.0, gt=0)
    breaker_threshold: int = Field(default=5, ge=1)
    breaker_cooldown_s: float = Field(default=10.0, gt=0)
    breaker_cooldown_cap_s: float = Field(default=20.0, gt=0)
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    # service
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # How long an idle keep-alive connection stays open. Longer than clients keep idle connections
    # (httpx 5 s, aiohttp 15 s), so the client always closes first: a server closing at the moment a
    # client reuses the connection is a ReadError on that client (#23).
    keep_alive_s: float = Field(default=75.0, gt=0)
    auth: Literal["admin", "all"] = "admin"
    webhook_url: str | None = None
    stale_after_s: float = Field(default=3600.0, gt=0)
    schedule_interval_min: int = Field(default=5, ge=1)
    daily_delay_min: int = Field(default=30, ge=0)
    scheduler: bool = True
    # The settle pass (the scheduler daily, `mdw backfill --settle` on demand): the last
    # settle_sessions sessions are re-fetched once, after settle_after (ET) the next day, to pick
    # up the vendor's revisions (0 turns it off).
    settle_sessions: int = Field(default=2, ge=0, le=30)
    settle_after: str = "11:00"
    # flat files (the vendor's S3 bucket): their own key pair, not the REST API key
    flatfiles_key_id: SecretStr | None = None
    flatfiles_secret: SecretStr | None = None
    flatfiles_endpoint: str = "https://files.massive.com"
    # the vendor's WebSocket aggregates (docs/stream.md)
    stream: bool = False  # run the stream inside `mdw serve`
    stream_url: str | None = None  # None: wss://socket.massive.com, or wss://delayed... for a delayed plan
    stream_symbols: str = ""  # comma list, "*" (every stock) or "X:*"; "": tracked symbols holding 1m
    stream_universe: str | None = None  # a universe's members today (`mdw universe define`), with the symbols
    stream_batch_ms: int = Field(default=250, ge=10, le=60_000)
    stream_settle_s: int = Field(default=180, ge=0)  # after the plan's delay + margin: late bars' grace
    stream_reconcile_s: int = Field(default=60, ge=1)  # how often the REST pass looks for settled spans

    @model_validator(mode="before")
    @classmethod
    def _plan_rate(cls, data: Any) -> Any:
        """The plan's rate is the rate limit unless MDW_RATE_LIMIT (or a flag) says otherwise."""
        if isinstance(data, dict) and data.get("plan") is not None and data.get("rate_limit") is None:
            with suppress(ConfigError):  # a bad plan: its own validator names the setting
                data = {**data, "rate_limit": Plan.parse(data["plan"]).rate}
        return data

    @field_validator("plan", mode="before")
    @classmethod
    def _parse_plan(cls, value: str | Plan | None) -> Plan | None:
        return _parsed(Plan.parse, value)

    @field_validator("history", mode="before")
    @classmethod
    def _parse_history(cls, value: str | History | None) -> History | None:
        return _parsed(History.parse, value) if not isinstance(value, History) else value

    @field_validator("data_delay", mode="before")
    @classmethod
    def _parse_delay(cls, value: str | Delay | None) -> Delay | None:
        return _parsed(Delay.parse, value) if not isinstance(value, Delay) else value

    @field_validator("rate_limit", mode="before")
    @classmethod
    def _parse_rate(cls, value: str | RateLimit) -> RateLimit:
        try:
            return RateLimit.parse(value)
        except ConfigError as exc:  # a ValueError lets pydantic name the setting
            raise ValueError(str(exc)) from None

    @field_validator("database_url")
    @classmethod
    def _check_db(cls, value: str) -> str:
        accepted = ("sqlite://", "postgresql://", "postgres://")
        if not value.removeprefix("iceberg+").startswith(accepted):
            raise ValueError("expected sqlite:///path.db or postgresql://user@host:port/db (or the columnar "
                             "store, iceberg+sqlite:///path.db or iceberg+postgresql://...?warehouse=...)")
        return value

    @field_validator("polygon_base_url")
    @classmethod
    def _check_base(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("expected an http(s) URL such as https://api.massive.com")
        return value.rstrip("/")

    @field_validator("flatfiles_endpoint")
    @classmethod
    def _check_files(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+/?$", value):
            raise ValueError("expected an http(s) URL without a path, such as https://files.massive.com")
        return value.rstrip("/")

    @field_validator("stream_url")
    @classmethod
    def _check_stream(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^wss?://[^\s/]+", value):
            raise ValueError("expected a ws(s) URL such as wss://socket.massive.com")
        return value.rstrip("/") if value else value
    @field_validator("settle_after")
    @classmethod
    def _check_settle_after(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value.strip()):
            raise ValueError("expected a time of day HH:MM (ET), such as 11:00")
        return value.strip()

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        up = value.upper()
        if up not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return up

    @property
    def limits(self) -> Limits:
        """What a run may ask for: the key's plan and the margin behind its delay."""
        return Limits(self.key_plan, self.delay_margin_s * 1000)

    @property
    def key_plan(self) -> Plan:
        """What mdw believes the key's plan allows: ``plan`` with the individual settings applied.

        Without ``plan`` it is ``unset``: no history bound, real time, ``rate_limit``.
        """
        base = self.plan or Plan("unset", History(), Delay(), self.rate_limit, True)
        overridden = self.history is not None or self.data_delay is not None or self.rate_limit != base.rate
        return replace(base, history=self.history or base.history, delay=self.data_delay or base.delay,
                       rate=self.rate_limit, name="custom" if self.plan and overridden else base.name)

    @property
    def api_key(self) -> str | None:
        return self.polygon_api_key.get_secret_value() if self.polygon_api_key else None

    @property
    def flatfiles_credentials(self) -> tuple[str, str] | None:
        """The flat-file key pair (id, secret), or None unless both are set."""
        if self.flatfiles_key_id is None or self.flatfiles_secret is None:
            return None
        return self.flatfiles_key_id.get_secret_value(), self.flatfiles_secret.get_secret_value()

    @property
    def secrets(self) -> list[str | None]:
        """Every configured secret, for the log redaction."""
        pair = self.flatfiles_credentials or (None, None)
        return [self.api_key, *pair]


def _parsed(parse: Callable[[str], _Parsed], value: object) -> _Parsed | None:
    """A plan setting's text parsed, None kept; a ValueError lets pydantic name the setting."""
    if value is None or not isinstance(value, str):
        return value  # type: ignore[return-value]  # already parsed (or None)
    try:
        return parse(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


class SettingsValues(TypedDict, total=False):
    """Settings given by name (flags, ``mdw.connect(url, **settings)``); ``None`` means "not given".

    Type checkers catch a misspelt name here; at run time :func:`load_settings` refuses it with
    the same message as an unknown key in ``mdw.toml``. ``tests/unit/test_config.py`` pins these
    keys to :class:`Settings`' fields.
    """

    polygon_api_key: str | SecretStr | None
    polygon_base_url: str | None
    database_url: str | None
    plan: str | Plan | None
    history: str | History | None
    data_delay: str | Delay | None
    delay_margin_s: int | None
    rate_limit: str | RateLimit | None
    max_in_flight: int | None
    retry_attempts: int | None
    retry_base_s: float | None
    retry_cap_s: float | None
    connect_timeout_s: float | None
    request_timeout_s: float | None
    breaker_threshold: int | None
    breaker_cooldown_s: float | None
    breaker_cooldown_cap_s: float | None
    log_level: str | None
    log_format: Literal["auto", "json", "console"] | None
    host: str | None
    port: int | None
    keep_alive_s: float | None
    auth: Literal["admin", "all"] | None
    webhook_url: str | None
    stale_after_s: float | None
    schedule_interval_min: int | None
    daily_delay_min: int | None
    scheduler: bool | None
    settle_sessions: int | None
    settle_after: str | None
    flatfiles_key_id: str | SecretStr | None
    flatfiles_secret: str | SecretStr | None
    flatfiles_endpoint: str | None
    stream: bool | None
    stream_url: str | None
    stream_symbols: str | None
    stream_universe: str | None
    stream_batch_ms: int | None
    stream_settle_s: int | None
    stream_reconcile_s: int | None


# A TOML value: what ``tomllib`` returns for one key.
TomlValue = str | int | float | bool | list[object] | dict[str, object]

_ALIASES = {"polygon_api_key": "POLYGON_API_KEY", "polygon_base_url": "POLYGON_BASE_URL"}


def check_known(names: Iterable[str], where: str) -> None:
    """Refuse setting names :class:`Settings` does not have: a misspelt setting would otherwise be
    ignored without a word (``rate_limt="100/s"`` silently leaving the default 5/min).

    Raises:
        ConfigError: ``<where>: unknown setting(s) <names>; known: <every setting>``.
    """
    unknown = sorted(k for k in names if k not in Settings.model_fields)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}; "
                          f"known: {', '.join(Settings.model_fields)}")


def _read_toml(path: Path) -> dict[str, TomlValue]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML (not UTF-8 text at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    section = data.get("mdw", data)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: expected a table of settings")
    if section is not data:
        # With an [mdw] table, everything else in the file would be ignored without a word.
        others = sorted(f"[{k}]" if isinstance(v, dict) else k for k, v in data.items() if k != "mdw")
        if others:
            raise ConfigError(f"{path}: unknown key(s) or table(s) {', '.join(others)} beside [mdw]; "
                              "put every setting in [mdw] (or every one at the top level, without [mdw])")
    values: dict[str, TomlValue] = {str(k).replace("-", "_").lower(): v for k, v in section.items()}
    check_known(values, str(path))
    return values


def load_settings(
    config_file: str | Path | None = None, *, where: str = "settings", **overrides: Unpack[SettingsValues]
) -> Settings:
    """Build settings from env, then ``mdw.toml`` (or ``config_file``), then explicit overrides.

    Args:
        config_file: a TOML file to read instead of ``$MDW_CONFIG`` or ``./mdw.toml``.
        where: names the caller in the message about an unknown override (``mdw.connect()``).
        overrides: settings by name; ``None`` values are ignored.

    Raises:
        ConfigError: one line naming the bad setting and what it accepts.
    """
    check_known(overrides, where)
    values: dict[str, Any] = {}  # mixed values for pydantic to validate: Settings' own checks type them
    path = Path(config_file) if config_file else Path(os.environ.get("MDW_CONFIG", "mdw.toml"))
    if config_file or path.exists():
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        values.update(_read_toml(path))
    from_file = set(values)
    given = {k: v for k, v in overrides.items() if v is not None}
    values.update(given)
    from_file -= set(given)
    # Explicit values beat the environment; aliased fields must be passed by alias.
    kwargs = {_ALIASES.get(k, k): v for k, v in values.items()}
    try:
        return Settings(**kwargs)
    except SettingsError as exc:  # an environment value the settings source could not decode
        raise ConfigError(str(exc)) from None
    except PydanticValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ())) or "settings"
        name = loc.lower()
        env = _ALIASES.get(name, f"MDW_{name.upper()}") if name in Settings.model_fields else name
        msg = err.get("msg", "invalid value").removeprefix("Value error, ")
        inner = err.get("ctx", {}).get("error")
        if isinstance(inner, ConfigError):
            msg = str(inner)
        if name in from_file:  # the value came from the file: name the file and its key, not the env var
            raise ConfigError(f"{path}: invalid setting {name}: {msg}") from None
        raise ConfigError(f"invalid setting {name} ({env}): {msg}") from None
