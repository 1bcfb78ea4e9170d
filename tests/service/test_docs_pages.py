"""``/docs`` and ``/redoc`` work offline (#21 item 5): local assets only, each of them served."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mdw.service import docs_pages

from .conftest import ServiceFactory

# Every URL a page loads: src= and href= attributes, and url: / spec-url in the inline scripts.
_REFS = re.compile(r"""(?:src|href|url|spec-url)\s*[=:]\s*['"]([^'"]+)['"]""")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_docs_and_redoc_reference_no_external_host_and_their_assets_are_served(
    service_factory: ServiceFactory,
) -> None:
    """Each page's scripts, styles, favicon and document are same-origin paths that answer 200."""
    svc = await service_factory(None)
    for page in ("/docs", "/redoc"):
        status, body, headers = await svc.get(page)
        assert status == 200 and headers["Content-Type"].startswith("text/html"), page
        html = body.decode()
        assert "://" not in html, f"{page} names an external URL"
        refs = set(_REFS.findall(html))
        assert "/openapi.json" in refs and any(r.endswith(".js") for r in refs), (page, refs)
        for ref in refs:
            assert ref.startswith("/"), (page, ref)
            status, asset, _ = await svc.get(ref)
            assert status == 200 and len(asset) > 0, (page, ref, status)
    _, css, _ = await svc.get("/static/vendor/swagger-ui.css")
    assert b"swagger-ui" in css


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_docs_say_how_to_build_missing_assets(
    service_factory: ServiceFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without `make web` the pages answer 503 naming the missing files and the command, not a blank page."""
    monkeypatch.setattr(docs_pages, "VENDOR_DIR", tmp_path)
    svc = await service_factory(None)
    for page in ("/docs", "/redoc"):
        status, body, _ = await svc.get(page)
        assert status == 503 and b"make web" in body and b"/openapi.json" in body
