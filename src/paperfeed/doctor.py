"""`paperfeed doctor`: check configuration, database, indexes, mail and queue; say what to fix.

Subsystems plug in their own checks with `@doctor.check("name")` in their module and list the
module in SUBSYSTEMS (imported lazily, so a missing optional subsystem is simply not checked).
"""

from __future__ import annotations

import importlib
import smtplib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from paperfeed import db
from paperfeed.config import Settings

OK, WARN, FAIL = "ok", "warn", "fail"
DEFAULT_SECRET = Settings.model_fields["secret_key"].default
MIN_SECRET_LEN = 32  # characters; `python -c "import secrets; print(secrets.token_urlsafe(32))"`
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}  # noqa: S104 - names, not a bind
SMTP_TIMEOUT_S = 5.0
# Modules that may register checks (search indexes, job queue, ...), imported if present.
SUBSYSTEMS = ("paperfeed.search", "paperfeed.jobs", "paperfeed.mail")


@dataclass(frozen=True)
class Result:
    """One check's verdict and, when it is not ok, the fix in one sentence."""

    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""


CheckFn = Callable[[Settings, Engine], list[Result]]
_CHECKS: dict[str, CheckFn] = {}


def check(name: str) -> Callable[[CheckFn], CheckFn]:
    """Register a doctor check (decorator); re-registering a name replaces it."""

    def deco(fn: CheckFn) -> CheckFn:
        _CHECKS[name] = fn
        return fn

    return deco


def is_public(settings: Settings) -> bool:
    """True when base_url points anywhere but this machine: then it is a production instance."""
    return (urlsplit(settings.base_url).hostname or "") not in LOCAL_HOSTS


@check("config")
def check_config(settings: Settings, engine: Engine) -> list[Result]:
    out: list[Result] = []
    url = urlsplit(settings.base_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        out.append(
            Result(
                "config.base_url",
                FAIL,
                f"base_url {settings.base_url!r} is not an absolute http(s) URL",
                "set PAPERFEED_BASE_URL to the public URL, e.g. https://papers.example.org",
            )
        )
    else:
        out.append(Result("config.base_url", OK, settings.base_url))
    public = is_public(settings)
    if settings.secret_key == DEFAULT_SECRET or len(settings.secret_key) < MIN_SECRET_LEN:
        why = "is the default" if settings.secret_key == DEFAULT_SECRET else "is short"
        out.append(
            Result(
                "config.secret_key",
                FAIL if public else WARN,
                f"secret key {why}" + (" on a public instance" if public else " (fine locally)"),
                f"set PAPERFEED_SECRET_KEY to {MIN_SECRET_LEN}+ random characters "
                '(python -c "import secrets; print(secrets.token_urlsafe(32))")',
            )
        )
    else:
        out.append(Result("config.secret_key", OK, "set"))
    if url.scheme == "https" and not settings.cookie_secure:
        out.append(
            Result(
                "config.cookie_secure",
                FAIL,
                "base_url is https but cookies are not marked Secure",
                "set PAPERFEED_COOKIE_SECURE=true",
            )
        )
    return out


@check("database")
def check_database(settings: Settings, engine: Engine) -> list[Result]:
    safe_url = engine.url.render_as_string(hide_password=True)
    try:
        applied, expected = db.current_heads(engine)
    except Exception as exc:  # any driver error: report it, don't crash the doctor
        return [
            Result(
                "database",
                FAIL,
                f"cannot connect to {safe_url}: {type(exc).__name__}: {str(exc)[:200]}",
                "check PAPERFEED_DATABASE_URL and that the server is running",
            )
        ]
    if applied != expected:
        state = "empty" if not applied else f"at {sorted(applied)}"
        return [
            Result(
                "database",
                FAIL,
                f"{safe_url} is {state}, code needs {sorted(expected)}",
                "run `paperfeed db upgrade`",
            )
        ]
    return [
        Result("database", OK, f"{safe_url} reachable, migrated ({', '.join(sorted(applied))})")
    ]


@check("mail")
def check_mail(settings: Settings, engine: Engine) -> list[Result]:
    if settings.mail_backend == "outbox":
        try:
            settings.outbox_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=settings.outbox_dir, prefix=".doctor-"):
                pass
        except OSError as exc:
            return [
                Result(
                    "mail",
                    FAIL,
                    f"outbox {settings.outbox_dir} is not writable: {exc}",
                    "fix the directory's permissions or set PAPERFEED_DATA_DIR",
                )
            ]
        detail = f"outbox {settings.outbox_dir} writable"
        if is_public(settings):
            return [
                Result(
                    "mail",
                    WARN,
                    detail + ", but a public instance's mail never leaves this machine",
                    "set PAPERFEED_MAIL_BACKEND=smtp and PAPERFEED_SMTP_*",
                )
            ]
        return [Result("mail", OK, detail)]
    if settings.mail_backend != "smtp":
        return [
            Result(
                "mail",
                FAIL,
                f"unknown mail backend {settings.mail_backend!r}",
                "set PAPERFEED_MAIL_BACKEND to outbox or smtp",
            )
        ]
    return _check_smtp(settings)


