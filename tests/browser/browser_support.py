"""Shared by the browser tests, `make screenshots` and bench/page_weight.py: a demo catalog on
an on-disk SQLite, the real app under uvicorn on a free loopback port, headless Debian Chromium."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paperfeed import db, papers
from paperfeed.config import Settings
from paperfeed.ingest_cli import demo_path
from paperfeed.search import index_pending
from paperfeed.sources import PaperRecord
from paperfeed.sources.jsonl import read_jsonl

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE_JS = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
# Debian's chromium, never Playwright's own download (it cannot be fetched here).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


class MissingPrerequisite(RuntimeError):
    """Chromium, axe-core or the demo data is not installed."""


def demo_records() -> list[PaperRecord]:
    """The bundled demo sample (src/paperfeed/data/demo.jsonl: 20 featured days, ~400 papers)."""
    path = demo_path()
    if not path.exists():
        raise MissingPrerequisite(f"{path} is not present")
    items = read_jsonl(path)
    return [r for r in items if isinstance(r, PaperRecord)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    settings: Settings
    engine: Any


@contextmanager
def live_server(workdir: Path) -> Iterator[LiveServer]:
    """create_app on a demo catalog, served by uvicorn on 127.0.0.1:<free port> in a thread."""
    import uvicorn

    from paperfeed.app import create_app

    port = _free_port()
    settings = Settings(
        database_url=f"sqlite:///{workdir / 'paperfeed.db'}",
        data_dir=workdir / "data",
        secret_key="browser-test-secret",
        base_url=f"http://127.0.0.1:{port}",
    )
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    with db.transaction(engine) as conn:
        papers.upsert_records(conn, demo_records())
    index_pending(engine, settings)  # search as you type and similar papers need the index
    app = create_app(settings, engine)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(url=f"http://127.0.0.1:{port}", settings=settings, engine=engine)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium driven by Playwright."""
    if not CHROMIUM.exists():
        raise MissingPrerequisite("chromium missing: run scripts/ensure-chromium.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def run_axe(page: Any) -> list[dict[str, Any]]:
    """axe-core on the current page; returns the serious and critical violations.

    The CSP forbids inline scripts (add_script_tag by path injects inline), so axe's source is
    evaluated through the DevTools protocol, which CSP does not govern.
    """
    if not AXE_JS.exists():
        raise MissingPrerequisite("axe-core missing: run scripts/ensure-chromium.sh")
    page.evaluate(AXE_JS.read_text() + "\n;undefined")
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [v for v in result if v.get("impact") in ("serious", "critical")]


def describe(violations: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(n["target"][0] if n["target"] else "?" for n in v["nodes"][:5])
        for v in violations
    )
