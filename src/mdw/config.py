"""Settings: environment variables, an optional ``mdw.toml``, and flags, in rising precedence.

Every bad value becomes a :class:`~mdw.errors.ConfigError` whose one line names the setting and
the accepted form, so the CLI can print it and exit 2.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict, Unpack

from pydantic import Field, SecretStr, field_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from mdw.errors import ConfigError

_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
            "h": 3600.0, "hour": 3600.0}
RATE_FORMS = "N/s, N/min or N/h (e.g. 5/min, 100/s), or 'unlimited'"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``requests`` request starts in any sliding window of ``period`` seconds.

    ``requests`` is ``math.inf`` for an unlimited plan.
    """

    requests: float
    period: float

    @classmethod
    def parse(cls, text: str | RateLimit) -> RateLimit:
        """Parse ``5/min``, ``100/s``, ``300/5min``-style strings or ``unlimited``.

        ``unlimited`` is the only spelling of no limit: ``0``, ``none`` or ``inf`` are errors, so a
        typo or an empty value can never turn pacing off (a limit that fails open).

        Raises:
            ConfigError: the text is not a rate; the message gives the accepted forms.
        """
        if isinstance(text, RateLimit):
            return text
        raw = str(text).strip().lower()
        if raw == "unlimited":
            return cls(math.inf, 1.0)
        m = _RATE_RE.fullmatch(raw)
        if not m:
            raise ConfigError(f"invalid rate limit {text!r}; expected {RATE_FORMS}")
        count = float(m[1])
        period = (float(m[2]) if m[2] else 1.0) * _PERIODS[m[3]]
        if count <= 0 or period <= 0:
            raise ConfigError(f"invalid rate limit {text!r}; expected {RATE_FORMS}")
        return cls(count, period)

    @property
    def unlimited(self) -> bool:
        return math.isinf(self.requests)

    @property
    def per_second(self) -> float:
        return self.requests / self.period

    def seconds_for(self, requests: int) -> float:
        """The least wall time ``requests`` can take under this limit (the physical limit)."""
        if self.unlimited or requests <= 0:
            return 0.0
        windows = max(0, math.ceil(requests / self.requests) - 1)
        return windows * self.period

    def __str__(self) -> str:
        if self.unlimited:
            return "unlimited"
        count = int(self.requests) if float(self.requests).is_integer() else self.requests
        for name, secs in (("h", 3600.0), ("min", 60.0), ("s", 1.0)):
            if self.period == secs:
                return f"{count}/{name}"
        return f"{count}/{self.period:g}s"


class Settings(BaseSettings):
    """All of mdw's settings in one typed object."""

    model_config = SettingsConfigDict(env_prefix="MDW_", extra="ignore", frozen=True)

    polygon_api_key: SecretStr | None = Field(default=None, validation_alias="POLYGON_API_KEY")
    polygon_base_url: str = Field(default="https://api.massive.com", validation_alias="POLYGON_BASE_URL")
    database_url: str = "sqlite:///mdw.db"
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
    breaker_cooldown_s: float = Field(default=30.0, gt=0)
    breaker_cooldown_cap_s: float = Field(default=600.0, gt=0)
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    # service
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    auth: Literal["admin", "all"] = "admin"
    webhook_url: str | None = None
    stale_after_s: float = Field(default=3600.0, gt=0)
    schedule_interval_min: int = Field(default=5, ge=1)
    daily_delay_min: int = Field(default=30, ge=0)
    scheduler: bool = True
    # flat files (the vendor's S3 bucket): their own key pair, not the REST API key
    flatfiles_key_id: SecretStr | None = None
    flatfiles_secret: SecretStr | None = None
    flatfiles_endpoint: str = "https://files.massive.com"

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

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        up = value.upper()
        if up not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return up

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


class SettingsValues(TypedDict, total=False):
    """Settings given by name (flags, ``mdw.connect(url, **settings)``); ``None`` means "not given".

    Type checkers catch a misspelt name here; at run time :func:`load_settings` refuses it with
    the same message as an unknown key in ``mdw.toml``. ``tests/unit/test_config.py`` pins these
    keys to :class:`Settings`' fields.
    """

    polygon_api_key: str | SecretStr | None
    polygon_base_url: str | None
    database_url: str | None
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
    auth: Literal["admin", "all"] | None
    webhook_url: str | None
    stale_after_s: float | None
    schedule_interval_min: int | None
    daily_delay_min: int | None
    scheduler: bool | None
    flatfiles_key_id: str | SecretStr | None
    flatfiles_secret: str | SecretStr | None
    flatfiles_endpoint: str | None


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
    values.update({k: v for k, v in overrides.items() if v is not None})
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
        raise ConfigError(f"invalid setting {name} ({env}): {msg}") from None
