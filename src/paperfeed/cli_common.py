"""What every CLI command does first: read the settings and open a migrated database, each
failure one clear line on stderr and an exit status instead of a traceback."""

from __future__ import annotations

import typer
from sqlalchemy import Engine

from paperfeed import db
from paperfeed.config import Settings, get_settings


def load_settings() -> Settings:
    """Settings from the environment; a bad value is one clear message and exit status 2."""
    import pydantic

    try:
        return get_settings()
    except pydantic.ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(x) for x in err["loc"])
            name = f"PAPERFEED_{where.upper()}: " if where else ""
            typer.echo(f"configuration error: {name}{err['msg']}", err=True)
        raise typer.Exit(2) from exc


def migrated_engine(settings: Settings, exit_code: int = 1) -> Engine:
    """The engine, or the "run paperfeed db upgrade" message and `exit_code`."""
    engine = db.make_engine(settings.database_url, settings.database_session)
    try:
        db.check_migrated(engine)
    except db.NotMigratedError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(exit_code) from exc
    return engine
