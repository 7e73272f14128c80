"""Health, readiness, Prometheus metrics and the per-request JSON log."""

import json
import logging

from sqlalchemy import text

from paperfeed import db, logs, metrics


def test_healthz_and_readyz(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["database"] == "ok"


def test_readyz_reports_an_unmigrated_database_with_the_fix(client, engine):
    with db.transaction(engine) as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["fix"] == "paperfeed db upgrade"


def test_readyz_reports_an_unreachable_database(client, engine, app):
    class Broken:
        def connect(self):
            raise OSError("connection refused")

    app.state.engine = Broken()
    r = client.get("/readyz")
    assert r.status_code == 503 and "unreachable" in r.json()["database"]
    app.state.engine = engine


def _sample(body: str, route: str, status: str) -> float:
    for line in body.splitlines():
        if (
            line.startswith("paperfeed_http_request_duration_seconds_count{")
            and f'route="{route}"' in line
            and f'status="{status}"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _all_404(body: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("paperfeed_http_request_duration_seconds_count{")
        and 'status="404"' in line
    )


def test_metrics_count_requests_by_route_template_not_raw_path(client):
    before = client.get("/metrics").text
    client.get("/papers/2405.99999")
    client.get("/papers/2405.99998")
    client.get("/no/such/page/at/all")
    after = client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    body = after.text
    route = "/papers/{arxiv_id:path}"
    assert _sample(body, route, "404") - _sample(before, route, "404") == 2
    assert _all_404(body) - _all_404(before) == 3  # the unknown path is counted too...
    assert "2405.99999" not in body and "/no/such/page" not in body  # ...under a template
    assert "paperfeed_papers_max_id" in body


def test_metrics_counters_are_shared_with_other_modules(client):
    metrics.record_ingest("test-source", new=3, rejected=1)
    metrics.EMAILS.labels(kind="digest", status="sent").inc()
    body = client.get("/metrics").text
    assert 'paperfeed_ingested_records_total{outcome="new",source="test-source"}' in body
    assert 'paperfeed_emails_total{kind="digest",status="sent"}' in body


def test_a_failing_gauge_source_does_not_break_metrics(client):
    def broken_queue(engine):
        raise ConnectionError("redis down")
        yield  # pragma: no cover

    metrics.register_gauge(broken_queue)
    try:
        r = client.get("/metrics")
        assert r.status_code == 200
        assert "paperfeed_gauge_source_up_broken_queue 0.0" in r.text
    finally:
        metrics._GAUGES.sources.remove(broken_queue)


def test_one_log_line_per_request_with_request_id(client, caplog):
    with caplog.at_level(logging.INFO, logger="paperfeed.access"):
        r = client.get("/papers/2405.12345", headers={"X-Request-ID": "abc-123"})
        bad = client.get("/healthz", headers={"X-Request-ID": "evil\nid"})
    assert r.headers["x-request-id"] == "abc-123"
    assert bad.headers["x-request-id"] != "evil\nid" and len(bad.headers["x-request-id"]) == 32
    records = [rec for rec in caplog.records if rec.name == "paperfeed.access"]
    assert len(records) == 2
    line = json.loads(logs.JsonFormatter().format(records[0]))
    assert line["method"] == "GET"
    assert line["path"] == "/papers/{arxiv_id:path}"
    assert line["status"] == 404
    assert line["request_id"] == "abc-123"
    assert line["duration_ms"] > 0
    assert line["msg"] == "request" and line["level"] == "info"


def test_in_flight_limit_queues_requests_beyond_the_pool() -> None:
    import asyncio
    import concurrent.futures

    import httpx

    from paperfeed import db
    from paperfeed.web.ops import InFlightLimit, pool_limit

    assert pool_limit(db.make_engine("postgresql+psycopg://u@h/db")) == 15  # (10 + 20) // 2
    assert pool_limit(db.make_engine("sqlite:///never-created.db")) is None  # never blocks
    inside, peak = 0, 0

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        await asyncio.sleep(0.02)
        inside -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=InFlightLimit(app, limit=2))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            rs = await asyncio.gather(*(client.get("/") for _ in range(6)))
        return [r.status_code for r in rs]

    # In a thread of its own: another test of the session may leave an event loop running here.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, run()).result() == [200] * 6
    assert peak == 2


def test_web_threads_bound_the_handlers_run_at_once(settings, engine):
    """PAPERFEED_WEB_THREADS: sync handlers share this many threads per process (anyio's
    default limiter), not anyio's 40."""
    from fastapi.testclient import TestClient

    from paperfeed.app import create_app

    default = 4 if settings.database_url.startswith("postgresql") else 2
    for setting, n in ((0, default), (2, 2), (5, 5)):
        app = create_app(settings.model_copy(update={"web_threads": setting}), engine)

        @app.get("/test-threads")
        async def threads() -> int:
            import anyio.to_thread

            return int(anyio.to_thread.current_default_thread_limiter().total_tokens)

        with TestClient(app) as c:
            assert c.get("/test-threads").json() == n
            assert c.get("/healthz").status_code == 200


def test_a_serving_process_settles_before_its_first_request(
    settings, engine, monkeypatch, tmp_path
):
    """app_from_env (what each uvicorn worker runs) loads every page template up front and
    freezes what is loaded, so the garbage collector's full passes skip it (app.settle)."""
    import gc

    from paperfeed.app import app_from_env

    url = settings.database_url
    if settings.is_sqlite:  # a file: the in-memory database is the fixture engine's own
        url = f"sqlite:///{tmp_path / 'serve.db'}"
        db.upgrade(db.make_engine(url))
    monkeypatch.setenv("PAPERFEED_DATABASE_URL", url)
    monkeypatch.setenv("PAPERFEED_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PAPERFEED_SECRET_KEY", "test-secret")
    gc.unfreeze()
    try:
        app = app_from_env()
        assert gc.get_freeze_count() > 10_000
        loaded = {t.name for t in app.state.templates.env.cache.values() if t is not None}
        assert {"listing.html", "paper.html", "search.html", "base.html"} <= loaded
        assert not any(name.startswith("mail/") for name in loaded)
    finally:
        gc.unfreeze()
