"""Front-page weight and timing in headless Chromium with the demo data, on loopback.

Prints, for a cold cache (fresh browser context each run) and a warm reload: bytes transferred
(from the DevTools Network domain: encoded body + headers, fonts excluded), DOMContentLoaded and
largest contentful paint (Performance API), as the median of RUNS runs.
Targets (issue 7): < 150 KB transferred, LCP < 500 ms.

    .venv/bin/python bench/page_weight.py [--runs 7] [--path /papers]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "browser"))
import browser_support as bs

TIMING_JS = """() => new Promise(resolve => {
  const nav = performance.getEntriesByType('navigation')[0];
  new PerformanceObserver(list => {
    const entries = list.getEntries();
    const lcp = entries[entries.length - 1];
    resolve({ttfb: nav.responseStart, dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
             lcp: lcp.startTime, lcp_element: lcp.element ? lcp.element.tagName + '.' +
             lcp.element.className : '?'});
  }).observe({type: 'largest-contentful-paint', buffered: true});
})"""


def measure(context: Any, url: str, reload: bool = False) -> dict[str, Any]:
    """Load url once in the given context; return bytes by type and the paint timings."""
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    types: dict[str, str] = {}
    sizes: dict[str, int] = {}
    cdp.on("Network.responseReceived", lambda e: types.__setitem__(e["requestId"], e["type"]))
    cdp.on(
        "Network.loadingFinished",
        lambda e: sizes.__setitem__(e["requestId"], int(e["encodedDataLength"])),
    )
    page.goto(url, wait_until="load")
    if reload:
        types.clear()
        sizes.clear()
        page.reload(wait_until="load")
    timing = page.evaluate(TIMING_JS)
    page.wait_for_timeout(50)  # let the last loadingFinished events arrive
    by_type: dict[str, int] = {}
    for rid, size in sizes.items():
        kind = types.get(rid, "Other")
        by_type[kind] = by_type.get(kind, 0) + size
    page.close()
    fonts = by_type.pop("Font", 0)
    return {**timing, "bytes": sum(by_type.values()), "fonts": fonts, "by_type": by_type}


# The same measurement of a trivial page (one heading, no assets) served through the browser on
# the same origin: the floor this machine and browser impose right now (the machine is shared,
# so absolute milliseconds swing with its load; compare the two).
FLOOR_HTML = "<!doctype html><html lang=en><title>floor</title><h1>Floor</h1></html>"


def floor(browser: Any, url: str) -> dict[str, Any]:
    ctx = browser.new_context(viewport=bs.DESKTOP)
    ctx.route(
        url + "/__floor",
        lambda route: route.fulfill(body=FLOOR_HTML, content_type="text/html"),
    )
    result = measure(ctx, url + "/__floor")
    ctx.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--path", default="/papers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, bs.live_server(Path(tmp)) as server:
        url = server.url + args.path
        with bs.chromium() as browser:
            warm = browser.new_context()  # first request pays for imports and SQLite page cache
            measure(warm, url)
            warm.close()
            for label, reload in (("cold cache", False), ("warm reload", True)):
                runs = []
                for _ in range(args.runs):
                    ctx = browser.new_context(viewport=bs.DESKTOP)
                    runs.append(measure(ctx, url, reload=reload))
                    ctx.close()
                med = {
                    k: statistics.median(r[k] for r in runs)
                    for k in ("bytes", "fonts", "ttfb", "dcl", "lcp")
                }
                print(f"{args.path} — {label}, median of {args.runs} runs:")
                print(f"  transferred (no fonts): {med['bytes'] / 1024:.1f} KB  (target < 150 KB)")
                print(f"  by type (first run):    {runs[0]['by_type']}  fonts: {med['fonts']} B")
                print(f"  first byte of HTML:     {med['ttfb']:.0f} ms")
                print(f"  DOMContentLoaded:       {med['dcl']:.0f} ms")
                print(f"  largest contentful paint: {med['lcp']:.0f} ms  (target < 500 ms)")
                print(f"  LCP element:            {runs[0]['lcp_element']}")
            floors = [floor(browser, server.url) for _ in range(args.runs)]
            print(f"trivial one-heading page (floor), median of {args.runs} runs:")
            print(f"  DOMContentLoaded:       {statistics.median(f['dcl'] for f in floors):.0f} ms")
            lcp = statistics.median(f["lcp"] for f in floors)
            print(f"  largest contentful paint: {lcp:.0f} ms")
    load = os.getloadavg()[0]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f}, "
        f"{platform.system()} {platform.release()}, loopback"
    )


if __name__ == "__main__":
    main()
