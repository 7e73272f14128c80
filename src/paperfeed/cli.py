"""The `paperfeed` command: every operation of the product, scriptable from cron."""

from __future__ import annotations

import typer

from paperfeed import db
from paperfeed.config import Settings, get_settings

app = typer.Typer(help="paperfeed: a self-hostable research-paper hub.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
app.add_typer(db_app, name="db")


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
    import os
    import shutil

    import uvicorn

    from paperfeed import metrics

    settings = _settings()
    engine = db.make_engine(settings.database_url)
    try:
        db.check_migrated(engine)
    except db.NotMigratedError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
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


def main() -> None:
    app()
