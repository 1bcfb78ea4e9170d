"""``mdw plan``: what mdw believes about the key's plan, and where each part of that belief comes from."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from mdw.cli.app import app, settings_from

if TYPE_CHECKING:
    from mdw.config import Settings

Config = Annotated[str | None, typer.Option("--config", help="An mdw.toml file")]


def plan_lines(settings: Settings, now_ms: int) -> dict[str, str]:
    """The plan as mdw applies it, one value per line, each naming the setting it came from."""
    plan = settings.key_plan
    today = datetime.fromtimestamp(now_ms / 1000, tz=UTC).date()
    first = plan.first_day(today)

    def source(field: str, env: str) -> str:
        given = field in settings.model_fields_set
        if field == "rate_limit" and settings.plan is not None:
            given = settings.rate_limit != settings.plan.rate  # the plan's rate fills the setting in
        if given:
            return env
        return "MDW_PLAN" if settings.plan is not None else "default"

    return {
        "plan": str(plan),
        "history": f"{plan.history} (first day {first.isoformat() if first else 'any'}; "
                   f"from {source('history', 'MDW_HISTORY')})",
        "delay": f"{plan.delay} (from {source('data_delay', 'MDW_DATA_DELAY')})",
        "rate": f"{plan.rate} (from {source('rate_limit', 'MDW_RATE_LIMIT')})",
        "flat files": f"{'yes' if plan.flatfiles else 'no'} (from {source('plan', 'MDW_PLAN')})",
    }


@app.command("plan")
def plan_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    config: Config = None,
) -> None:
    """Print what mdw believes about the key's plan: history depth, delay, rate, flat files."""
    settings = settings_from(config)
    lines = plan_lines(settings, int(time.time() * 1000))
    if as_json:
        print(json.dumps({"spec": settings.key_plan.spec(), **lines}))
        return
    width = max(map(len, lines))
    for name, value in lines.items():
        print(f"{name:<{width}}  {value}")
