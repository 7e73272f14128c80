"""Browser-test fixtures: the real app under a real uvicorn on loopback, headless Debian Chromium.

The server runs once per session on a temp on-disk SQLite loaded with the demo sample; each test
gets a fresh browser context (own cookies). Screenshots land in artifacts/screenshots/.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from paperfeed import db, papers
from paperfeed.config import Settings
from paperfeed.sources import PaperRecord, parse_date

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE_JS = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
SHARED_SAMPLE = ROOT.parent / "shared" / "data" / "hf_daily_papers.jsonl"
DEMO_DAYS = 15  # featured days loaded from the shared sample: ~300 papers, loads in about a second
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.browser)


def _hf_record(row: dict[str, Any]) -> PaperRecord:
    """A row of the shared HF daily sample (paperfeed's JSONL shape) as a PaperRecord."""
    return PaperRecord(
        arxiv_id=row["arxiv_id"],
        title=row["title"],
        source="jsonl",
        abstract=row.get("abstract"),
        authors=list(row.get("authors") or []),
        categories=list(row.get("categories") or []),
        published=parse_date(row.get("published")),
        featured_date=parse_date(row.get("featured_date")),
        upvotes=row.get("upvotes"),
        num_comments=row.get("num_comments"),
        code_url=f"https://github.com/{row['github_repo']}" if row.get("github_repo") else None,
        code_stars=row.get("github_stars"),
        project_page=row.get("project_page"),
        submitted_by_name=row.get("submitted_by"),
    )


def demo_records() -> list[PaperRecord]:
    """The most recent DEMO_DAYS featured days of the shared sample."""
    if not SHARED_SAMPLE.exists():
        pytest.skip(f"{SHARED_SAMPLE} is not present")
    rows = [json.loads(line) for line in SHARED_SAMPLE.read_text().splitlines() if line.strip()]
    days = sorted({r["featured_date"] for r in rows if r.get("featured_date")})[-DEMO_DAYS:]
    keep = set(days)
    return [_hf_record(r) for r in rows if r.get("featured_date") in keep]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    settings: Settings
    engine: Any


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """create_app served by uvicorn on 127.0.0.1:<free port> in a background thread."""
    import uvicorn

    from paperfeed.app import create_app

    tmp = tmp_path_factory.mktemp("browser")
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'paperfeed.db'}",
        data_dir=tmp / "data",
        secret_key="browser-test-secret",
    )
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    with db.transaction(engine) as conn:
        papers.upsert_records(conn, demo_records())
    port = _free_port()
    settings = settings.model_copy(update={"base_url": f"http://127.0.0.1:{port}"})
    app = create_app(settings, engine)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield LiveServer(url=f"http://127.0.0.1:{port}", settings=settings, engine=engine)
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Debian Chromium for the session (never Playwright's own download)."""
    if not CHROMIUM.exists():
        pytest.skip("chromium missing: run scripts/ensure-chromium.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _new_page(browser: Any, live_server: LiveServer, viewport: dict[str, int], **kw: Any) -> Any:
    context = browser.new_context(viewport=viewport, base_url=live_server.url, **kw)
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if msg.type == "error" else None,
    )
    page.js_errors = errors  # checked by tests that care (CSP violations show up here)
    return page


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A desktop-sized page in a fresh context (own cookies)."""
    p = _new_page(browser, live_server, DESKTOP)
    yield p
    p.context.close()


@pytest.fixture
def phone_page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    p = _new_page(browser, live_server, PHONE, is_mobile=True, has_touch=True)
    yield p
    p.context.close()


@pytest.fixture
def dark_page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    p = _new_page(browser, live_server, DESKTOP, color_scheme="dark")
    yield p
    p.context.close()


def _screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    """Save artifacts/screenshots/<name>.png (not committed; docs/screenshots/ holds README's)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def _run_axe(page: Any) -> list[dict[str, Any]]:
    """axe-core on the current page; returns the serious and critical violations.

    The CSP forbids inline scripts (add_script_tag by path injects inline), so axe's source is
    evaluated through the DevTools protocol, which CSP does not govern.
    """
    if not AXE_JS.exists():
        pytest.skip("axe-core missing: run scripts/ensure-chromium.sh")
    page.evaluate(AXE_JS.read_text() + "\n;undefined")
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [v for v in result if v.get("impact") in ("serious", "critical")]


def _describe(violations: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(n["target"][0] if n["target"] else "?" for n in v["nodes"][:5])
        for v in violations
    )


@pytest.fixture
def shoot() -> Any:
    """shoot(page, name): save a screenshot into artifacts/screenshots/."""
    return _screenshot


@pytest.fixture
def axe() -> Any:
    """axe(page) -> (serious/critical violations, readable summary)."""

    def check(page: Any) -> tuple[list[dict[str, Any]], str]:
        found = _run_axe(page)
        return found, _describe(found)

    return check
