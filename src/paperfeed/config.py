"""Settings from PAPERFEED_* environment variables; the only reader of the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Typed configuration. Built once at the edge (CLI, app factory) and passed down."""

    model_config = SettingsConfigDict(env_prefix="PAPERFEED_", env_file=None, extra="ignore")

    # Storage
    database_url: str = "sqlite:///paperfeed.db"
    data_dir: Path = Path("paperfeed-data")  # search indexes, mail outbox, caches

    # Web
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str = "dev-insecure-change-me"  # noqa: S105 - signs tokens and cookies; set it in production
    site_name: str = "paperfeed"
    cookie_secure: bool = False  # True behind HTTPS

    # Sources (network access happens only to these)
    arxiv_api_url: str = "https://export.arxiv.org/api/query"
    arxiv_oai_url: str = "https://oaipmh.arxiv.org/oai"
    hf_daily_url: str = "https://huggingface.co/api/daily_papers"
    arxiv_delay_s: float = 3.0  # arXiv API terms: at most one request every 3 seconds
    http_timeout_s: float = 30.0
    http_max_retries: int = 4
    http_backoff_s: float = 2.0  # first retry wait; doubles per retry unless Retry-After says

    # Community: accounts, sessions, abuse limits
    session_hours: int = 12  # lifetime of a session without "remember me"
    remember_days: int = 30  # lifetime of a "remember me" session (persistent cookie)
    # argon2id cost: RFC 9106 §4 second recommended option (t=3, 64 MiB, p=4); tests lower it.
    password_time_cost: int = 3
    password_memory_kib: int = 65536
    password_parallelism: int = 4
    verify_token_hours: int = 48  # email-verification link lifetime
    reset_token_hours: int = 2  # password-reset link lifetime
    signin_limit_per_ip: int = 30  # sign-in attempts per IP per 15-minute window
    signin_limit_per_name: int = 10  # attempts per login name per 15-minute window
    lockout_after: int = 5  # consecutive failed sign-ins before an account locks
    lockout_base_s: int = 60  # first lockout; doubles per further failure, capped at 1 hour
    signup_limit_per_ip: int = 10  # sign-ups per IP per hour
    submit_daily_limit: int = 10  # paper submissions per user per UTC day
    comment_limit: int = 20  # comments per user per 10-minute window
    mail_limit_per_ip: int = 5  # verification/reset mails requested per IP per hour

    # Mail
    mail_backend: str = "outbox"  # "outbox" (local Maildir) | "smtp"
    mail_from: str = "paperfeed <noreply@localhost>"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_tls: str = "none"  # "none" | "starttls" (usually port 587) | "tls" (usually port 465)
    smtp_ca_file: str = ""  # PEM CA bundle to verify the server with; "" = the system's CAs
    smtp_tls_verify: bool = True  # check the server's certificate and host name (keep it on)
    smtp_timeout_s: float = 30.0  # per SMTP command; a silent server counts as a transient failure
    mail_rate_per_s: float = 0.0  # sending rate limit per sending process, messages/s (0 = none)
    mail_retries: int = 3  # extra tries after a transient failure (4xx, dropped connection)
    mail_retry_backoff_s: float = 1.0  # first retry delay; doubles on each further try

    # Digests (see README "Email digests")
    queue_url: str = ""  # "" = embedded SqliteHuey under data_dir; redis://... or postgresql://...
    digest_bounce_threshold: int = 3  # permanent (5xx) failures before an address is "bouncing"
    digest_max_attempts: int = 5  # transient-failure sends of one message before it is "failed"
    digest_claim_batch: int = 100  # messages one sender claims at a time
    digest_claim_timeout_s: int = 600  # a claim older than this is abandoned and re-claimable
    digest_trending_daily: int = 5  # "Trending" items in a daily digest
    digest_trending_weekly: int = 10  # "Trending" items in a weekly digest (the week's best)
    digest_for_you_max: int = 6  # "For you" items per digest
    digest_similarity_min: float = 0.55  # cosine to a subscriber's liked papers to count as similar
    digest_confirm_max_age_s: int = 3 * 24 * 3600  # confirmation links expire after 3 days
    digest_link_max_age_s: int = 180 * 24 * 3600  # unsubscribe/manage/feedback links: 180 days
    digest_confirm_per_hour: int = 3  # confirmation mails per address per hour (anti mail-bomb)
    digest_unsubscribe_mailto: str = ""  # List-Unsubscribe mailto address; "" = mail_from's

    # Search (see README ## Search)
    # auto = PostgreSQL full-text search + pgvector when the database is PostgreSQL, else the
    # embedded tantivy + vector files in data_dir; embedded | postgres force one.
    search_backend: Literal["auto", "embedded", "postgres"] = "auto"
    search_semantic: bool = True  # False = keyword-only search; no model is loaded
    search_max_tokens: int = 256  # embedding truncation (MiniLM-L6 was trained at 256 word pieces)
    search_embed_batch: int = 1  # texts per ONNX run; >1 makes a vector depend on its batch
    # A vector per abstract sentence too, and semantic candidates scored by paper + best
    # sentence (SciFact hybrid nDCG@10 0.732 -> 0.741); costs ~2x the embedding time.
    search_sentences: bool = True
    search_threads: int = 0  # onnxruntime/faiss threads of `paperfeed index`; 0 = all cores
    search_query_threads: int = 1  # per query: each web worker runs one; more threads only spin
    # Vectors above which faiss IVF-SQ8 replaces exact search (at 100k: exact 14.5 ms per query,
    # IVF 2.5 ms with recall@10 0.954; bench/search_latency.py, README ## Search).
    search_exact_max: int = 50_000
    search_ivf_nprobe: int = 64  # IVF cells per query: recall@10 0.953 at 1M (32 gave 0.919)
    # pgvector HNSW candidate list per query (raised to the k asked, capped at 1000): recall vs
    # latency, measured by bench/pgvector_vs_embedded.py (README "Search on PostgreSQL").
    search_hnsw_ef_search: int = 200
    # ... for a paper page's similar papers (its ~20 nearest): at 300k papers ef 100 finds
    # 0.980 of the exact top 10 in 3.3 ms, 200 0.997 in 6.1 ms (README ## Production).
    similar_hnsw_ef_search: int = 100
    # PostgreSQL: how long a paper's similar-papers list is reused (models.SimilarPapers); new
    # papers join other papers' lists after at most this long. 0 = compute on every view.
    similar_cache_s: float = 86400.0
    # Trending (see paperfeed.ranking for the formula and why each default is what it is)
    trending_gravity_s: float = 86400.0  # seconds of age that cost one point (1 day)
    trending_vote_weight: float = 1.0  # points per tenfold upvotes (log10)
    trending_comment_weight: float = 0.5  # points per tenfold comments (log10)
    trending_star_weight: float = 0.25  # points per tenfold GitHub stars (log10)
    trending_growth_weight: float = 0.5  # points per tenfold stars gained per day (log10)
    trending_cache_s: float = 15.0  # how long a listing response may be reused (seconds)

    # Operations
    # Threads per web process that run request handlers (anyio's default is 40); 0: 2 on
    # SQLite, 4 on PostgreSQL. More threads only queue on the GIL: at 100 users on 2 cores,
    # 2 instead of 40 cut SQLite's p99 726 -> 386 ms. A PostgreSQL handler also waits on
    # round trips, with the GIL free: 4 cut the p99 there 465 -> 269 ms (2 web workers; SQLite
    # 58 -> 76 ms with 4). bench/load.py, README ## Production.
    web_threads: int = 0

    @property
    def handler_threads(self) -> int:
        """web_threads, or its default for the database."""
        if self.web_threads > 0:
            return self.web_threads
        return 4 if self.database_url.startswith("postgresql") else 2

    log_format: str = "json"  # "json" (one object per line, for log shippers) | "text"
    log_level: str = "info"

    @model_validator(mode="after")
    def _search_backend_fits_database(self) -> Settings:
        if self.search_backend == "postgres" and not self.database_url.startswith("postgresql"):
            raise ValueError(
                "PAPERFEED_SEARCH_BACKEND=postgres needs a postgresql:// PAPERFEED_DATABASE_URL "
                "(use auto or embedded with SQLite)"
            )
        return self

    @property
    def database_session(self) -> dict[str, str] | None:
        """PostgreSQL settings every connection opens with (db.make_engine): the HNSW candidate
        list then needs no SET LOCAL before each vector query."""
        if not self.database_url.startswith("postgresql"):
            return None
        return {"hnsw.ef_search": str(self.search_hnsw_ef_search)}

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides (tests, CLI flags)."""
    return Settings(**overrides)  # type: ignore[arg-type]
