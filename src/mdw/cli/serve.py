"""``mdw serve``: the HTTP API and the scheduler in one process under uvicorn.

One process on purpose: the scheduler's leader lock makes several processes (or machines) safe,
but metrics and live run progress are per process. SIGTERM and SIGINT shut down gracefully:
requests in flight finish, running backfills stop at a safe point (fetched data is committed).

The listening socket is bound and the store opened before uvicorn starts, so a bad ``--host``,
a port in use, or a database that cannot be opened (a directory, not a database, an unreachable
server) is one ``mdw: error:`` line with exit code 2, never uvicorn's log lines or a lifespan
traceback.
"""

from __future__ import annotations

import socket
import sys
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from mdw.cli.app import app, fail, run, settings_from, writable_store

if TYPE_CHECKING:
    from mdw.config import Settings

SWITCH_INTERVAL_S = 0.001


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (what uvicorn would bind), or exit 2 with one line."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        fail(f"invalid --host {host!r}: {getattr(exc, 'strerror', None) or exc}")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    sock.set_inheritable(True)
    return sock


async def _serve(settings: Settings, sock: socket.socket) -> int:
    """Check that the store opens, then serve until stopped (the command's one event loop)."""
    import uvicorn

    from mdw.service.app import create_app
    from mdw.store import open_store

    distributed = None
    if settings.database_url.startswith(("postgresql://", "postgres://")):
        # Distributed backfills queue their requests in the warehouse's PostgreSQL for `mdw worker`s.
        from mdw.scaleout.launcher import PgLauncher

        distributed = PgLauncher(settings)
    # Opened (and migrated) once here so that a database that cannot be opened is one line (cli.app.run
    # maps ConfigError to exit 2); the lifespan then opens it for good and closes it on shutdown, before
    # uvicorn re-raises a caught SIGTERM.
    await (await open_store(settings.database_url)).close()
    application = create_app(settings, distributed=distributed)
    # log_config=None: uvicorn's loggers propagate to mdw's handler (same format, same console).
    config = uvicorn.Config(application, log_level=settings.log_level.lower(), access_log=False,
                            log_config=None,
                            lifespan="on", timeout_graceful_shutdown=15,
                            timeout_keep_alive=max(1, round(settings.keep_alive_s)))
    class Server(uvicorn.Server):
        """uvicorn's server; on SIGTERM/SIGINT it also ends the open live-bar streams
        (``/v1/stream/bars``), which would otherwise hold the graceful shutdown for its whole timeout."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            state = getattr(application.state, "mdw", None)
            if state is not None:
                state.live.stop_threadsafe()

    server = Server(config)
    host, port = sock.getsockname()[:2]
    print(f"mdw: serving on http://{host}:{port} (API docs: /docs)", file=sys.stderr)
    await server.serve(sockets=[sock])
    return 0 if server.started else 3  # 3: the app failed to start (uvicorn's own code)


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
    settings = settings_from(config, database_url=database_url, host=host, port=port,
                             scheduler=False if no_scheduler else None)
    writable_store(settings, "mdw serve")
    # The event loop shares the GIL with the store's threads (a backfill's writes, the readers): hand
    # it back every millisecond instead of every 5, so a read is not queued behind a long write (#23).
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    sock = bind(settings.host, settings.port)
    try:
        code = run(_serve(settings, sock))
    finally:
        sock.close()
    if code:
        raise typer.Exit(code)