def _check_smtp(settings: Settings) -> list[Result]:
    """Open a session as the senders do (TLS, certificate check, AUTH), try MAIL FROM, RSET.

    MAIL FROM (never followed by RCPT/DATA, so nothing is sent) is where a server says it wants
    STARTTLS or AUTH first, or does not accept our sender address."""
    from paperfeed.mail import MailError, classify_smtp_error, open_smtp, sender_address

    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        smtp = open_smtp(settings, timeout_s=SMTP_TIMEOUT_S)
        try:
            code, reply = smtp.mail(sender_address(settings))
            if code != 250:
                refused = smtplib.SMTPSenderRefused(code, reply, sender_address(settings))
                raise classify_smtp_error(refused, settings, connecting=True)
            smtp.rset()
        finally:
            smtp.close()
    except (MailError, OSError, smtplib.SMTPException) as exc:
        return [
            Result(
                "mail",
                FAIL,
                f"SMTP {where}: {type(exc).__name__}: {str(exc)[:300]}",
                "check PAPERFEED_SMTP_HOST/PORT/TLS/CA_FILE/USER/PASSWORD "
                "and that the server accepts us",
            )
        ]
    how = {"none": "plain text", "starttls": "STARTTLS", "tls": "implicit TLS"}[settings.smtp_tls]
    if settings.smtp_tls != "none":
        how += ", certificate verified" if settings.smtp_tls_verify else ", certificate NOT checked"
    if settings.smtp_user:
        how += f", authenticated as {settings.smtp_user}"
    out = [Result("mail", OK, f"SMTP {where} accepts us ({how})")]
    if settings.smtp_tls == "none" and settings.smtp_host not in LOCAL_HOSTS:
        out.append(
            Result(
                "mail.tls",
                WARN,
                f"mail{' and the SMTP password' if settings.smtp_user else ''} cross the "
                f"network to {settings.smtp_host} unencrypted",
                "set PAPERFEED_SMTP_TLS=starttls (port 587) or tls (port 465)",
            )
        )
    elif settings.smtp_tls != "none" and not settings.smtp_tls_verify:
        out.append(
            Result(
                "mail.tls",
                WARN,
                "the SMTP server's certificate is not verified: anyone on the path can "
                "impersonate it",
                "set PAPERFEED_SMTP_TLS_VERIFY=true and PAPERFEED_SMTP_CA_FILE to its CA",
            )
        )
    return out


@check("search")
def check_search(settings: Settings, engine: Engine) -> list[Result]:
    from paperfeed.search import is_indexed, store

    if store.backend(settings) == store.POSTGRES:
        return _check_pg_search(settings, engine) + _check_sentences(settings, engine)
    if not is_indexed(settings):
        return [
            Result(
                "search",
                FAIL,
                f"no search index under {settings.data_dir / 'search'}",
                "run `paperfeed index` (and schedule it after every ingestion)",
            )
        ]
    return [Result("search", OK, "search indexes present"), *_check_sentences(settings, engine)]


