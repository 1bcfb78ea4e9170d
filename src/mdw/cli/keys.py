"""``mdw keys create|list|revoke``: API keys of the HTTP API (only salted hashes are stored)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from mdw.cli.app import app, fail, help_without_command, run, settings_from, writable_store
from mdw.ranges import from_ms

keys_app = typer.Typer(help="Create, list and revoke API keys of `mdw serve`.", invoke_without_command=True)
app.add_typer(keys_app, name="keys")
keys_app.callback()(help_without_command)

DbUrl = Annotated[str | None, typer.Option("--database-url", help="sqlite:///path.db or postgresql://...")]
Config = Annotated[str | None, typer.Option("--config", help="An mdw.toml file")]


@keys_app.command("create")
def create(
    scope: Annotated[str, typer.Option("--scope", help="read or admin")] = "read",
    name: Annotated[str, typer.Option("--name", help="A label to recognise the key by")] = "",
    database_url: DbUrl = None,
    config: Config = None,
) -> None:
    """Create a key and print it once; only its salted hash is stored."""
    from mdw.service.auth import SCOPES, new_key
    from mdw.store import open_store

    if scope not in SCOPES:
        fail(f"invalid --scope {scope!r}; expected read or admin")
    settings = settings_from(config, database_url=database_url)
    writable_store(settings, "mdw keys create")

    async def go() -> str:
        plaintext, record = new_key(scope, name, time.time_ns() // 1_000_000)
        async with await open_store(settings.database_url) as store:
            await store.keys.add(record)
            await store.audit.append("cli", "keys.create", {"id": record.id, "scope": scope, "name": name})
        return plaintext

    key = run(go())
    print(key)
    typer.echo("Store this key now: it is shown only once.", err=True)


@keys_app.command("list")
def list_keys(database_url: DbUrl = None, config: Config = None) -> None:
    """List keys: id, scope, name, created, revoked (never the secret)."""
    from mdw.store import open_store, require_existing

    settings = settings_from(config, database_url=database_url)

    async def go() -> None:
        require_existing(settings.database_url)  # a read: never creates a database
        async with await open_store(settings.database_url, read_only=True) as store:
            records = await store.keys.all()
        print(f"{'id':<14}{'scope':<7}{'created':<22}{'revoked':<22}name")
        for r in sorted(records, key=lambda r: r.created_at_ms):
            created = from_ms(r.created_at_ms).strftime("%Y-%m-%d %H:%M:%SZ")
            revoked = from_ms(r.revoked_at_ms).strftime("%Y-%m-%d %H:%M:%SZ") if r.revoked_at_ms else "-"
            print(f"{r.id:<14}{r.scope:<7}{created:<22}{revoked:<22}{r.name}")

    run(go())


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (see `mdw keys list`)")],
    database_url: DbUrl = None,
    config: Config = None,
) -> None:
    """Revoke a key: requests with it get 401 from then on."""
    from mdw.store import open_store

    settings = settings_from(config, database_url=database_url)

    async def go() -> bool:
        async with await open_store(settings.database_url) as store:
            done = await store.keys.revoke(key_id)
            if done:
                await store.audit.append("cli", "keys.revoke", {"id": key_id})
            return done

    if not run(go()):
        fail(f"no live key with id {key_id!r}", 1)
    print(f"revoked {key_id}")
