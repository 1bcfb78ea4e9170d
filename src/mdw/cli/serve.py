"""``mdw serve``: the HTTP API and the scheduler in one process under uvicorn.

One process on purpose: the scheduler's leader lock makes several processes (or machines) safe,
but metrics and live run progress are per process. SIGTERM and SIGINT shut down gracefully:
requests in flight finish, running backfills stop at a safe point (fetched data is committed).
"""

from __future__ import annotations

from typing import Annotated

import typer

from mdw.cli.app import app, settings_from


@app.command()
def serve(
    host: Annotated[str | None, typer.Option("--host", help="Interface to listen on")] = None,
    port: Annotated[int | None, typer.Option("--port", help="TCP port")] = None,
    database_url: Annotated[str | None, typer.Option("--database-url",
                                                     help="sqlite:///path.db or postgresql://...")] = None,
    config: Annotated[str | None, typer.Option("--config", help="An mdw.toml file")] = None,
    no_scheduler: Annotated[bool, typer.Option("--no-scheduler", help="Serve only; run no jobs")] = False,
) -> None:
    """Serve the HTTP API (docs at /docs) and keep tracked symbols current."""
    import uvicorn

    from mdw.service.app import create_app

    settings = settings_from(config, database_url=database_url, host=host, port=port,
                             scheduler=False if no_scheduler else None)
    distributed = None
    if settings.database_url.startswith(("postgresql://", "postgres://")):
        # Distributed backfills queue their requests in the warehouse's PostgreSQL for `mdw worker`s.
        from mdw.scaleout.launcher import PgLauncher

        distributed = PgLauncher(settings)
    application = create_app(settings, distributed=distributed)
    uvicorn.run(application, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                access_log=False, lifespan="on", timeout_graceful_shutdown=15)
