"""`paperfeed ingest ...` and `paperfeed export jsonl`: parse options, build a source, run the
pipeline with a progress bar, print the summary, exit with a status cron can act on."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import TextIO

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy import Engine

from paperfeed import db, ingest, papers
from paperfeed.cli_common import load_settings, migrated_engine
from paperfeed.config import Settings
from paperfeed.sources import arxiv_api, hf_daily, jsonl, oai, snapshot
from paperfeed.sources.fetch import Fetcher, SourceError
from paperfeed.sources.stream import Item

# Exit statuses (documented in the README): 2 is Click's own for a usage error.
EXIT_OK = 0
EXIT_ERROR = 1  # the source failed, a file is missing, the database is not migrated
EXIT_REJECTED = 3  # some input was malformed and skipped; everything valid was ingested
EXIT_INTERRUPTED = 130  # Ctrl-C; rerun the same command to resume

ingest_app = typer.Typer(help="Load papers into the catalog from a source.", no_args_is_help=True)
export_app = typer.Typer(help="Write the catalog out.", no_args_is_help=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # messages never re-wrapped


def say(message: str) -> None:
    """A message on stderr, verbatim (no Rich markup: reasons may contain brackets)."""
    err.print(message, markup=False)


BatchOpt = typer.Option(ingest.BATCH_SIZE, "--batch-size", help="Records per transaction.")
RestartOpt = typer.Option(False, "--restart", help="Ignore the saved checkpoint; start over.")


_settings = load_settings


def _engine(settings: Settings) -> Engine:
    return migrated_engine(settings, exit_code=EXIT_ERROR)


def _day(value: str | None, option: str) -> dt.date | None:
    try:
        return ingest.parse_day(value)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option
        ) from exc


def _fetcher(settings: Settings, *, polite: bool) -> Fetcher:
    return Fetcher(
        min_interval_s=settings.arxiv_delay_s if polite else 0.0,
        timeout_s=settings.http_timeout_s,
        max_retries=settings.http_max_retries,
        backoff_s=settings.http_backoff_s,
    )


def _existing_file(path: Path) -> Path:
    if not path.is_file():
        say(f"no such file: {path}")
        raise typer.Exit(EXIT_ERROR)
    return path


def _run(
    engine: Engine,
    items: Iterator[Item],
    label: str,
    *,
    batch_size: int = ingest.BATCH_SIZE,
    note: str | None = None,
    read_ahead: bool = False,
) -> None:
    """Run the pipeline with a progress bar, print the summary, exit with the right status.
    `read_ahead`: parse in a second process (ingest.ReadAhead), for big local files."""
    if note:
        say(f"{label}: {note}")
    run_items: Iterable[ingest.Item | ingest.Ready] = items
    if read_ahead and ingest.can_read_ahead():
        run_items = ingest.ReadAhead(engine, items)  # forks before the progress bar's thread
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[stats]}"),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=None, stats="")

        def progress(done: int, total: int | None, s: ingest.IngestSummary) -> None:
            bar.update(task, completed=done, total=total, stats=f"{s.records} records")

        summary = ingest.run(engine, run_items, batch_size=batch_size, progress=progress)
    for r in summary.rejections:
        say(f"rejected {r.position}: {r.reason}")
    if summary.rejected > len(summary.rejections):
        say(f"... and {summary.rejected - len(summary.rejections)} more rejected")
    typer.echo(f"{label}: {summary.line()}")
    if summary.interrupted:
        say("interrupted: committed batches are kept; rerun the same command to resume")
        raise typer.Exit(EXIT_INTERRUPTED)
    if summary.error:
        say(f"error: {summary.error}")
        say("committed batches are kept; rerun the same command to resume")
        raise typer.Exit(EXIT_ERROR)
    if summary.rejected:
        raise typer.Exit(EXIT_REJECTED)


@ingest_app.command("arxiv")
def ingest_arxiv(
    category: str | None = typer.Option(None, "--category", help="e.g. cs.CL"),
    date_from: str | None = typer.Option(None, "--from", help="Submitted on/after YYYY-MM-DD."),
    date_until: str | None = typer.Option(None, "--until", help="Submitted on/before YYYY-MM-DD."),
    ids: list[str] = typer.Option([], "--id", help="An arXiv id (repeatable)."),
    ids_csv: str | None = typer.Option(None, "--ids", help="Comma-separated arXiv ids."),
    query: str | None = typer.Option(None, "--query", help="A raw arXiv search_query."),
    max_results: int | None = typer.Option(None, "--max", min=1, help="Stop after N results."),
    restart: bool = RestartOpt,
    batch_size: int = BatchOpt,
) -> None:
    """From the arXiv export API: a category and/or date range, a raw query, or ids."""
    settings = _settings()
    all_ids = [*ids, *[i.strip() for i in (ids_csv or "").split(",") if i.strip()]]
    d_from, d_until = _day(date_from, "--from"), _day(date_until, "--until")
    if not all_ids and not (query or category or d_from or d_until):
        raise typer.BadParameter("give --category/--from/--until, --query, or --id/--ids")
    engine = _engine(settings)
    url = settings.arxiv_api_url
    with _fetcher(settings, polite=True) as fetcher:
        if all_ids:
            _run(engine, arxiv_api.by_ids(fetcher, url, all_ids), "arxiv", batch_size=batch_size)
            return
        q = query or arxiv_api.build_query(category, d_from, d_until)
        point = ingest.resume_point(engine, f"arxiv_api|{url}|{q}|{max_results}", restart=restart)
        start = int((point.state or {}).get("start", 0))
        note = f"resuming at result {start} (use --restart to start over)" if start else None
        items = arxiv_api.search(
            fetcher, url, q, start=start, max_results=max_results, checkpoint_key=point.key
        )
        _run(engine, items, "arxiv", batch_size=batch_size, note=note)


@ingest_app.command("oai")
def ingest_oai(
    date_from: str | None = typer.Option(None, "--from", help="Datestamp from YYYY-MM-DD."),
    date_until: str | None = typer.Option(None, "--until", help="Datestamp until YYYY-MM-DD."),
    set_spec: str | None = typer.Option(None, "--set", help="e.g. cs or physics:hep-th"),
    restart: bool = RestartOpt,
    batch_size: int = BatchOpt,
) -> None:
    """Harvest arXiv OAI-PMH ListRecords (metadataPrefix arXiv); resumes after a failure."""
    settings = _settings()
    d_from, d_until = _day(date_from, "--from"), _day(date_until, "--until")
    engine = _engine(settings)
    url = settings.arxiv_oai_url
    key = oai.harvest_key(url, d_from, d_until, set_spec)
    point = ingest.resume_point(engine, key, restart=restart)
    st = point.state or {}
    note = None
    if st.get("token"):
        note = f"resuming with resumptionToken {st['token']} (use --restart to start over)"
    with _fetcher(settings, polite=True) as fetcher:
        items = oai.list_records(
            fetcher,
            url,
            date_from=d_from,
            date_until=d_until,
            set_spec=set_spec,
            token=st.get("token"),
            done=int(st.get("done", 0)),
            checkpoint_key=key,
        )
        _run(engine, items, "oai", batch_size=batch_size, note=note)


@ingest_app.command("snapshot")
def ingest_snapshot(
    file: Path = typer.Argument(..., help="arxiv-metadata-oai-snapshot.json (JSON lines)."),
    restart: bool = RestartOpt,
    batch_size: int = BatchOpt,
) -> None:
    """Stream the Kaggle arXiv metadata snapshot; resumes from the last committed line."""
    settings = _settings()
    path = _existing_file(file)
    engine = _engine(settings)
    items, point = ingest.from_file(
        engine, path, snapshot.read_snapshot, snapshot.snapshot_key(path), restart=restart
    )
    _run(engine, items, "snapshot", batch_size=batch_size, note=point.note, read_ahead=True)


def demo_path() -> Path:
    """The bundled demo sample (a few weeks of featured papers)."""
    return Path(str(resources.files("paperfeed") / "data" / "demo.jsonl"))


@ingest_app.command("jsonl")
def ingest_jsonl(
    file: Path | None = typer.Argument(None, help="A paperfeed JSONL file."),
    demo: bool = typer.Option(False, "--demo", help="Load the bundled demo sample."),
    restart: bool = RestartOpt,
    batch_size: int = BatchOpt,
) -> None:
    """Load paperfeed's own JSONL format (what `paperfeed export jsonl` writes)."""
    if (file is None) == (not demo):
        raise typer.BadParameter("give a FILE or --demo")
    settings = _settings()
    path = _existing_file(demo_path() if demo else file)  # type: ignore[arg-type]
    engine = _engine(settings)
    items, point = ingest.from_file(
        engine, path, jsonl.read_jsonl, jsonl.jsonl_key(path), restart=restart
    )
    _run(engine, items, "jsonl", batch_size=batch_size, note=point.note, read_ahead=True)


