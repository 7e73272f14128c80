"""Settings from PAPERFEED_* environment variables; the only reader of the environment."""

from __future__ import annotations

from pathlib import Path

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

    # Mail
    mail_backend: str = "outbox"  # "outbox" (local Maildir) | "smtp"
    mail_from: str = "paperfeed <noreply@localhost>"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_tls: str = "none"  # "none" | "starttls" | "tls"

    # Search (see README ## Search)
    search_semantic: bool = True  # False = keyword-only search; no model is loaded
    search_max_tokens: int = 256  # embedding truncation (MiniLM-L6 was trained at 256 word pieces)
    search_embed_batch: int = 8  # texts per ONNX run; bigger batches only add padding + memory
    search_threads: int = 0  # onnxruntime/faiss threads of `paperfeed index`; 0 = all cores
    search_query_threads: int = 1  # per query: each web worker runs one; more threads only spin
    search_exact_max: int = 200_000  # above this many vectors, use faiss IVF-SQ8 instead of exact
    search_ivf_nprobe: int = 64  # IVF cells per query: recall@10 0.953 at 1M (32 gave 0.919)
    # Trending (see paperfeed.ranking for the formula and why each default is what it is)
    trending_gravity_s: float = 86400.0  # seconds of age that cost one point (1 day)
    trending_vote_weight: float = 1.0  # points per tenfold upvotes (log10)
    trending_comment_weight: float = 0.5  # points per tenfold comments (log10)
    trending_star_weight: float = 0.25  # points per tenfold GitHub stars (log10)
    trending_growth_weight: float = 0.5  # points per tenfold stars gained per day (log10)
    trending_cache_s: float = 15.0  # how long a listing response may be reused (seconds)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides (tests, CLI flags)."""
    return Settings(**overrides)  # type: ignore[arg-type]
