"""The long-running service: HTTP API, scheduler, API keys, metrics, health and alerting.

``create_app(settings)`` builds the FastAPI app that ``mdw serve`` runs under uvicorn.
"""

from __future__ import annotations

from mdw.service.app import create_app

__all__ = ["create_app"]
