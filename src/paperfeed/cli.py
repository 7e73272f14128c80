"""The `paperfeed` command: every operation of the product, scriptable from cron."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import TaskID

from paperfeed import db, digest_cli
from paperfeed.cli_common import load_settings, migrated_engine
from paperfeed.ingest_cli import export_app, ingest_app

app = typer.Typer(help="paperfeed: a self-hostable research-paper hub.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
app.add_typer(db_app, name="db")
users_app = typer.Typer(help="Accounts and moderation roles.", no_args_is_help=True)
app.add_typer(users_app, name="users")
digest_cli.register(app)  # mail, digest, worker
app.add_typer(ingest_app, name="ingest")
app.add_typer(export_app, name="export")
import_app = typer.Typer(help="Import data from files.", no_args_is_help=True)
app.add_typer(import_app, name="import")


WORKER_HEALTHCHECK_S = 60  # seconds a busy worker may take to answer the supervisor's ping
# Idle keep-alive connections stay open this long (uvicorn's default is 5 s). The side that
# closes an idle connection must be the client or proxy (nginx's upstream keepalive_timeout
# is 60 s; browsers and HTTP clients close sooner): a server closing first races the client's
# next request on that connection, which fails ("server disconnected"; nginx: 502 on a POST).
# bench/load.py saw one such error per 60 s run at 100 users.
KEEP_ALIVE_S = 75


_settings = load_settings


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
    migrated_engine(_settings())
    typer.echo("database is up to date")


@db_app.command("backup")
def db_backup(file: Path = typer.Argument(..., help="Where to write the copy.")) -> None:
    """Online, consistent copy of the SQLite database into FILE (PostgreSQL: use pg_dump)."""
    from paperfeed import backup

    engine = db.make_engine(_settings().database_url)
    try:
        size = backup.backup(engine, file)
    except backup.BackupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"backed up to {file} ({size / 1e6:.1f} MB, integrity checked)")


@db_app.command("restore")
def db_restore(
    file: Path = typer.Argument(..., help="A file written by `paperfeed db backup`."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Replace the SQLite database's contents with a backup (stop web and workers first)."""
    from paperfeed import backup

    engine = db.make_engine(_settings().database_url)
    if not yes:
        typer.confirm(f"Replace everything in {engine.url} with {file}?", abort=True)
    try:
        backup.restore(engine, file)
        db.check_migrated(engine)
    except (backup.BackupError, db.NotMigratedError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"restored {engine.url} from {file}")


@export_app.command("users")
def export_users(
    file: Path = typer.Argument(..., help="JSON file to write ('-' for stdout)."),
) -> None:
    """Write all user data (accounts, votes, comments, collections, subscriptions...) as JSON."""
    import json

    from paperfeed import userdata

    settings = _settings()
    engine = migrated_engine(settings)
    with db.read(engine) as conn:
        doc = userdata.export_all(conn, source=settings.base_url)
    text = json.dumps(doc, ensure_ascii=False, indent=1)
    if str(file) == "-":
        typer.echo(text)
        return
    tmp = file.with_name(file.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(file)
    typer.echo(
        f"exported {len(doc['users'])} users, {len(doc['comments'])} comments, "
        f"{len(doc['subscribers'])} subscribers, {len(doc['papers'])} referenced papers to {file}",
        err=True,
    )


@import_app.command("users")
def import_users(
    file: Path = typer.Argument(..., help="A file written by `paperfeed export users`."),
) -> None:
    """Merge a user-data export into this instance (idempotent; existing records are kept)."""
    import json

    from paperfeed import userdata

    engine = migrated_engine(_settings())
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
        with db.transaction(engine) as conn:
            stats = userdata.import_all(conn, doc)
    except (OSError, ValueError, KeyError) as exc:
        typer.echo(
            f"cannot import {file}: {type(exc).__name__}: {exc}; nothing was changed", err=True
        )
        raise typer.Exit(1) from exc
    created = ", ".join(f"{n} {k}" for k, n in stats.created.items()) or "nothing new"
    typer.echo(f"imported: {created}")
    for conflict in stats.conflicts:
        typer.echo(f"conflict: {conflict}", err=True)
    if stats.conflicts:
        raise typer.Exit(1)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, help="Worker processes (state lives in the database)."),
    reload: bool = typer.Option(False, help="Reload on code changes (development)."),
) -> None:
    """Serve the web UI and JSON API."""
    import os
    import shutil

    import uvicorn

    from paperfeed import metrics

    settings = _settings()
    migrated_engine(settings)  # refuse an unmigrated database before starting workers
    if workers > 1 and not metrics.multiprocess_mode():
        # Several processes: /metrics must sum them (prometheus_client multiprocess mode).
        # The workers inherit this variable; the directory starts empty on every serve.
        metrics_dir = settings.data_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
    typer.echo(f"paperfeed serving on http://{host}:{port}/papers")
    uvicorn.run(
        "paperfeed.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        log_level=settings.log_level,
        access_log=False,  # replaced by paperfeed's one-JSON-line-per-request log
        # uvicorn's supervisor kills a worker that misses a 5 s ping; on a saturated machine
        # (or while a worker imports at startup) that turns load into a restart loop.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
        timeout_keep_alive=KEEP_ALIVE_S,
    )


@app.command()
def doctor(
    as_json: bool = typer.Option(False, "--json", help="Print the results as a JSON array."),
) -> None:
    """Check config, database, indexes, mail and queue; print what to fix; exit 1 on failure."""
    import dataclasses
    import json

    from paperfeed import doctor as doctor_mod

    settings = _settings()
    results = doctor_mod.run(settings, db.make_engine(settings.database_url))
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(r) for r in results], indent=2))
    else:
        marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
        for r in results:
            typer.echo(f"[{marks[r.status]}] {r.name}: {r.detail}")
            if r.fix:
                typer.echo(f"       fix: {r.fix}")
    failed = [r for r in results if r.status == "fail"]
    if not as_json:
        typer.echo(f"{len(failed)} problem(s) to fix." if failed else "All checks passed.")
    if failed:
        raise typer.Exit(1)


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
    engine = migrated_engine(settings)
    weights = ranking.Weights.from_settings(settings)
    with db.transaction(engine) as conn:
        changed = ranking.rescore(conn, weights)
    typer.echo(f"rescored: {changed} papers changed; weights {weights}")


@app.command("index")
def index_cmd(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Embed new or changed papers and bring the search indexes up to date (resumable)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from paperfeed import search

    settings = _settings()
    engine = migrated_engine(settings, exit_code=2)
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
    embeddings = (
        f"embeddings: {report.embedded} computed, "
        + (f"{report.sentences} given sentence vectors, " if report.sentences else "")
        + f"{report.unchanged} unchanged; "
    )
    if report.backend == "postgres":
        counted = report.lexicon_words
        typer.echo(
            "keyword index: PostgreSQL full-text search (always current), word counts "
            + ("current" if counted is None else f"recounted ({counted} words)")
            + "; "
            + embeddings
            + f"vector index: {report.vectors} vectors ({report.vectors_synced} synced to "
            + f"pgvector); similar papers: {report.similar_stored} computed"
        )
        return
    typer.echo(
        f"keyword index: {report.keyword_updated} updated, {report.keyword_deleted} removed; "
        + embeddings
        + f"vector index: {report.vectors} vectors"
        + (" (rebuilt)" if report.vectors_rebuilt else "")
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
    engine = migrated_engine(settings, exit_code=2)
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
