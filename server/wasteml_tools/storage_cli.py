"""``wasteml db ...``: apply and inspect the SQL store's migrations (typer sub-app)."""

from __future__ import annotations

import typer

from wasteml_server.adapters.storage.db import parse_database_url
from wasteml_server.adapters.storage.schema import current_revision, head_revision, migrate
from wasteml_server.core.errors import WastemlError
from wasteml_server.core.settings import Settings

app = typer.Typer(
    help="SQL store migrations (database from WASTEML_DATABASE_URL).", no_args_is_help=True
)


def _shown(url: str) -> str:
    return parse_database_url(url).render_as_string(hide_password=True)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Upgrade the database to REVISION (default: the newest)."""
    url = Settings().database_url
    try:
        now = migrate(url, revision)
    except WastemlError as err:
        typer.echo(f"error: {err.message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{_shown(url)}: at revision {now}")


@app.command()
def current() -> None:
    """Show the database's revision and the newest available one."""
    url = Settings().database_url
    try:
        now = current_revision(url)
    except WastemlError as err:
        typer.echo(f"error: {err.message}", err=True)
        raise typer.Exit(1) from None
    head = head_revision()
    state = "up to date" if now == head else "needs `wasteml db upgrade`"
    typer.echo(f"{_shown(url)}: revision {now or '(none)'}, newest {head} ({state})")
