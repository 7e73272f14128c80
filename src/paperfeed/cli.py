"""The `paperfeed` command: every operation of the product, scriptable from cron."""

from __future__ import annotations

import typer
from rich.progress import TaskID
from sqlalchemy import Engine

from paperfeed import db, digest_cli
from paperfeed.config import Settings, get_settings
from paperfeed.ingest_cli import export_app, ingest_app

app = typer.Typer(help="paperfeed: a self-hostable research-paper hub.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
app.add_typer(db_app, name="db")
users_app = typer.Typer(help="Accounts and moderation roles.", no_args_is_help=True)
app.add_typer(users_app, name="users")
digest_cli.register(app)  # mail, digest, worker
app.add_typer(ingest_app, name="ingest")
app.add_typer(export_app, name="export")


def _settings() -> Settings:
    return get_settings()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the version this code needs (idempotent)."""
    settings = _settings()
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    typer.echo(f"database at {sorted(db.current_heads(engine)[0])}")


@db_app.command("check")
def db_check() -> None:
    """Exit 1 with the fix if the database is not migrated."""
    engine = db.make_engine(_settings().database_url)
    try:
        db.check_migrated(engine)
    except db.NotMigratedError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo("database is up to date")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, help="Worker processes (state lives in the database)."),
    reload: bool = typer.Option(False, help="Reload on code changes (development)."),
) -> None:
    """Serve the web UI and JSON API."""
    import uvicorn

    engine = db.make_engine(_settings().database_url)
    try:
        db.check_migrated(engine)
    except db.NotMigratedError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"paperfeed serving on http://{host}:{port}/papers")
    uvicorn.run(
        "paperfeed.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        log_level="info",
    )


def _moderate(change: str, name: str) -> None:
    """Run one audited moderation change from the command line (actor: none)."""
    from paperfeed import moderation
    from paperfeed.permissions import NotFound

    engine = db.make_engine(_settings().database_url)
    try:
        with db.transaction(engine) as conn:
            if change in ("promote", "demote"):
                changed = moderation.set_admin(conn, None, name, change == "promote")
            else:
                changed = moderation.set_suspended(conn, None, name, change == "suspend")
    except NotFound as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{name}: {change}d" if changed else f"{name}: unchanged (already {change}d)")


@users_app.command("promote")
def users_promote(name: str) -> None:
    """Make NAME an admin (moderator)."""
    _moderate("promote", name)


@users_app.command("demote")
def users_demote(name: str) -> None:
    """Take the admin role from NAME."""
    _moderate("demote", name)


@users_app.command("suspend")
def users_suspend(name: str) -> None:
    """Suspend NAME: signs them out everywhere; their tokens stop working."""
    _moderate("suspend", name)


@users_app.command("unsuspend")
def users_unsuspend(name: str) -> None:
    """Lift a suspension."""
    _moderate("unsuspend", name)


@users_app.command("cleanup")
def users_cleanup() -> None:
    """Delete expired sessions and finished rate-limit windows (run daily from cron)."""
    from paperfeed import credentials, ratelimits

    engine = db.make_engine(_settings().database_url)
    with db.transaction(engine) as conn:
        sessions = credentials.purge_expired(conn)
        windows = ratelimits.purge(conn)
    typer.echo(f"removed {sessions} expired session(s), {windows} rate-limit window(s)")


@users_app.command("list")
def users_list() -> None:
    """Every account: id, name, email, verified, role, state."""
    from paperfeed import accounts

    engine = db.make_engine(_settings().database_url)
    with db.read(engine) as conn:
        rows = accounts.list_users(conn, limit=100_000)
    for r in rows:
        flags = [
            "admin" if r.is_admin else "user",
            "verified" if r.email_verified_at else "unverified",
        ]
        if r.suspended_at:
            flags.append("suspended")
        typer.echo(f"{r.id}\t{r.username}\t{r.email}\t{','.join(flags)}")
    typer.echo(f"{len(rows)} user(s)", err=True)


trending_app = typer.Typer(help="Trending scores (stored hotness).", no_args_is_help=True)
app.add_typer(trending_app, name="trending")


@trending_app.command("rescore")
def trending_rescore() -> None:
    """Recompute every paper's hotness with the PAPERFEED_TRENDING_* weights (idempotent)."""
    from paperfeed import ranking

    settings = _settings()
    engine = db.make_engine(settings.database_url)
    try:
        db.check_migrated(engine)
    except db.NotMigratedError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    weights = ranking.Weights.from_settings(settings)
    with db.transaction(engine) as conn:
        changed = ranking.rescore(conn, weights)
    typer.echo(f"rescored: {changed} papers changed; weights {weights}")


def _engine(settings: Settings) -> Engine:
    engine = db.make_engine(settings.database_url)
    try:
        db.check_migrated(engine)
    except db.NotMigratedError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    return engine


@app.command("index")
def index_cmd(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Embed new or changed papers and bring the search indexes up to date (resumable)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from paperfeed import search

    settings = _settings()
    engine = _engine(settings)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=quiet,
        transient=False,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        try:
            report = search.index_pending(engine, settings, progress=progress)
        except search.IndexBusyError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc
    typer.echo(
        f"keyword index: {report.keyword_updated} updated, {report.keyword_deleted} removed; "
        f"embeddings: {report.embedded} computed, {report.unchanged} unchanged; "
        f"vector index: {report.vectors} vectors" + (" (rebuilt)" if report.vectors_rebuilt else "")
    )


@app.command("search")
def search_cmd(
    query: str = typer.Argument(..., help="Search text, e.g. '\"diffusion\" author:ho year:2020'."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=100, help="Results to print."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many results."),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid | keyword | semantic"),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array (rank order)."),
) -> None:
    """Search the catalog (the same ranking as /papers?q=)."""
    import json

    from paperfeed import search

    settings = _settings()
    engine = _engine(settings)
    if not search.is_indexed(settings):
        typer.echo("The search index is empty: run `paperfeed index` first.", err=True)
    with db.read(engine) as conn:
        page = search.search(conn, settings, query, limit=limit, offset=offset, mode=mode)
    for line in [*page.notices, *([page.message] if page.message else [])]:
        typer.echo(line, err=True)
    if page.did_you_mean:
        typer.echo(f"Did you mean arXiv:{page.did_you_mean}?", err=True)
    if as_json:
        rows = [
            {
                "arxiv_id": h.arxiv_id,
                "title": h.title,
                "score": h.score,
                "authors": h.authors,
                "published": h.published.isoformat() if h.published else None,
                "upvotes": h.upvotes,
            }
            for h in page.hits
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    for rank, h in enumerate(page.hits, start=offset + 1):
        typer.echo(f"{rank:3}. [{h.arxiv_id}] {h.title}  ({h.score:.4f})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
