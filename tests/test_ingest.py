"""The ingestion pipeline and the `paperfeed ingest/export` commands: idempotence, crash and
Ctrl-C resume without loss or duplicates, rejections with positions, the JSONL round trip."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from fixture_server import Reply, arxiv_recording, replay_server
from paperfeed import db, ingest, papers
from paperfeed.cli import app
from paperfeed.ingest_cli import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_REJECTED
from paperfeed.models import IngestState, Paper
from paperfeed.sources import PaperRecord, snapshot
from paperfeed.sources.stream import Item

runner = CliRunner()


def count(engine: Engine) -> int:
    with db.read(engine) as conn:
        return conn.execute(select(func.count()).select_from(Paper)).scalar_one()


def checkpoints(engine: Engine) -> dict[str, dict]:
    with db.read(engine) as conn:
        return dict(conn.execute(select(IngestState.key, IngestState.value)).all())


def sample(shared_data: Path, tmp_path: Path, n: int) -> Path:
    path = tmp_path / f"snapshot_{n}.jsonl"
    with (shared_data / "arxiv_snapshot_sample.jsonl").open() as src:
        path.write_text("".join(itertools.islice(src, n)))
    return path


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An on-disk, migrated database that the CLI (which reads PAPERFEED_*) uses."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PAPERFEED_DATABASE_URL", url)
    monkeypatch.setenv("PAPERFEED_ARXIV_DELAY_S", "0")
    monkeypatch.setenv("PAPERFEED_HTTP_BACKOFF_S", "0.01")
    db.upgrade(db.make_engine(url))
    return url


# ---- the pipeline --------------------------------------------------------------------------


def test_snapshot_ingest_is_idempotent(engine: Engine, shared_data: Path, tmp_path: Path):
    path = sample(shared_data, tmp_path, 250)
    items, point = ingest.from_file(engine, path, snapshot.read_snapshot, "k")
    assert point.state is None
    first = ingest.run(engine, items, batch_size=100)
    assert (first.new, first.updated, first.unchanged, first.rejected) == (250, 0, 0, 0)
    assert checkpoints(engine) == {}  # finished: the checkpoint is cleared
    items, _ = ingest.from_file(engine, path, snapshot.read_snapshot, "k")
    again = ingest.run(engine, items, batch_size=100)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 250)
    assert count(engine) == 250


def interrupt_after(items: Iterator[Item], n: int) -> Iterator[Item]:
    """The source as seen by the pipeline, with Ctrl-C arriving after n records."""
    seen = 0
    for item in items:
        if isinstance(item, PaperRecord):
            seen += 1
            if seen > n:
                raise KeyboardInterrupt
        yield item


def test_ctrl_c_mid_file_then_resume(engine: Engine, shared_data: Path, tmp_path: Path):
    path = sample(shared_data, tmp_path, 1000)
    items, _ = ingest.from_file(engine, path, snapshot.read_snapshot, "k")
    cut = ingest.run(engine, interrupt_after(items, 450), batch_size=100)
    assert cut.interrupted and cut.new == 400  # the 5th batch never committed
    assert count(engine) == 400
    assert checkpoints(engine)["k"]["line"] == 400  # saved with the 4th batch, atomically
    items, point = ingest.from_file(engine, path, snapshot.read_snapshot, "k")
    assert point.note and "line 400" in point.note
    rest = ingest.run(engine, items, batch_size=100)
    assert (rest.new, rest.unchanged, rest.interrupted) == (600, 0, False)  # nothing re-read
    with db.read(engine) as conn:
        ids = [p.arxiv_id for p in papers.iter_papers(conn)]
    expected = [json.loads(line)["id"] for line in path.open()]
    assert sorted(ids) == sorted(expected) and len(set(ids)) == 1000
    assert checkpoints(engine) == {}


def test_checkpoint_of_another_file_is_ignored(engine: Engine, shared_data: Path, tmp_path: Path):
    path = sample(shared_data, tmp_path, 300)
    items, _ = ingest.from_file(engine, path, snapshot.read_snapshot, "k")
    ingest.run(engine, interrupt_after(items, 150), batch_size=100)
    path.write_text(path.read_text() + "\n")  # the file changed (a new weekly snapshot)
    items, point = ingest.from_file(engine, path, snapshot.read_snapshot, "k")
    assert point.state is None and point.note and "changed" in point.note
    items, point = ingest.from_file(engine, path, snapshot.read_snapshot, "k", restart=True)
    assert point.state is None and point.note is None


# ---- commands ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", "arxiv", "--category", "cs.CL"],
        ["ingest", "oai", "--set", "cs"],
        ["ingest", "snapshot", "FILE"],
        ["ingest", "jsonl", "--demo"],
        ["ingest", "hf-daily", "FILE"],
        ["export", "jsonl", "-"],
    ],
)
def test_commands_refuse_an_unmigrated_database(tmp_path, monkeypatch, args):
    monkeypatch.setenv("PAPERFEED_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    (tmp_path / "f.json").write_text("[]")
    args = [str(tmp_path / "f.json") if a == "FILE" else a for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_ERROR
    assert "paperfeed db upgrade" in " ".join(result.output.split())


def test_rejections_exit_status_and_positions(db_url: str, shared_data: Path, tmp_path: Path):
    good = sample(shared_data, tmp_path, 3).read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        "\n".join(
            [good[0], good[1][:40], json.dumps({**json.loads(good[2]), "title": ""}), good[2]]
        )
    )  # the last line has no newline: still read
    result = runner.invoke(app, ["ingest", "snapshot", str(bad)])
    assert result.exit_code == EXIT_REJECTED
    assert "rejected line 2: invalid JSON" in result.output
    assert "rejected line 3: 0704.0003: missing title" in result.output
    assert "2 new, 0 updated, 0 unchanged, 2 rejected" in result.output
    assert count(db.make_engine(db_url)) == 2


def test_jsonl_round_trip_is_lossless(db_url: str, shared_data: Path, tmp_path: Path):
    """ingest hf_daily_papers.jsonl -> export -> the same rows, key order included (bytes)."""
    source = shared_data / "hf_daily_papers.jsonl"
    result = runner.invoke(app, ["ingest", "jsonl", str(source)])
    assert result.exit_code == 0, result.output
    assert "9877 new" in result.output
    out = tmp_path / "export.jsonl"
    result = runner.invoke(app, ["export", "jsonl", str(out)])
    assert result.exit_code == 0, result.output
    src_rows = [json.loads(line) for line in source.open(encoding="utf-8")]
    out_rows = [json.loads(line) for line in out.open(encoding="utf-8")]
    assert len(out_rows) == len(src_rows) == 9877
    for a, b in zip(src_rows, out_rows, strict=True):
        assert list(a.items()) == list(b.items())
    assert out.read_bytes() == source.read_bytes()


def test_demo_sample_and_export_to_stdout(db_url: str):
    result = runner.invoke(app, ["ingest", "jsonl", "--demo"])
    assert result.exit_code == 0, result.output
    n = count(db.make_engine(db_url))
    assert 200 <= n <= 1000
    result = runner.invoke(app, ["export", "jsonl"])
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == n and json.loads(lines[0])["arxiv_id"]
    result = runner.invoke(app, ["ingest", "jsonl", "--demo"])  # idempotent
    assert f"0 new, 0 updated, {n} unchanged, 0 rejected" in result.output


def test_hf_daily_from_file_and_live(db_url: str, shared_data: Path, monkeypatch):
    fixtures = shared_data / "fixtures" / "hf_daily_papers"
    result = runner.invoke(
        app, ["ingest", "hf-daily", str(fixtures / "api_daily_papers_date_2024-05-27.json")]
    )
    assert result.exit_code == 0 and "13 new" in result.output
    body = (fixtures / "api_daily_papers_date_2026-08-21.json").read_bytes()
    with replay_server() as srv:
        srv.add("/api/daily_papers", {"date": "2026-08-21"}, Reply(200, body))
        monkeypatch.setenv("PAPERFEED_HF_DAILY_URL", srv.url + "/api/daily_papers")
        result = runner.invoke(app, ["ingest", "hf-daily", "--date", "2026-08-21"])
        assert result.exit_code == 0 and "17 new" in result.output
        result = runner.invoke(app, ["ingest", "hf-daily", "--date", "2026-08-22"])
        assert result.exit_code == EXIT_ERROR and "HTTP 404" in result.output
    with db.read(db.make_engine(db_url)) as conn:
        paper = papers.get_paper(conn, "2608.19880")
    assert paper is not None and str(paper.featured_date) == "2026-08-21"
    assert paper.code_url == "https://github.com/google-research/envharness"


def test_arxiv_command_search_ids_and_error_feed(db_url: str, shared_data: Path, monkeypatch):
    recorded = shared_data / "fixtures" / "arxiv_api" / "recorded_2026_json"
    with replay_server() as srv:
        for path in sorted(recorded.glob("id_*.json")):
            srv.add("/api/query", *arxiv_recording(path))
        monkeypatch.setenv("PAPERFEED_ARXIV_API_URL", srv.url + "/api/query")
        result = runner.invoke(app, ["ingest", "arxiv", "--ids", "0808.05394,1707.08567"])
        assert result.exit_code == EXIT_REJECTED, result.output
        assert "rejected id 0808.05394: not found on arXiv" in result.output
        assert "1 new" in result.output
        result = runner.invoke(app, ["ingest", "arxiv", "--id", "1605.08386", "--id", "abc"])
        assert result.exit_code == EXIT_REJECTED and "not an arXiv id" in result.output
        srv.routes.insert(0, srv.routes[[r.params.get("id_list") for r in srv.routes].index("abc")])
        srv.routes[0].params = {}
        result = runner.invoke(
            app, ["ingest", "arxiv", "--category", "cs.CL", "--from", "2024-05-01"]
        )
        assert result.exit_code == EXIT_ERROR
        assert "arXiv API error: incorrect id format for abc" in result.output
    result = runner.invoke(app, ["ingest", "arxiv", "--from", "May 1"])
    assert result.exit_code == 2 and "YYYY-MM-DD" in result.output


def test_arxiv_search_resumes_at_the_saved_start(db_url: str, shared_data: Path, monkeypatch):
    recorded = shared_data / "fixtures" / "arxiv_api" / "recorded_2026_json"
    with replay_server() as srv:
        for start in (0, 10, 20):
            path = next(recorded.glob(f"q_testing_s{start}_m10_*.json"))
            params, reply = arxiv_recording(path)
            srv.add("/api/query", {"start": params["start"]}, reply)
        srv.add("/api/query", {"start": "30"}, Reply(500, b"down"))
        monkeypatch.setenv("PAPERFEED_ARXIV_API_URL", srv.url + "/api/query")
        monkeypatch.setenv("PAPERFEED_HTTP_MAX_RETRIES", "1")
        args = ["ingest", "arxiv", "--query", "testing", "--max", "40", "--batch-size", "10"]
        monkeypatch.setattr("paperfeed.sources.arxiv_api.PAGE_SIZE", 10)
        result = runner.invoke(app, args)
        assert result.exit_code == EXIT_ERROR and "HTTP 500" in result.output
        assert "30 new" in result.output
        srv.routes[-1].replies = [
            arxiv_recording(next(recorded.glob("q_testing_s30_m10_*.json")))[1]
        ]
        before = len(srv.seen)
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "resuming at result 30" in result.output and "10 new" in result.output
        assert [s.params["start"] for s in srv.seen[before:]] == ["30"]
    assert count(db.make_engine(db_url)) == 40


def test_oai_outage_then_resume(db_url: str, shared_data: Path, monkeypatch):
    xml = shared_data / "fixtures" / "arxiv_oai" / "xml"
    first = (xml / "oai2015_ListRecords_arXiv_resumptionToken_excerpt.xml").read_bytes()
    last = (xml / "oai2018_ListRecords_arXiv_2015-01-01_2015-01-03_http200.xml").read_bytes()
    with replay_server() as srv:
        srv.add("/oai2", {"metadataPrefix": "arXiv", "set": "physics"}, Reply(200, first))
        page2 = srv.add(
            "/oai2", {"resumptionToken": "788421|43001"}, Reply(503, b"", {"Retry-After": "0"})
        )
        monkeypatch.setenv("PAPERFEED_ARXIV_OAI_URL", srv.url + "/oai2")
        monkeypatch.setenv("PAPERFEED_HTTP_MAX_RETRIES", "1")
        result = runner.invoke(app, ["ingest", "oai", "--set", "physics", "--batch-size", "1"])
        assert result.exit_code == EXIT_ERROR and "HTTP 503" in result.output
        assert "2 new" in result.output and "rerun" in result.output
        engine = db.make_engine(db_url)
        (state,) = checkpoints(engine).values()
        assert state["token"] == "788421|43001"
        page2.replies = [Reply(200, last)]
        before = len(srv.seen)
        result = runner.invoke(app, ["ingest", "oai", "--set", "physics", "--batch-size", "1"])
        assert result.exit_code == 0, result.output
        assert "resuming with resumptionToken 788421|43001" in result.output
        assert "2 new, 0 updated, 0 unchanged" in result.output
        assert srv.seen[before].params == {"verb": "ListRecords", "resumptionToken": "788421|43001"}
    assert count(engine) == 4 and checkpoints(engine) == {}


def test_sigint_in_a_real_process_then_resume(db_url: str, shared_data: Path, tmp_path: Path):
    """Ctrl-C delivered to a real `paperfeed ingest snapshot` process: exit 130, committed
    batches kept, the rerun finishes with nothing lost and nothing duplicated."""
    n = 6_000  # enough that the signal lands mid-file even when the test process is slow
    path = sample(shared_data, tmp_path, n)
    engine = db.make_engine(db_url)
    cmd = [
        sys.executable,
        "-m",
        "paperfeed.cli",
        "ingest",
        "snapshot",
        str(path),
        "--batch-size",
        "50",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy()
    )
    deadline = time.monotonic() + 60
    while not checkpoints(engine) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, out
    assert b"rerun the same command to resume" in out
    committed = count(engine)
    assert 0 < committed < n
    result = runner.invoke(app, ["ingest", "snapshot", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{n - committed} new, 0 updated, 0 unchanged" in result.output
    assert count(engine) == n
