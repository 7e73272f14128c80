"""OAI-PMH: the ListRecords parser on the recorded pages, and the harvester against a loopback
server replaying them (503 + Retry-After, resumption tokens, OAI errors)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from fixture_server import Reply, nock_recording, replay_server
from paperfeed.sources import PaperRecord, Rejected, oai
from paperfeed.sources.fetch import Fetcher, SourceError
from paperfeed.sources.stream import Checkpoint

OAI_PATH = "/oai2"


@pytest.fixture
def fixtures(shared_data: Path) -> Path:
    return shared_data / "fixtures" / "arxiv_oai"


def fetcher(**kw) -> Fetcher:
    kw.setdefault("max_retries", 2)
    kw.setdefault("backoff_s", 0.05)
    return Fetcher(timeout_s=5, **kw)


def oai_error(code: str, text: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
        "<responseDate>2026-01-01T00:00:00Z</responseDate>"
        f'<request verb="ListRecords">http://export.arxiv.org/oai2</request>'
        f'<error code="{code}">{text}</error></OAI-PMH>'
    ).encode()


def test_parse_list_records_2018(fixtures: Path):
    body = (
        fixtures / "xml/oai2018_ListRecords_arXiv_2015-01-01_2015-01-03_http200.xml"
    ).read_bytes()
    page = oai.parse_list_records(body)
    a, b = page.items
    assert isinstance(a, PaperRecord) and isinstance(b, PaperRecord)
    assert a.arxiv_id == "1412.8544" and a.source == "arxiv_oai"
    assert a.title == "A Kochen-Specker system has at least 22 vectors (extended abstract)"
    assert a.authors == ["Sander Uijlen", "Bas Westerbaan"]
    assert a.categories == ["cs.DM"] and a.published == dt.date(2014, 12, 29)
    assert a.doi == "10.4204/EPTCS.172.11" and a.journal_ref == "EPTCS 172, 2014, pp. 154-164"
    assert a.license == "http://arxiv.org/licenses/nonexclusive-distrib/1.0/"
    assert a.comments == "In Proceedings QPL 2014, arXiv:1412.8102"
    assert b.arxiv_id == "hep-th/9504118"
    assert b.abstract and '"strength"' in b.abstract  # &quot; decoded
    assert page.token is None  # the last page


def test_parse_resumption_token_2015(fixtures: Path):
    body = (fixtures / "xml/oai2015_ListRecords_arXiv_resumptionToken_excerpt.xml").read_bytes()
    page = oai.parse_list_records(body)
    assert [r.arxiv_id for r in page.items if isinstance(r, PaperRecord)] == [
        "0712.4079",
        "0712.4080",
    ]
    first = page.items[0]
    assert isinstance(first, PaperRecord)
    assert first.categories == ["cond-mat.supr-con", "cond-mat.mes-hall", "cond-mat.mtrl-sci"]
    assert first.authors[1] == "Antonio R. de C. Romaguera"
    assert (page.token, page.cursor, page.complete_list_size) == ("788421|43001", 42000, 1024354)


def test_getrecord_recording_uses_the_same_metadata(fixtures: Path):
    body = (fixtures / "xml/oai2018_GetRecord_arXiv_1412.8544_http200.xml").read_text()
    # GetRecord wraps the same <record> in <GetRecord>; the ListRecords parser reads it as one
    page = oai.parse_list_records(body.replace("GetRecord>", "ListRecords>"))
    assert [r.arxiv_id for r in page.items if isinstance(r, PaperRecord)] == ["1412.8544"]


def test_errors_bad_xml_deleted_and_missing_title(fixtures: Path):
    assert oai.parse_list_records(oai_error("noRecordsMatch", "none")).items == []
    with pytest.raises(oai.OaiError, match="badArgument: Illegal date"):
        oai.parse_list_records(oai_error("badArgument", "Illegal date"))
    with pytest.raises(oai.MalformedPage, match="bad XML"):
        oai.parse_list_records(b"<OAI-PMH><ListRecords><record>")
    with pytest.raises(oai.MalformedPage, match="not an OAI-PMH"):
        oai.parse_list_records(
            (
                fixtures / "xml/oai2018_ListRecords_arXiv_2015-01-01_2015-01-03_http503.html"
            ).read_bytes()
        )
    body = (fixtures / "xml/oai2015_ListRecords_arXiv_resumptionToken_excerpt.xml").read_text()
    body = body.replace(
        "<header>\n <identifier>oai:arXiv.org:0712.4079</identifier>",
        '<header status="deleted">\n <identifier>oai:arXiv.org:0712.4079</identifier>',
    )
    body = body.replace("<title>Hysteretic behavior", "<title></title><x>Hysteretic behavior")
    body = body.replace("blockade regime</title>", "blockade regime</x>")
    page = oai.parse_list_records(body, where="page 1")
    assert page.items == [Rejected("record 2 of page 1", "0712.4080: missing title")]


def test_503_retry_after_then_records(fixtures: Path):
    (_busy_params, busy), (ok_params, ok) = nock_recording(
        fixtures
        / "paperhive_nock_2018/oaipmh-listrecords---should-list-identifiers-from-arxiv.json"
    )
    assert busy.status == 503 and busy.headers == {"Retry-After": "10"}
    busy.headers["Retry-After"] = "1"  # the recorded 10 s, shortened to keep the test quick
    with replay_server() as srv:
        srv.add(OAI_PATH, ok_params, busy, ok)
        started = time.monotonic()
        with fetcher(backoff_s=0.01) as f:
            items = list(
                oai.list_records(
                    f,
                    srv.url + OAI_PATH,
                    date_from=dt.date(2015, 1, 1),
                    date_until=dt.date(2015, 1, 3),
                    checkpoint_key="k",
                )
            )
        assert time.monotonic() - started >= 1.0
        assert [s.params for s in srv.seen] == [ok_params, ok_params]
    assert [i.arxiv_id for i in items if isinstance(i, PaperRecord)] == [
        "1412.8544",
        "hep-th/9504118",
    ]
    assert items[-1] == Checkpoint("k", None, done=2, total=2)


def test_follows_resumption_tokens_with_set(fixtures: Path):
    first = (fixtures / "xml/oai2015_ListRecords_arXiv_resumptionToken_excerpt.xml").read_bytes()
    last = (
        fixtures / "xml/oai2018_ListRecords_arXiv_2015-01-01_2015-01-03_http200.xml"
    ).read_bytes()
    with replay_server() as srv:
        srv.add(OAI_PATH, {"metadataPrefix": "arXiv", "set": "physics:cond-mat"}, Reply(200, first))
        srv.add(OAI_PATH, {"resumptionToken": "788421|43001"}, Reply(200, last))
        with fetcher() as f:
            items = list(
                oai.list_records(
                    f, srv.url + OAI_PATH, set_spec="physics:cond-mat", checkpoint_key="k"
                )
            )
        assert srv.seen[0].params == {
            "verb": "ListRecords",
            "metadataPrefix": "arXiv",
            "set": "physics:cond-mat",
        }
        assert srv.seen[1].params == {"verb": "ListRecords", "resumptionToken": "788421|43001"}
    assert [i.arxiv_id for i in items if isinstance(i, PaperRecord)] == [
        "0712.4079",
        "0712.4080",
        "1412.8544",
        "hep-th/9504118",
    ]
    checkpoints = [i for i in items if isinstance(i, Checkpoint)]
    assert checkpoints[0].state == {
        "token": "788421|43001",
        "done": 2,
        "complete_list_size": 1024354,
    }
    assert checkpoints[-1].state is None


def test_oai_error_and_http_error_are_reported():
    with replay_server() as srv:
        srv.add(OAI_PATH, {}, Reply(200, oai_error("badResumptionToken", "expired")))
        with fetcher() as f, pytest.raises(oai.OaiError, match="badResumptionToken"):
            list(oai.list_records(f, srv.url + OAI_PATH, token="x"))
    with replay_server() as srv:
        srv.add(OAI_PATH, {}, Reply(403, b"<html>forbidden</html>", content_type="text/html"))
        with fetcher() as f, pytest.raises(SourceError, match="HTTP 403"):
            list(oai.list_records(f, srv.url + OAI_PATH))
    with replay_server() as srv:
        srv.add(OAI_PATH, {}, Reply(200, oai_error("noRecordsMatch", "nothing")))
        with fetcher() as f:
            items = list(oai.list_records(f, srv.url + OAI_PATH, checkpoint_key="k"))
        assert items == [Checkpoint("k", None, done=0, total=0)]


def test_bad_xml_page_is_rejected_and_ends_the_harvest(fixtures: Path):
    first = (fixtures / "xml/oai2015_ListRecords_arXiv_resumptionToken_excerpt.xml").read_bytes()
    with replay_server() as srv:
        srv.add(OAI_PATH, {"metadataPrefix": "arXiv"}, Reply(200, first))
        srv.add(OAI_PATH, {"resumptionToken": "788421|43001"}, Reply(200, first[:500]))
        with fetcher() as f:
            items = list(oai.list_records(f, srv.url + OAI_PATH, checkpoint_key="k"))
    assert len([i for i in items if isinstance(i, PaperRecord)]) == 2
    assert isinstance(items[-1], Rejected) and "bad XML" in items[-1].reason
    assert "788421|43001" in items[-1].position
    # the last checkpoint still points at the page that failed, so a rerun retries it
    assert [i for i in items if isinstance(i, Checkpoint)][-1].state["token"] == "788421|43001"
