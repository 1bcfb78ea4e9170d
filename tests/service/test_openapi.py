"""The OpenAPI document states the statuses and the key rules the handlers really apply."""

from __future__ import annotations

from typing import Any, Literal

import pytest

from mdw.config import load_settings
from mdw.service.app import create_app


def _document(auth: Literal["admin", "all"]) -> dict[str, Any]:
    settings = load_settings(None, database_url="sqlite://", scheduler=False, auth=auth)
    return create_app(settings).openapi()


@pytest.mark.parametrize("auth", ["admin", "all"])
def test_openapi_document_states_400_and_key_rules_when_auth_mode_is(auth: Literal["admin", "all"]) -> None:
    """No 422 anywhere; admin routes need a key; reads are anonymous unless ``auth = "all"``."""
    doc = _document(auth)
    ops = {(m.upper(), p): op for p, item in doc["paths"].items() for m, op in item.items()}
    assert all("422" not in op["responses"] for op in ops.values())
    assert {"400", "404", "401"} <= set(ops["GET", "/v1/bars/{ticker}"]["responses"])
    admin = ops["POST", "/v1/backfills"]
    assert {} not in admin["security"] and {"401", "403"} <= set(admin["responses"])
    read = ops["GET", "/v1/symbols"]["security"]
    assert ({} in read) is (auth == "admin")
    assert "security" not in ops["GET", "/healthz"]
    assert doc["components"]["schemas"]["Error"]["required"] == ["error"]
