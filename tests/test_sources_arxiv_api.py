"""arXiv export API: the Atom parser on every recorded response, and the client against a
real loopback server replaying them (paging, rate limit, retries, Retry-After, error feed)."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from pathlib import Path

import pytest

from fixture_server import ReplayServer, Reply, arxiv_recording, replay_server
from paperfeed.sources import PaperRecord, Rejected, arxiv_api
from paperfeed.sources.fetch import Fetcher, SourceError, parse_retry_after
from paperfeed.sources.stream import Checkpoint

API = "/api/query"


@pytest.fixture
def fixtures(shared_data: Path) -> Path:
    return shared_data / "fixtures" / "arxiv_api"


@pytest.fixture
def server(fixtures: Path):
    with replay_server() as srv:
        for path in sorted((fixtures / "recorded_2026_json").glob("*.json")):
            params, reply = arxiv_recording(path)
            srv.add(API, params, reply)
        yield srv


def fetcher(**kw) -> Fetcher:
    kw.setdefault("max_retries", 3)
    kw.setdefault("backoff_s", 0.05)
    return Fetcher(timeout_s=5, **kw)


def records(items) -> list[PaperRecord]:
    return [i for i in items if isinstance(i, PaperRecord)]


def test_every_recorded_xml_parses(fixtures: Path):
    seen = 0
    for path in sorted((fixtures / "xml").glob("*.xml")):
        if "error" in path.name:
            continue
        page = arxiv_api.parse_feed(path.read_bytes(), where=path.name)
        assert not [i for i in page.items if isinstance(i, Rejected)], path.name
        for rec in page.items:
            assert isinstance(rec, PaperRecord)
            assert rec.title and rec.authors and rec.categories and rec.published
            seen += 1
    assert seen == 1 + 1 + 0 + 1 + 1 + 1 + 10 + 10


def test_entry_fields_2016_shape(fixtures: Path):
    page = arxiv_api.parse_feed((fixtures / "xml/api2016_id_list_1111.2011v2.xml").read_bytes())
    (rec,) = page.items
    assert isinstance(rec, PaperRecord)
    assert rec.arxiv_id == "1111.2011" and rec.version == 2
    assert rec.title == (
        "Quantum Criticality for Extended Nodes on a Bethe Lattice in the Large Connectivity Limit"
    )
    assert rec.authors == ["James M. Murray", "Adrian Del Maestro", "Zlatko Tesanovic"]
    assert rec.categories == ["cond-mat.str-el", "cond-mat.stat-mech"]  # primary first
    assert rec.published == dt.date(2011, 11, 8) and rec.updated == dt.date(2012, 4, 2)
    assert rec.versions == [
        {"version": 1, "created": "2011-11-08"},
        {"version": 2, "created": "2012-04-02"},
    ]
    assert rec.doi == "10.1103/PhysRevB.85.115117"
    assert rec.journal_ref == "Phys. Rev. B 85, 115117 (2012)"
    assert rec.comments == "8 pages, 3 figures. Published version"
    assert rec.abstract and rec.abstract.startswith("Theoretical description of anisotropic")
    assert "\n" not in rec.abstract
    assert page.total_results == 1


def test_old_style_id_and_primary_category_first(fixtures: Path):
    page = arxiv_api.parse_feed(
        (fixtures / "xml/api2026_id_list_oldstyle_astro-ph_0601001.xml").read_bytes()
    )
    assert [r.arxiv_id for r in records(page.items)] == ["astro-ph/0601001"]
    page = arxiv_api.parse_feed(
        (fixtures / "xml/api2026_search_all_testing_start0_max10.xml").read_bytes()
    )
    first = records(page.items)[0]
    assert first.categories[0] == "cs.SE" and first.doi == "10.1109/ICSTW55395.2022.00035"
    assert page.total_results == 214881 and page.items_per_page == 10


def test_error_feed_is_an_error(fixtures: Path):
    with pytest.raises(arxiv_api.ArxivApiError, match="incorrect id format for abc"):
        arxiv_api.parse_feed((fixtures / "xml/api2026_error_400_bad_id.xml").read_bytes())


def test_bad_xml_and_bad_entries(fixtures: Path):
    with pytest.raises(arxiv_api.MalformedFeed, match="bad XML"):
        arxiv_api.parse_feed(b"<feed xmlns='http://www.w3.org/2005/Atom'><entry>", where="p1")
    body = (fixtures / "xml/api2026_id_list_two_ids.xml").read_text()
    entry = body[body.index("<entry>") : body.index("</entry>") + len("</entry>")]
    no_title = entry.replace(
        "<title>Proceedings of Workshop AEW10: Concepts in Information Theory and Communications"
        "</title>",
        "",
    )
    bad_id = entry.replace("1707.08567v1</id>", "not-an-id</id>")
    doctored = body.replace(entry, no_title + entry + bad_id)
    page = arxiv_api.parse_feed(doctored, where="page start=0")
    assert [type(i).__name__ for i in page.items] == ["Rejected", "PaperRecord", "Rejected"]
    assert page.items[0] == Rejected("entry 1 of page start=0", "1707.08567: missing title")
    assert isinstance(page.items[2], Rejected) and "bad id" in page.items[2].reason


def test_build_query():
    q = arxiv_api.build_query("cs.CL", dt.date(2024, 5, 1), dt.date(2024, 5, 7))
    assert q == "cat:cs.CL AND submittedDate:[202405010000 TO 202405072359]"
    assert arxiv_api.build_query("cs.CL") == "cat:cs.CL"
    with pytest.raises(ValueError, match="category"):
        arxiv_api.build_query()


def test_paging_until_max(server: ReplayServer):
    with fetcher() as f:
        items = list(arxiv_api.search(f, server.url + API, "testing", max_results=60, page_size=10))
    recs = records(items)
    assert len(recs) == 60 and len({r.arxiv_id for r in recs}) == 60
    starts = [s.params["start"] for s in server.seen]
    assert starts == ["0", "10", "20", "30", "40", "50"]
    checkpoints = [i for i in items if isinstance(i, Checkpoint)]
    assert [c.state for c in checkpoints[:2]] == [{"start": 10}, {"start": 20}]
    assert checkpoints[-1].state is None  # finished: the next run starts from scratch


def test_paging_stops_on_total_and_empty_page():
    body0 = Reply(200, _feed(total=3, ids=["2401.00001", "2401.00002"]))
    body2 = Reply(200, _feed(total=3, ids=["2401.00003"]))
    with replay_server() as srv:
        srv.add(API, {"start": "0"}, body0)
        srv.add(API, {"start": "2"}, body2)
        with fetcher() as f:
            recs = records(arxiv_api.search(f, srv.url + API, "cat:x", page_size=2))
        assert [r.arxiv_id for r in recs] == ["2401.00001", "2401.00002", "2401.00003"]
        assert len(srv.seen) == 2  # totalResults reached: no third request
    with replay_server() as srv:
        srv.add(API, {"start": "0"}, Reply(200, _feed(total=None, ids=["2401.00001"])))
        srv.add(API, {"start": "1"}, Reply(200, _feed(total=None, ids=[])))
        with fetcher() as f:
            recs = records(arxiv_api.search(f, srv.url + API, "cat:x", page_size=1))
        assert len(recs) == 1 and len(srv.seen) == 2  # stopped on the empty page


def test_id_list_and_utf8_bytes(server: ReplayServer):
    with fetcher() as f:
        items = list(arxiv_api.by_ids(f, server.url + API, ["0808.05394,1707.08567"], chunk=5))
    # one argument holding a comma is not an id: rejected before any request
    assert isinstance(items[0], Rejected)
    with fetcher() as f:
        items = list(arxiv_api.by_ids(f, server.url + API, ["0808.05394", "1707.08567"]))
    (rec,) = records(items)  # 0808.05394 does not exist: arXiv returns only the other one
    assert Rejected("id 0808.05394", "not found on arXiv") in items
    assert rec.arxiv_id == "1707.08567"
    assert "Dirk Wübben" in rec.authors  # decoded from the bytes arXiv sent (UTF-8)
    assert server.seen[-1].params["id_list"] == "0808.05394,1707.08567"


def test_id_list_old_style_and_versioned(server: ReplayServer):
    with fetcher() as f:
        items = list(arxiv_api.by_ids(f, server.url + API, ["quant-ph/0201082v1"]))
        items += list(arxiv_api.by_ids(f, server.url + API, ["arXiv:2104.12255v1"]))
    recs = records(items)
    assert [(r.arxiv_id, r.version) for r in recs] == [
        ("quant-ph/0201082", 1),
        ("2104.12255", 1),
    ]


def test_400_error_feed_from_server(server: ReplayServer):
    with fetcher() as f, pytest.raises(arxiv_api.ArxivApiError, match="incorrect id format"):
        arxiv_api.fetch_page(f, server.url + API, {"id_list": "abc", "start": 0}, "ids")
    assert len(server.seen) == 1  # a 400 is not retried


def test_rate_limit_spaces_requests(server: ReplayServer):
    started = time.monotonic()
    with fetcher(min_interval_s=0.4) as f:
        recs = records(
            arxiv_api.search(f, server.url + API, "testing", max_results=30, page_size=10)
        )
    assert len(recs) == 30
    gaps = [b.at - a.at for a, b in zip(server.seen, server.seen[1:], strict=False)]
    # 3 requests = 2 full intervals; the server's arrival stamps carry some jitter
    assert time.monotonic() - started >= 0.8
    assert len(gaps) == 2 and min(gaps) >= 0.3


def test_5xx_retried_with_exponential_backoff(fixtures: Path):
    params, ok = arxiv_recording(
        fixtures / "recorded_2026_json/id_1605.08386_s0_m100_199195aa31ad.json"
    )
    with replay_server() as srv:
        srv.add(API, params, Reply(500, b"oops"), Reply(502, b"oops"), Reply(504, b""), ok)
        with fetcher(backoff_s=0.1, max_retries=3) as f:
            recs = records(arxiv_api.by_ids(f, srv.url + API, ["1605.08386"]))
        assert [r.arxiv_id for r in recs] == ["1605.08386"]
        t = [s.at for s in srv.seen]
        gaps = [b - a for a, b in itertools.pairwise(t)]
        assert len(gaps) == 3
        assert gaps[0] >= 0.09 and gaps[1] >= 0.19 and gaps[2] >= 0.39  # 0.1, 0.2, 0.4 s


def test_retry_after_honoured_and_retries_exhausted(fixtures: Path):
    params, ok = arxiv_recording(
        fixtures / "recorded_2026_json/id_1605.08386_s0_m100_199195aa31ad.json"
    )
    with replay_server() as srv:
        srv.add(API, params, Reply(503, b"busy", {"Retry-After": "1"}), ok)
        started = time.monotonic()
        with fetcher(backoff_s=0.01) as f:
            recs = records(arxiv_api.by_ids(f, srv.url + API, ["1605.08386"]))
        assert len(recs) == 1
        assert time.monotonic() - started >= 1.0  # the server's 1 s, not our 0.01 s backoff
    with replay_server() as srv:
        srv.add(API, {}, Reply(503, b"down"))
        with (
            fetcher(max_retries=2, backoff_s=0.01) as f,
            pytest.raises(SourceError, match="HTTP 503 after 3 attempts"),
        ):
            list(arxiv_api.by_ids(f, srv.url + API, ["1605.08386"]))
        assert len(srv.seen) == 3


def test_connection_errors_are_retried_then_reported():
    with replay_server() as srv:
        dead = srv.url  # nothing listens once the server is gone
    with (
        fetcher(max_retries=1, backoff_s=0.01) as f,
        pytest.raises(SourceError, match="ConnectError"),
    ):
        list(arxiv_api.by_ids(f, dead + API, ["1605.08386"]))
    assert f.requests == 2


def test_parse_retry_after():
    assert parse_retry_after("10") == 10.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=0.0) == 10.0


def _feed(total: int | None, ids: list[str]) -> bytes:
    entries = "".join(
        f"<entry><id>http://arxiv.org/abs/{i}v1</id><title>Paper {i}</title>"
        f"<summary>About {i}.</summary><published>2024-01-02T00:00:00Z</published>"
        f"<updated>2024-01-02T00:00:00Z</updated><author><name>A. Author</name></author>"
        f'<arxiv:primary_category term="cs.CL"/></entry>'
        for i in ids
    )
    total_el = f"<opensearch:totalResults>{total}</opensearch:totalResults>" if total else ""
    return (
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom" '
        f'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">{total_el}{entries}</feed>'
    ).encode()
