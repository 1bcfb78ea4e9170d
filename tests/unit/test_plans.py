"""The plan model: names and explicit specs, history days, publication cutoffs, and the settings."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from mdw.config import RateLimit, load_settings
from mdw.domain import NEW_YORK
from mdw.errors import ConfigError
from mdw.plans import Delay, History, Plan


def test_plan_parse_reads_a_name_and_an_explicit_spec_when_given_either() -> None:
    """``free`` is two years, end of day, 5/min; a spec sets each part and reads back from ``spec()``."""
    free = Plan.parse("free")
    parts = (str(free.history), str(free.delay), str(free.rate), free.flatfiles)
    assert parts == ("2y", "eod", "5/min", False)
    custom = Plan.parse("history=5y,delay=15m,rate=unlimited,flatfiles=yes")
    assert custom.spec() == "history=5y,delay=15m,rate=unlimited,flatfiles=yes"
    assert Plan.parse(custom.spec()) == custom


@pytest.mark.parametrize("text", ["gold", "history=5", "delay=soon", "rate=0", "color=red", "history=,x"])
def test_plan_parse_refuses_with_the_accepted_forms_when_the_text_is_bad(text: str) -> None:
    """An unknown name, key or value is a ConfigError, never a silent default."""
    with pytest.raises(ConfigError):
        Plan.parse(text)


def test_history_first_day_counts_calendar_years_when_given_years() -> None:
    """Two years back from 2026-03-04 is 2024-03-04; from a 29 February it is the 28th."""
    assert History(years=2).first_day(date(2026, 3, 4)) == date(2024, 3, 4)
    assert History(years=1).first_day(date(2024, 2, 29)) == date(2023, 2, 28)
    assert History(days=30).first_day(date(2024, 3, 31)) == date(2024, 3, 1)
    assert History().first_day(date(2024, 3, 31)) is None


def test_delay_published_before_is_midnight_when_end_of_day_and_now_minus_delay_otherwise() -> None:
    """End-of-day data stops at New York midnight; a 15-minute plan 15 minutes before now."""
    now = int(datetime(2025, 3, 5, 14, 30, tzinfo=NEW_YORK).timestamp() * 1000)
    midnight = int(datetime(2025, 3, 5, tzinfo=NEW_YORK).timestamp() * 1000)
    assert Delay.parse("eod").published_before_ms(now) == midnight
    assert Delay.parse("15m").published_before_ms(now) == now - 15 * 60_000
    assert Delay.parse("0").published_before_ms(now) == now


def test_settings_plan_sets_the_rate_unless_the_rate_limit_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """MDW_PLAN=starter makes the rate unlimited; MDW_RATE_LIMIT and MDW_DATA_DELAY still win."""
    monkeypatch.setenv("MDW_PLAN", "starter")
    assert load_settings().rate_limit == RateLimit.parse("unlimited")
    assert str(load_settings().key_plan) == "starter"
    monkeypatch.setenv("MDW_RATE_LIMIT", "100/s")
    monkeypatch.setenv("MDW_DATA_DELAY", "eod")
    plan = load_settings().key_plan
    assert (plan.name, str(plan.rate), str(plan.delay), str(plan.history)) == ("custom", "100/s", "eod", "5y")


def test_settings_plan_refuses_with_the_setting_named_when_the_plan_is_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A misspelt plan is one line naming MDW_PLAN."""
    monkeypatch.setenv("MDW_PLAN", "stater")
    with pytest.raises(ConfigError, match="MDW_PLAN"):
        load_settings()


def test_settings_read_the_massive_names_when_the_polygon_names_are_absent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MASSIVE_API_KEY and MASSIVE_BASE_URL are read; POLYGON_* win when both are set."""
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    monkeypatch.delenv("POLYGON_BASE_URL", raising=False)
    monkeypatch.setenv("MASSIVE_API_KEY", "massive-key")
    monkeypatch.setenv("MASSIVE_BASE_URL", "http://127.0.0.1:9/")
    settings = load_settings()
    assert settings.api_key == "massive-key" and settings.polygon_base_url == "http://127.0.0.1:9"
    monkeypatch.setenv("POLYGON_API_KEY", "polygon-key")
    assert load_settings().api_key == "polygon-key"


def test_plan_command_prints_the_plan_with_its_sources_when_mdw_plan_is_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """``mdw plan --json`` prints the spec in force and where each part came from."""
    import json

    from mdw.cli import main

    monkeypatch.setenv("MDW_PLAN", "free")
    monkeypatch.setenv("MDW_DATA_DELAY", "15m")
    main(["plan", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["spec"] == "history=2y,delay=15m,rate=5/min,flatfiles=no"
    assert out["delay"] == "15m (from MDW_DATA_DELAY)" and out["rate"] == "5/min (from MDW_PLAN)"


@pytest.mark.parametrize(("plan", "expected"), [
    ("advanced", "2025-03-05T14:30"), ("starter", "2025-03-05T14:13"), ("free", "2025-03-04T23:58"),
])
def test_limits_final_before_ms_runs_behind_by_the_delay_and_margin_when_the_plan_is_delayed(
    plan: str, expected: str,
) -> None:
    """Real time is now itself; a delayed plan is now - delay - margin; end-of-day is midnight - margin."""
    from mdw.plans import Limits

    now = datetime(2025, 3, 5, 14, 30, tzinfo=NEW_YORK)
    got = Limits(Plan.parse(plan), margin_ms=120_000).final_before_ms(int(now.timestamp() * 1000))
    shown = datetime.fromtimestamp(got / 1000, tz=NEW_YORK).strftime("%Y-%m-%dT%H:%M")
    assert shown == expected
