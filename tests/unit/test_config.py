"""Settings: environment, mdw.toml and overrides in rising precedence; one clear line per bad value."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from mdw.config import RateLimit, Settings, SettingsValues, load_settings
from mdw.errors import ConfigError, UsageError


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ambient MDW_/POLYGON_ variables, and a working directory without mdw.toml."""
    for name in list(os.environ):
        if name.startswith(("MDW_", "POLYGON_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_load_settings_defaults_without_env_or_file() -> None:
    """With nothing configured: SQLite file, the free-tier rate, the public API, no key."""
    s = load_settings()
    assert s.database_url == "sqlite:///mdw.db"
    assert s.rate_limit == RateLimit(5.0, 60.0)
    assert s.polygon_base_url == "https://api.massive.com"
    assert s.api_key is None


def test_load_settings_reads_the_documented_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """POLYGON_API_KEY, POLYGON_BASE_URL, MDW_DATABASE_URL and MDW_RATE_LIMIT are honoured."""
    monkeypatch.setenv("POLYGON_API_KEY", "k3y-from-env")
    monkeypatch.setenv("POLYGON_BASE_URL", "http://127.0.0.1:8765/")
    monkeypatch.setenv("MDW_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/mdw")
    monkeypatch.setenv("MDW_RATE_LIMIT", "100/s")
    monkeypatch.setenv("MDW_MAX_IN_FLIGHT", "32")
    s = load_settings()
    assert s.api_key == "k3y-from-env"
    assert s.polygon_base_url == "http://127.0.0.1:8765"
    assert s.database_url == "postgresql://postgres@127.0.0.1:5432/mdw"
    assert s.rate_limit == RateLimit(100.0, 1.0)
    assert s.max_in_flight == 32


def test_settings_repr_never_shows_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key is a SecretStr: printing settings cannot leak it."""
    monkeypatch.setenv("POLYGON_API_KEY", "k3y-from-env")
    s = load_settings()
    assert "k3y-from-env" not in repr(s) and "k3y-from-env" not in str(s.model_dump())


def test_load_settings_precedence_is_env_then_file_then_overrides(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mdw.toml beats the environment and explicit overrides (flags) beat both; None means unset."""
    monkeypatch.setenv("MDW_DATABASE_URL", "sqlite:///env.db")
    monkeypatch.setenv("MDW_RATE_LIMIT", "1/s")
    monkeypatch.setenv("MDW_PORT", "9001")
    (clean_env / "mdw.toml").write_text('database_url = "sqlite:///file.db"\nrate_limit = "2/s"\n')
    s = load_settings()
    assert (s.database_url, str(s.rate_limit), s.port) == ("sqlite:///file.db", "2/s", 9001)
    s = load_settings(rate_limit="3/s", database_url=None, polygon_api_key="flag-key")
    assert (s.database_url, str(s.rate_limit), s.api_key) == ("sqlite:///file.db", "3/s", "flag-key")


def test_load_settings_reads_an_mdw_table_and_an_explicit_config_file(clean_env: Path) -> None:
    """A [mdw] table is read; --config points anywhere; dashes in keys mean underscores."""
    path = clean_env / "elsewhere.toml"
    path.write_text('[mdw]\nrate-limit = "unlimited"\nlog_level = "debug"\n')
    s = load_settings(path)
    assert s.rate_limit.unlimited and s.log_level == "DEBUG"


def test_load_settings_names_a_corrupt_mdw_toml(clean_env: Path) -> None:
    """A TOML syntax error is a ConfigError naming the file, not a parser traceback."""
    (clean_env / "mdw.toml").write_text("rate_limit = [\n")
    with pytest.raises(ConfigError, match=r"^mdw\.toml: not valid TOML \("):
        load_settings()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("mdw = 3\n", "mdw.toml: expected a table of settings"),
        ('rate_limt = "5/min"\n', "mdw.toml: unknown setting(s) rate_limt; known: polygon_api_key"),
    ],
)
def test_load_settings_rejects_a_malformed_or_misspelt_mdw_toml(
    clean_env: Path, content: str, message: str
) -> None:
    """A non-table [mdw] or an unknown key is refused, so a typo is never silently ignored."""
    (clean_env / "mdw.toml").write_text(content)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ('rate_limit = "5/s"\n[mdw]\ndatabase_url = "sqlite:///x.db"\n', "rate_limit"),
        ('[mdw]\nrate_limit = "5/s"\n[server]\nport = 9000\n', "[server]"),
    ],
)
def test_load_settings_rejects_keys_and_tables_beside_the_mdw_table(
    clean_env: Path, content: str, named: str
) -> None:
    """With an [mdw] table, a top-level key or another table is refused, not ignored without a word."""
    (clean_env / "mdw.toml").write_text(content)
    with pytest.raises(ConfigError, match=r"^mdw\.toml: unknown key\(s\) or table\(s\) ") as info:
        load_settings()
    assert named in str(info.value)


