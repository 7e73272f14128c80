"""A real HTTP server on loopback that replays recorded responses (tests only)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/xml; charset=utf-8"


@dataclass
class Route:
    """Requests to `path` whose query contains all of `params` get `replies` in turn (the last
    one repeats)."""

    path: str
    params: dict[str, str]
    replies: list[Reply]
    hits: int = 0


@dataclass
class Seen:
    path: str
    params: dict[str, str]
    at: float  # time.monotonic()


class ReplayServer:
    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                params = dict(parse_qsl(parts.query, keep_blank_values=True))
                reply = server._match(parts.path, params)
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, path: str, params: dict[str, str], *replies: Reply) -> Route:
        route = Route(path, params, list(replies))
        self.routes.append(route)
        return route

    def _match(self, path: str, params: dict[str, str]) -> Reply:
        with self._lock:
            self.seen.append(Seen(path, params, time.monotonic()))
            for route in self.routes:
                if route.path == path and all(params.get(k) == v for k, v in route.params.items()):
                    reply = route.replies[min(route.hits, len(route.replies) - 1)]
                    route.hits += 1
                    return reply
        return Reply(404, b"no recording for this request", content_type="text/plain")


@contextmanager
def replay_server() -> Iterator[ReplayServer]:
    server = ReplayServer()
    thread = threading.Thread(
        target=server.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def arxiv_recording(path: Path) -> tuple[dict[str, str], Reply]:
    """A recorded arXiv API response ({url, status_code, body}) as (query params, reply).

    The recorder stored the body decoded as Latin-1; encoding it back gives the exact bytes
    arXiv sent (UTF-8), so the client sees what the real server sent."""
    rec = json.loads(path.read_text())
    params = dict(parse_qsl(urlsplit(rec["url"]).query, keep_blank_values=True))
    # id_list lookups are identified by their ids; searches by query, start and page size.
    names = (
        ("id_list", "start") if params.get("id_list") else ("search_query", "start", "max_results")
    )
    keep = {k: params[k] for k in names}
    return keep, Reply(rec["status_code"], rec["body"].encode("latin-1"))


def nock_recording(path: Path) -> list[tuple[dict[str, str], Reply]]:
    """paperhive/oai-pmh nock recordings -> [(query params, reply)], headers kept."""
    out = []
    for rec in json.loads(path.read_text()):
        params = dict(parse_qsl(urlsplit(rec["path"]).query, keep_blank_values=True))
        raw = rec.get("rawHeaders", [])
        headers = dict(zip(raw[::2], raw[1::2], strict=True))
        keep = {k: v for k, v in headers.items() if k.lower() == "retry-after"}
        ctype = headers.get("Content-Type", "text/xml")
        out.append((params, Reply(rec["status"], rec["response"].encode("utf-8"), keep, ctype)))
    return out
