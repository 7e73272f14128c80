"""Browser-test fixtures: the real app under a real uvicorn on loopback, headless Debian Chromium.

The server runs once per session on a temp on-disk SQLite loaded with the demo sample; each test
gets a fresh browser context (own cookies). Screenshots land in artifacts/screenshots/;
`pytest --screenshots-dir docs/screenshots` (what `make screenshots` runs) also writes the
README's ones there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser import browser_support as bs

SCREENSHOTS = bs.ROOT / "artifacts" / "screenshots"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--screenshots-dir",
        default=None,
        help="also write the README screenshots (docs) into this folder",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[bs.LiveServer]:
    try:
        with bs.live_server(tmp_path_factory.mktemp("browser")) as server:
            yield server
    except bs.MissingPrerequisite as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        with bs.chromium() as b:
            yield b
    except bs.MissingPrerequisite as exc:
        pytest.skip(str(exc))


def _new_page(browser: Any, server: bs.LiveServer, viewport: dict[str, int], **kw: Any) -> Any:
    context = browser.new_context(viewport=viewport, base_url=server.url, **kw)
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.js_errors = errors  # CSP violations and 404ed assets show up here too
    return page


@pytest.fixture
def page(browser: Any, live_server: bs.LiveServer) -> Iterator[Any]:
    """A desktop-sized page (1280 wide) in a fresh context (own cookies)."""
    p = _new_page(browser, live_server, bs.DESKTOP)
    yield p
    p.context.close()


@pytest.fixture
def phone_page(browser: Any, live_server: bs.LiveServer) -> Iterator[Any]:
    """A phone-sized page (390 wide, touch)."""
    p = _new_page(browser, live_server, bs.PHONE, is_mobile=True, has_touch=True)
    yield p
    p.context.close()


@pytest.fixture
def dark_page(browser: Any, live_server: bs.LiveServer) -> Iterator[Any]:
    """A desktop page whose system setting asks for the dark theme."""
    p = _new_page(browser, live_server, bs.DESKTOP, color_scheme="dark")
    yield p
    p.context.close()


@pytest.fixture
def shoot(request: pytest.FixtureRequest) -> Any:
    """shoot(page, name, docs=False): save artifacts/screenshots/<name>.png; with docs=True and
    --screenshots-dir, also <dir>/<name>.png (the README's, kept small: viewport only)."""
    docs_dir = request.config.getoption("--screenshots-dir", default=None)

    def save(page: Any, name: str, *, docs: bool = False) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        size = page.viewport_size
        # Desktop shots are cut to 720 px high: the first screenful is what matters, and small
        # PNGs keep the repository light.
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 720)}
        page.screenshot(path=str(path), clip=clip if size["width"] > 800 else None)
        if docs and docs_dir:
            out = Path(docs_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{name}.png").write_bytes(path.read_bytes())
        return path

    return save


@pytest.fixture
def axe() -> Any:
    """axe(page) -> (serious/critical violations, readable summary)."""

    def check(page: Any) -> tuple[list[dict[str, Any]], str]:
        try:
            found = bs.run_axe(page)
        except bs.MissingPrerequisite as exc:
            pytest.skip(str(exc))
        return found, bs.describe(found)

    return check