def test_load_settings_bad_value_from_mdw_toml_names_the_file_and_key(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad value read from mdw.toml names the file and its key, not the environment variable."""
    (clean_env / "mdw.toml").write_text('[mdw]\nrate_limit = "fast"\n')
    with pytest.raises(ConfigError, match=r"^mdw\.toml: invalid setting rate_limit: invalid rate limit 'fa"):
        load_settings()
    # The same key given as a flag wins over the file, and a flag's bad value is not the file's.
    with pytest.raises(ConfigError, match=r"^invalid setting rate_limit \(MDW_RATE_LIMIT\)"):
        load_settings(rate_limit="slow")
    assert load_settings(rate_limit="5/s").rate_limit == RateLimit(5.0, 1.0)


def test_load_settings_rejects_a_missing_explicit_config_file() -> None:
    """An explicitly named file that does not exist is an error, unlike the optional mdw.toml."""
    with pytest.raises(ConfigError, match=r"config file nope\.toml does not exist"):
        load_settings("nope.toml")


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("MDW_RATE_LIMIT", "fast",
         "invalid setting rate_limit (MDW_RATE_LIMIT): invalid rate limit 'fast'; "
         "expected N/s, N/min or N/h (e.g. 5/min, 100/s), or 'unlimited'"),
        ("MDW_RATE_LIMIT", "5/day",
         "invalid setting rate_limit (MDW_RATE_LIMIT): invalid rate limit '5/day'"),
        ("MDW_RATE_LIMIT", "5", "invalid setting rate_limit (MDW_RATE_LIMIT): invalid rate limit '5'"),
        ("MDW_DATABASE_URL", "mysql://x",
         "invalid setting database_url (MDW_DATABASE_URL): expected sqlite:///path.db or postgresql://"),
        ("POLYGON_BASE_URL", "ftp://x",
         "invalid setting polygon_base_url (POLYGON_BASE_URL): expected an http(s) URL"),
        ("MDW_PORT", "http", "invalid setting port (MDW_PORT): Input should be a valid integer"),
        ("MDW_LOG_LEVEL", "LOUD", "invalid setting log_level (MDW_LOG_LEVEL): expected DEBUG, INFO"),
        ("MDW_LOG_FORMAT", "xml", "invalid setting log_format (MDW_LOG_FORMAT): Input should be 'auto'"),
    ],
)
def test_load_settings_bad_value_gives_one_line_naming_setting_and_form(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    """Each bad value is one ConfigError line naming the setting, its variable and the accepted form."""
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert text.startswith(message)
    assert "\n" not in text
    assert isinstance(info.value, UsageError)  # so the CLI exits 2


def test_load_settings_bad_override_names_the_setting() -> None:
    """A bad flag value is reported like a bad environment value."""
    with pytest.raises(ConfigError, match=r"^invalid setting rate_limit \(MDW_RATE_LIMIT\): invalid rate"):
        load_settings(rate_limit="lots")


@pytest.mark.parametrize(
    ("text", "requests", "period", "shown"),
    [
        ("5/min", 5.0, 60.0, "5/min"),
        ("5/minute", 5.0, 60.0, "5/min"),
        ("100/s", 100.0, 1.0, "100/s"),
        (" 100 / sec ", 100.0, 1.0, "100/s"),
        ("1000/h", 1000.0, 3600.0, "1000/h"),
        ("300/5min", 300.0, 300.0, "300/300s"),
        ("2.5/s", 2.5, 1.0, "2.5/s"),
        ("unlimited", math.inf, 1.0, "unlimited"),
        ("UNLIMITED", math.inf, 1.0, "unlimited"),
    ],
)
def test_rate_limit_parse_accepts_the_documented_forms(
    text: str, requests: float, period: float, shown: str
) -> None:
    """Rate strings parse to (requests, period seconds) and print back in a canonical form."""
    rate = RateLimit.parse(text)
    assert (rate.requests, rate.period, str(rate)) == (requests, period, shown)
    assert RateLimit.parse(rate) is rate


@pytest.mark.parametrize(
    "text", ["", "fast", "5", "5/day", "-1/s", "0/s", "5/0min", "five/min", "5 per min", "0", "none", "inf"]
)
def test_rate_limit_parse_rejects_bad_strings_with_the_accepted_forms(text: str) -> None:
    """A bad rate is a ConfigError giving the accepted forms; no limit is spelt `unlimited`, never 0."""
    with pytest.raises(ConfigError) as info:
        RateLimit.parse(text)
    assert str(info.value) == (
        f"invalid rate limit {text!r}; expected N/s, N/min or N/h (e.g. 5/min, 100/s), or 'unlimited'"
    )


def test_rate_limit_seconds_for_is_the_physical_floor() -> None:
    """At 5/min, 5 requests need no wait, 6 need one window, 11 need two; unlimited needs none."""
    rate = RateLimit.parse("5/min")
    assert [rate.seconds_for(n) for n in (0, 1, 5, 6, 10, 11)] == [0.0, 0.0, 0.0, 60.0, 60.0, 120.0]
    assert rate.per_second == pytest.approx(5 / 60)
    assert RateLimit.parse("unlimited").seconds_for(10_000) == 0.0


def test_settings_is_frozen() -> None:
    """Settings are one immutable typed object, safe to share between tasks."""
    s = load_settings()
    with pytest.raises(Exception, match="frozen"):
        s.port = 1  # type: ignore[misc]
    assert isinstance(s, Settings)


def test_load_settings_reads_the_flat_file_key_pair_as_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """MDW_FLATFILES_KEY_ID/SECRET/ENDPOINT are read; the pair never shows in a repr or a dump."""
    monkeypatch.setenv("MDW_FLATFILES_KEY_ID", "ff-key-id-123")
    monkeypatch.setenv("MDW_FLATFILES_SECRET", "ff-secret-456")
    monkeypatch.setenv("MDW_FLATFILES_ENDPOINT", "http://127.0.0.1:8765/")
    s = load_settings()
    assert s.flatfiles_credentials == ("ff-key-id-123", "ff-secret-456")
    assert s.flatfiles_endpoint == "http://127.0.0.1:8765"
    shown = repr(s) + str(s.model_dump())
    assert "ff-secret-456" not in shown and "ff-key-id-123" not in shown
    assert {"ff-key-id-123", "ff-secret-456"} <= set(s.secrets)


def test_load_settings_defaults_flat_files_to_the_vendor_endpoint_without_keys() -> None:
    """Without the pair the endpoint is files.massive.com and the credentials are None."""
    s = load_settings()
    assert s.flatfiles_endpoint == "https://files.massive.com" and s.flatfiles_credentials is None
    with pytest.raises(ConfigError, match="MDW_FLATFILES_ENDPOINT"):
        load_settings(flatfiles_endpoint="files.massive.com/flatfiles")


def test_settings_values_names_exactly_the_settings_fields() -> None:
    """The typed option bag of connect() and the flags has one key per setting, no more, no less."""
    assert set(SettingsValues.__annotations__) == set(Settings.model_fields)


def test_load_settings_refuses_an_unknown_override_naming_the_caller() -> None:
    """A misspelt keyword is an error saying who passed it, never a silently ignored value."""
    known = r"unknown setting\(s\) rate_limt; known: polygon_api_key"
    with pytest.raises(ConfigError, match=r"^mdw.connect\(\): " + known):
        load_settings(where="mdw.connect()", rate_limt="100/s")