def _check_sentences(settings: Settings, engine: Engine) -> list[Result]:
    """Papers embedded before sentence vectors existed (migration 0010) rank by their paper
    vector alone until `paperfeed index` adds them."""
    from paperfeed.search.indexing import sentences_missing

    if not (settings.search_semantic and settings.search_sentences):
        return []
    try:
        missing = sentences_missing(engine)
    except SQLAlchemyError:  # unreachable or unmigrated: the database check says why
        return []
    if not missing:
        return []
    return [
        Result(
            "search.sentences",
            WARN,
            f"{missing} papers have no sentence vectors yet: search ranks them by their paper "
            "vector alone",
            "run `paperfeed index` (it embeds only their sentences)",
        )
    ]


def _check_pg_search(settings: Settings, engine: Engine) -> list[Result]:
    """PostgreSQL search: the tsvector column, its word counts, pgvector, and embeddings not
    yet synced."""
    from paperfeed.search import pg

    try:
        st = pg.status(engine)
    except Exception as exc:  # unreachable database: check_database says why
        return [Result("search", FAIL, f"PostgreSQL search: {type(exc).__name__}", "see database")]
    if not st.keyword_column:
        return [
            Result("search", FAIL, "papers.search_tsv is missing", "run `paperfeed db upgrade`")
        ]
    out = [Result("search", OK, f"PostgreSQL full-text search over {st.papers} papers")]
    if not st.lexicon_current:
        out.append(
            Result(
                "search.words",
                WARN,
                f"word counts for ranking ({st.lexicon_words} words) predate the catalog's "
                "latest change: new words are counted live, each search a little slower",
                "run `paperfeed index` (and schedule it after every ingestion)",
            )
        )
    if not settings.search_semantic:
        return out
    if not st.pgvector:
        out.append(
            Result(
                "search.vectors",
                WARN,
                "pgvector is not installed on the server: semantic search reads vector files "
                f"under {settings.data_dir / 'search'} (one machine only)",
                "install pgvector, `CREATE EXTENSION vector`, and recreate the database's "
                "search columns (see README ## Production)",
            )
        )
    elif st.embedded < st.papers or st.vectors < st.embedded:
        out.append(
            Result(
                "search.vectors",
                WARN,
                f"{st.papers - st.embedded} papers without embeddings, "
                f"{max(0, st.embedded - st.vectors)} embeddings not yet in pgvector",
                "run `paperfeed index` (and schedule it after every ingestion)",
            )
        )
    else:
        out.append(Result("search.vectors", OK, f"pgvector HNSW holds {st.vectors} vectors"))
    return out


@check("queue")
def check_queue(settings: Settings, engine: Engine) -> list[Result]:
    from paperfeed.jobs import make_huey

    where = settings.queue_url or f"SQLite file {settings.data_dir / 'queue.db'}"
    try:
        pending = make_huey(settings).pending_count()
    except Exception as exc:  # a missing client library, a refused connection...
        return [
            Result(
                "queue",
                FAIL,
                f"job queue {where}: {type(exc).__name__}: {str(exc)[:200]}",
                "check PAPERFEED_QUEUE_URL and that the queue server runs",
            )
        ]
    return [Result("queue", OK, f"job queue {where} reachable, {pending} job(s) pending")]


def load_subsystem_checks() -> None:
    """Import the subsystem modules that exist, so their checks register themselves."""
    for name in SUBSYSTEMS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but something it needs is missing
                raise


def run(settings: Settings, engine: Engine) -> list[Result]:
    """Every registered check, in registration order; a crashing check is itself a failure."""
    load_subsystem_checks()
    results: list[Result] = []
    for name, fn in list(_CHECKS.items()):
        try:
            results.extend(fn(settings, engine))
        except Exception as exc:
            results.append(Result(name, FAIL, f"check crashed: {type(exc).__name__}: {exc}"))
    return results