@ingest_app.command("hf-daily")
def ingest_hf_daily(
    file: Path | None = typer.Argument(None, help="A saved /api/daily_papers response."),
    date: str | None = typer.Option(None, "--date", help="Feed date YYYY-MM-DD."),
) -> None:
    """Hugging Face daily papers, from a saved response or the live endpoint for a date."""
    settings = _settings()
    day = _day(date, "--date")
    engine = _engine(settings)
    try:
        if file is not None:
            body = _existing_file(file).read_bytes()
        else:
            with _fetcher(settings, polite=False) as fetcher:
                body = hf_daily.fetch_daily(fetcher, settings.hf_daily_url, day)
        items = list(hf_daily.parse_daily(body, feed_date=day))
    except (SourceError, ValueError) as exc:
        say(f"error: {exc}")
        raise typer.Exit(EXIT_ERROR) from exc
    _run(engine, iter(items), "hf-daily")


@export_app.command("jsonl")
def export_jsonl(
    file: str = typer.Argument("-", help="Output file, or - for stdout."),
) -> None:
    """Write every paper as paperfeed JSONL (re-ingesting it changes nothing)."""
    settings = _settings()
    engine = _engine(settings)
    count = 0
    with _output(file) as out, db.read(engine) as conn:
        for paper in papers.iter_papers(conn):
            out.write(json.dumps(jsonl.paper_to_row(paper), ensure_ascii=False) + "\n")
            count += 1
    say(f"exported {count} papers" + ("" if file == "-" else f" to {file}"))


@contextlib.contextmanager
def _output(file: str) -> Iterator[TextIO]:
    """stdout, or a file written atomically (a temp file renamed into place on success)."""
    if file == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    target = Path(file)
    fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yield out
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
