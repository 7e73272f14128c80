"""Prometheus metrics: the counters other modules increment, and the /metrics exposition.

Any module may increment these (e.g. `metrics.EMAILS.labels(status="sent").inc()`); they are
no-ops in cost terms (a lock and an add). With several processes on one machine (uvicorn
workers, the queue worker, cron-run CLI jobs) set PROMETHEUS_MULTIPROC_DIR to one shared,
empty-at-boot directory: every process then writes its samples there and /metrics, served by
any web worker, reports the sum over all of them (prometheus_client's multiprocess mode).
`paperfeed serve --workers N` sets it up by itself when it is not set.

Values that are state rather than events (queue depth, catalog size) are read at scrape time
from the database or the queue by the gauge sources registered with `register_gauge`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from paperfeed.models import Paper, table_of

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Seconds; spans a cached page (~2 ms) to a slow search (> 1 s) around the 200 ms p99 target.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUEST_LATENCY = Histogram(
    "paperfeed_http_request_duration_seconds",
    "HTTP request latency by route template, method and status.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
INGESTED = Counter(
    "paperfeed_ingested_records",
    "Records processed by ingestion, by source and outcome (new/updated/unchanged/rejected).",
    ["source", "outcome"],
)
EMAILS = Counter(
    "paperfeed_emails",
    "Emails handed to the mail backend, by kind (digest/confirm/reset...) and status.",
    ["kind", "status"],  # status: sent | failed | bounced
)
JOBS = Counter(
    "paperfeed_jobs",
    "Background jobs run by the worker, by name and outcome (ok/error).",
    ["name", "outcome"],
)


def record_ingest(
    source: str, new: int = 0, updated: int = 0, unchanged: int = 0, rejected: int = 0
) -> None:
    """Count one ingestion batch's outcome."""
    for outcome, n in (
        ("new", new),
        ("updated", updated),
        ("unchanged", unchanged),
        ("rejected", rejected),
    ):
        if n:
            INGESTED.labels(source=source, outcome=outcome).inc(n)


# ---- Scrape-time gauges ------------------------------------------------------------------

GaugeSource = Callable[[Engine], Iterable[tuple[str, str, float]]]  # (name, help, value)


@dataclass
class _Gauges:
    sources: list[GaugeSource]


_GAUGES = _Gauges(sources=[])


def register_gauge(source: GaugeSource) -> GaugeSource:
    """Add a scrape-time gauge source, e.g. the job queue's depth (decorator; idempotent)."""
    if source not in _GAUGES.sources:
        _GAUGES.sources.append(source)
    return source


@register_gauge
def catalog_gauges(engine: Engine) -> Iterable[tuple[str, str, float]]:
    """Catalog size (max id: an index lookup, unlike count(*) on a big table)."""
    papers = table_of(Paper)
    with engine.connect() as conn:
        top = conn.execute(select(func.max(papers.c.id))).scalar() or 0
    yield (
        "paperfeed_papers_max_id",
        "Highest paper id (approximately the catalog size).",
        float(top),
    )


class _ScrapeCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[Any]:
        for source in list(_GAUGES.sources):
            try:
                values = list(source(self.engine))
            except Exception:  # a broken subsystem must not break /metrics
                name = getattr(source, "__name__", "source")
                yield GaugeMetricFamily(
                    f"paperfeed_gauge_source_up_{name}", f"0 when {name} failed.", value=0.0
                )
                continue
            for name, help_, value in values:
                yield GaugeMetricFamily(name, help_, value=value)


def multiprocess_mode() -> bool:
    """True when prometheus_client chose its multiprocess values (PROMETHEUS_MULTIPROC_DIR)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def exposition(engine: Engine) -> bytes:
    """The Prometheus text format for this process, or all processes in multiprocess mode."""
    registry: CollectorRegistry = REGISTRY
    if multiprocess_mode():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # reads the directory from PROMETHEUS_MULTIPROC_DIR
    scrape = CollectorRegistry()
    scrape.register(_ScrapeCollector(engine))
    return generate_latest(registry) + generate_latest(scrape)
