"""`mcp-fc keys create|list|revoke`: API keys, administered on the service host.

These commands open the service database directly (MCPFC_DATABASE_URL, or the SQLite file in the data dir),
as `mcp-fc dev` and the API do, and migrate it first. A key's secret is printed once, by `create`; `list`
shows ids, owners, names and dates only (the database keeps a hash of each secret, never the secret).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from deployer.cli import render
from deployer.cli.base import JsonOut, get_state
from deployer.cli.input import InputError
from deployer.client import ServiceUnreachable
from deployer.store import keys


def db_unavailable(url: str, exc: Exception) -> ServiceUnreachable:
    """Exit 3 for a database that cannot be opened, its password hidden."""
    from sqlalchemy.engine import make_url

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:
        shown = "the configured database"
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return ServiceUnreachable(f"cannot open {shown}: {reason}")


@contextmanager
def database(ctx: typer.Context) -> Iterator[Any]:
    """A session on the migrated service database; an unusable database is exit 3, in one line."""
    from sqlalchemy.exc import SQLAlchemyError

    from deployer.store import migrate
    from deployer.store.db import session_scope

    settings = get_state(ctx).settings()
    url = settings.effective_database_url
    try:
        migrate.upgrade(url)
        with session_scope(settings) as session:
            yield session
    except (SQLAlchemyError, OSError) as exc:
        raise db_unavailable(url, exc) from None


def when(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    owner: Annotated[
        str | None, typer.Option(help="Add the key to this existing owner instead of a new one.")
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Create an API key (a new owner) and print it once."""
    with database(ctx) as session:
        row, plaintext = keys.create_api_key(session, name=name, owner_id=owner)
        key_id, owner_id = row.id, row.owner_id
    if json_out:
        typer.echo(render.to_json({"id": key_id, "owner_id": owner_id, "name": name, "key": plaintext}))
    else:
        typer.echo(f"id     {key_id}")
        typer.echo(f"owner  {owner_id}")
        typer.echo(f"key    {plaintext}")
    typer.echo("Store the key now: it is not shown again. Use it as MCPFC_API_KEY or --api-key.", err=True)


def list_(
    ctx: typer.Context,
    revoked: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    json_out: JsonOut = False,
) -> None:
    """List the API keys: id, owner, name, created (never a secret: only its hash is stored)."""
    with database(ctx) as session:
        items = [
            {
                "id": row.id,
                "owner_id": row.owner_id,
                "name": row.name,
                "created_at": when(row.created_at),
                "revoked_at": when(row.revoked_at),
            }
            for row in keys.list_api_keys(session, include_revoked=revoked)
        ]
    if json_out:
        typer.echo(render.to_json(items))
        return
    if not items:
        typer.echo("No API keys." if revoked else "No active API keys.")
        return
    typer.echo(f"{'ID':<14} {'OWNER':<17} {'CREATED':<26} {'REVOKED':<26} NAME")
    for item in items:
        typer.echo(
            f"{item['id']:<14} {item['owner_id']:<17} {item['created_at'] or '-':<26} "
            f"{item['revoked_at'] or '-':<26} {item['name'] or '-'}"
        )


def revoke(
    ctx: typer.Context,
    key_id: Annotated[
        str, typer.Argument(metavar="ID", help="The key id `keys create` printed.", show_default=False)
    ],
    json_out: JsonOut = False,
) -> None:
    """Revoke an API key: requests with it are refused from now on."""
    with database(ctx) as session:
        revoked = keys.revoke_api_key(session, key_id)
    if not revoked:
        raise InputError(f"no active API key with id {key_id}")
    if json_out:
        typer.echo(render.to_json({"id": key_id, "revoked": True}))
    else:
        typer.echo(f"revoked {key_id}")


def rotate_secrets(ctx: typer.Context, json_out: JsonOut = False) -> None:
    """Re-encrypt every stored secret under MCPFC_SECRET_KEY (the old key in MCPFC_OLD_SECRET_KEYS until
    this says none is left). Safe to interrupt and run again: it goes on where it stopped."""
    from deployer.crypto import Vault
    from deployer.store.rekey import rotate_secrets as rotate_pass

    vault = Vault.from_settings(get_state(ctx).settings())
    with database(ctx) as session:
        report = rotate_pass(session, vault)
    out = {
        "rotated": report.rotated,
        "already_current": report.current,
        "changed_meanwhile": report.changed_meanwhile,
        "unreadable": report.unreadable,
        "done": report.done,
    }
    if json_out:
        typer.echo(render.to_json(out))
    else:
        typer.echo(
            f"re-encrypted {report.rotated} deployment(s); {report.current} already under the current key"
        )
    if report.unreadable:
        typer.echo(
            f"error: {len(report.unreadable)} deployment(s) hold secrets that no key in MCPFC_SECRET_KEY / "
            f"MCPFC_OLD_SECRET_KEYS opens: {', '.join(report.unreadable[:10])}",
            err=True,
        )
        raise typer.Exit(1)
    if report.changed_meanwhile:
        typer.echo(f"{report.changed_meanwhile} deployment(s) changed meanwhile: run it again", err=True)
        raise typer.Exit(1)
    typer.echo(
        "every stored secret is under MCPFC_SECRET_KEY: MCPFC_OLD_SECRET_KEYS may be emptied", err=True
    )
