"""Security suite: stored XSS, CSRF, brute force, IDOR, over-long and malformed input."""

from __future__ import annotations

import statistics
import time
from html.parser import HTMLParser

import pytest

from conftest import csrf, sign_in
from paperfeed import db, papers
from paperfeed.sources import PaperRecord

XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "<javascript:alert(1)>",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    '<a href="javascript:alert(1)">x</a>',
    "[x](vbscript:msgbox(1))",
    "<iframe src=//evil.example></iframe>",
    "<style>body{display:none}</style>",
]


class _Tags(HTMLParser):
    """Collects the real elements of a page (escaped text is not an element)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.in_script = False

    def handle_starttag(self, tag, attrs):
        if tag == "svg" and dict(attrs).get("aria-hidden") == "true":
            pass  # the templates' own decorative icons (event handlers are still checked below)
        elif tag in ("iframe", "svg", "object", "embed", "style", "img"):
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"{tag} {name}")
            if name in ("href", "src", "action", "formaction") and value:
                scheme = value.strip().lower().replace("\t", "").replace("\n", "")
                if scheme.startswith(("javascript:", "vbscript:", "data:")):
                    self.problems.append(f"{tag} {name}={value}")
        if tag == "script":
            src = dict(attrs).get("src") or ""
            if not src.startswith("/static/"):
                self.problems.append(f"script src={src!r}")
            self.in_script = True

    def handle_endtag(self, tag):
        if tag == "script":
            self.in_script = False

    def handle_data(self, data):
        if self.in_script and data.strip():
            self.problems.append(f"inline script {data[:40]!r}")


def assert_inert(html: str) -> None:
    """No script-capable markup from user data: only our own script tags, no handlers/URLs."""
    parser = _Tags()
    parser.feed(html)
    assert not parser.problems, parser.problems


def _comment(c, body, arxiv_id="2405.00001"):
    return c.post(
        f"/papers/{arxiv_id}/comments",
        data={"body": body, "csrf_token": csrf(c)},
        follow_redirects=False,
    )


# ---- Stored XSS --------------------------------------------------------------------------


def test_xss_in_comments_is_inert(user_client, paper, client, settings):
    settings.comment_limit = 100
    c = user_client("ada")
    for payload in XSS:
        assert _comment(c, payload).status_code == 303
    _comment(c, "\n\n".join(XSS))
    for page in (client.get("/papers/2405.00001").text, client.get("/users/ada").text):
        assert_inert(page)
    api = client.get("/api/papers/2405.00001/comments?limit=200").json()["items"]
    for item in api:
        assert_inert(item["body_html"])


def test_xss_in_titles_abstracts_authors_is_inert(user_client, engine, client):
    import datetime as dt

    evil = PaperRecord(
        arxiv_id="2405.06666",
        title='<script>alert("t")</script><img src=x onerror=alert(1)>',
        source="test",
        abstract="<svg onload=alert(1)> $x$ <script>alert(2)</script>",
        authors=['<img src=x onerror=alert("a")>'],
        categories=["cs.CL"],
        comments='"><script>alert(3)</script>',
        featured_date=dt.date(2024, 5, 27),
    )
    with db.transaction(engine) as conn:
        papers.upsert_records(conn, [evil])
    c = user_client("bob")
    h = {"X-CSRF-Token": csrf(c)}
    cid = c.post(
        "/api/collections",
        json={
            "name": "<script>alert(4)</script>",
            "description": "<img src=x onerror=alert(5)>",
            "is_public": True,
        },
        headers=h,
    ).json()["id"]
    c.put(f"/api/collections/{cid}/papers/2405.06666", headers=h)
    c.post("/settings/tokens", data={"name": "<script>alert(6)</script>", "csrf_token": csrf(c)})
    pages = [
        client.get("/papers").text,
        client.get("/papers/2405.06666").text,
        client.get(f"/collections/{cid}").text,
        c.get("/collections").text,
        c.get("/collect/2405.06666").text,
        c.get("/settings").text,
        c.get("/papers/2405.06666").text,
    ]
    for page in pages:
        assert_inert(page)
    assert "&lt;script&gt;" in pages[1]


def test_xss_in_usernames_and_echoed_inputs(client, user_client, paper):
    r = client.post(
        "/signup",
        data={
            "username": "<script>alert(1)</script>",
            "email": "x@example.org",
            "password": "0123456789ab",
            "csrf_token": csrf(client),
        },
    )
    assert r.status_code == 400
    assert_inert(r.text)
    r = client.post(
        "/signin",
        data={"login": '"><script>alert(1)</script>', "password": "x", "csrf_token": csrf(client)},
    )
    assert r.status_code == 401 and "&#34;&gt;&lt;script&gt;" in r.text
    assert_inert(r.text)
    assert_inert(client.get('/users/"><script>alert(1)</script>').text)
    r = client.get("/signin?next=javascript:alert(1)")
    assert 'value="/papers"' in r.text  # open redirect / scheme refused


# ---- CSRF --------------------------------------------------------------------------------


def test_state_changing_posts_without_csrf_are_refused(user_client, paper, engine):
    c = user_client("carol", admin=True)
    posts = [
        ("/papers/2405.00001/upvote", {}),
        ("/papers/2405.00001/comments", {"body": "x"}),
        ("/collections", {"name": "x"}),
        ("/follows", {"kind": "category", "value": "cs.CL"}),
        ("/settings/tokens", {"name": "x"}),
        ("/settings/privacy", {}),
        ("/admin/papers/2405.00001/hide", {}),
        ("/papers/submit", {"arxiv_id": "2405.00001"}),
        ("/signout", {}),
    ]
    for path, data in posts:
        assert c.post(path, data=data).status_code == 403, path
        assert c.post(path, data={**data, "csrf_token": "forged" * 7}).status_code == 403, path
    api = [
        ("post", "/api/papers/2405.00001/upvote", None),
        ("post", "/api/collections", {"name": "x"}),
        ("post", "/api/papers/2405.00001/comments", {"body": "x"}),
    ]
    for method, path, body in api:  # cookie-authenticated API calls need the header
        assert getattr(c, method)(path, json=body).status_code == 403, path
    with db.read(engine) as conn:
        row = papers.get_paper(conn, "2405.00001", include_hidden=True)
        assert row.upvotes == 3 and not row.hidden
        for table in ("votes", "comments", "collections", "follows", "api_tokens"):
            assert conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() == 0, table
    assert c.get("/settings").status_code == 200  # still signed in


def test_csrf_token_is_bound_to_the_session(user_client, paper):
    a, b = user_client("dave"), user_client("erin")
    r = b.post("/api/papers/2405.00001/upvote", headers={"X-CSRF-Token": csrf(a)})
    assert r.status_code == 403
    b.cookies.set("pf_csrf", csrf(a))  # even with a's token in b's cookie
    r = b.post("/papers/2405.00001/upvote", data={"csrf_token": csrf(a)})
    assert r.status_code == 403


def test_anonymous_forms_need_the_cookie_token(client):
    r = client.post(
        "/signup", data={"username": "zed", "email": "z@example.org", "password": "0123456789ab"}
    )
    assert r.status_code == 403
    r = client.post("/signin", data={"login": "zed", "password": "x"})
    assert r.status_code == 403


# ---- Brute force -------------------------------------------------------------------------


def test_lockout_after_repeated_failures_same_message(client, make_user, engine, settings):
    name, password = make_user("frank")
    msgs = []
    for _ in range(settings.lockout_after):
        r = sign_in(client, name, "wrong-password")
        assert r.status_code == 401
        msgs.append(r.text)
    r = sign_in(client, name, password)  # correct password, but locked
    assert r.status_code == 401 and r.text == msgs[0]
    unknown = sign_in(client, "nobody-here", "wrong-password")
    assert unknown.status_code == 401 and unknown.text.replace("nobody-here", name) == msgs[0]
    with db.transaction(engine) as conn:
        conn.exec_driver_sql("UPDATE users SET locked_until = '2000-01-01 00:00:00'")
    assert sign_in(client, name, password).status_code == 303
    with db.read(engine) as conn:
        assert conn.exec_driver_sql("SELECT failed_logins FROM users").scalar() == 0


def test_backoff_doubles(client, make_user, engine, settings):
    name, _ = make_user("gina")
    for _ in range(settings.lockout_after + 2):
        with db.transaction(engine) as conn:  # skip the wait between attempts
            conn.exec_driver_sql("UPDATE users SET locked_until = NULL")
        sign_in(client, name, "wrong-password")
    with db.read(engine) as conn:
        until = conn.exec_driver_sql("SELECT locked_until FROM users").scalar()
    import datetime as dt

    locked_for = dt.datetime.fromisoformat(str(until)) - dt.datetime.now(dt.UTC).replace(
        tzinfo=None
    )
    assert (
        dt.timedelta(seconds=settings.lockout_base_s * 4 - 30)
        < locked_for
        <= dt.timedelta(seconds=settings.lockout_base_s * 4)
    )


def test_rate_limits_per_name_and_ip_are_in_the_database(client, settings, engine):
    settings.signin_limit_per_name = 3
    codes = [sign_in(client, "ghost", "x" * 12).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    with db.read(engine) as conn:
        count = conn.exec_driver_sql(
            "SELECT count FROM rate_limits WHERE key = 'signin:name:ghost'"
        ).scalar()
    assert count == 4  # shared state, not process memory
    settings.signin_limit_per_ip = 5
    assert sign_in(client, "other", "x" * 12).status_code == 401
    assert sign_in(client, "other2", "x" * 12).status_code == 429


def test_signup_rate_limit(client, settings):
    settings.signup_limit_per_ip = 2
    codes = []
    for i in range(3):
        r = client.post(
            "/signup",
            data={
                "username": f"new{i}",
                "email": f"n{i}@example.org",
                "password": "0123456789ab",
                "csrf_token": csrf(client),
            },
        )
        codes.append(r.status_code)
    assert codes == [200, 200, 429]


def test_unknown_user_costs_as_much_as_a_wrong_password(client, make_user, settings):
    settings.password_memory_kib = 8192  # measurable cost (a few ms per hash)
    name, _ = make_user("hank")

    times: dict[str, list[float]] = {name: [], "no-such-user": []}
    for _ in range(6):  # interleaved, so machine load hits both alike
        for login in times:
            t = time.perf_counter()
            sign_in(client, login, "wrong-password")
            times[login].append(time.perf_counter() - t)
    known, unknown = (statistics.median(v) for v in times.values())
    # without the dummy verification an unknown name answers ~100x faster
    assert unknown > 0.3 * known, (known, unknown)


# ---- IDOR --------------------------------------------------------------------------------


def test_cannot_edit_or_delete_others_comments(user_client, paper, client):
    owner, other = user_client("ivy"), user_client("jack")
    r = _comment(owner, "mine")
    cid = int(r.headers["location"].split("-")[-1])
    assert other.get(f"/comments/{cid}/edit").status_code == 403
    assert (
        other.post(
            f"/comments/{cid}/edit", data={"body": "pwned", "csrf_token": csrf(other)}
        ).status_code
        == 403
    )
    assert (
        other.post(f"/comments/{cid}/delete", data={"csrf_token": csrf(other)}).status_code == 403
    )
    h = {"X-CSRF-Token": csrf(other)}
    assert other.patch(f"/api/comments/{cid}", json={"body": "pwned"}, headers=h).status_code == 403
    assert other.delete(f"/api/comments/{cid}", headers=h).status_code == 403
    page = client.get("/papers/2405.00001").text
    assert "mine" in page and "pwned" not in page
    assert f"/comments/{cid}/edit" not in other.get("/papers/2405.00001").text


def test_cannot_see_or_change_others_private_collections(user_client, paper):
    owner, other = user_client("kim"), user_client("lee")
    r = owner.post(
        "/collections", data={"name": "secret", "csrf_token": csrf(owner)}, follow_redirects=False
    )
    cid = int(r.headers["location"].rsplit("/", 1)[1])
    h = {"X-CSRF-Token": csrf(other)}
    assert other.get(f"/collections/{cid}").status_code == 404
    assert other.get(f"/collections/{cid}.bib").status_code == 404
    assert other.get(f"/api/collections/{cid}").status_code == 404
    assert (
        other.post(
            f"/collections/{cid}/items", data={"arxiv_id": "2405.00001", "csrf_token": csrf(other)}
        ).status_code
        == 404
    )
    assert (
        other.post(
            f"/collections/{cid}/edit", data={"name": "mine now", "csrf_token": csrf(other)}
        ).status_code
        == 404
    )
    assert (
        other.post(f"/collections/{cid}/delete", data={"csrf_token": csrf(other)}).status_code
        == 404
    )
    assert other.put(f"/api/collections/{cid}/papers/2405.00001", headers=h).status_code == 404
    assert (
        other.patch(
            f"/api/collections/{cid}", json={"name": "x", "is_public": True}, headers=h
        ).status_code
        == 404
    )
    assert other.delete(f"/api/collections/{cid}", headers=h).status_code == 404
    assert owner.get(f"/collections/{cid}").status_code == 200
    assert (
        "secret" in owner.get(f"/collections/{cid}").text
        and "secret" not in other.get("/users/kim").text
    )
    # public: readable, still not writable
    owner.post(
        f"/collections/{cid}/edit",
        data={"name": "open", "is_public": "true", "csrf_token": csrf(owner)},
    )
    assert other.get(f"/collections/{cid}").status_code == 200
    assert (
        other.post(
            f"/collections/{cid}/items", data={"arxiv_id": "2405.00001", "csrf_token": csrf(other)}
        ).status_code
        == 404
    )


def test_cannot_revoke_others_tokens(user_client, client):
    owner, other = user_client("max"), user_client("ned")
    page = owner.post("/settings/tokens", data={"name": "t", "csrf_token": csrf(owner)}).text
    token = page.split('id="new-token">')[1].split("<")[0]
    token_id = page.split("/settings/tokens/")[1].split("/")[0]
    r = other.post(f"/settings/tokens/{token_id}/revoke", data={"csrf_token": csrf(other)})
    assert r.status_code == 404
    assert (
        client.get("/api/collections", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )
    assert "t</td>" not in other.get("/settings").text


# ---- Over-long and malformed input -------------------------------------------------------


def test_overlong_and_malformed_inputs_are_refused_cleanly(user_client, paper, engine, client):
    c = user_client("olga")
    h = {"X-CSRF-Token": csrf(c)}
    r = _comment(c, "x" * 10_001)
    assert r.status_code == 400 and "at most 10000 characters" in r.text
    assert _comment(c, "   ").status_code == 400
    assert _comment(c, "x" * 50_000).status_code == 422  # beyond the form limit
    r = c.post("/api/papers/2405.00001/comments", json={"body": "x" * 10_001}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["status"] == 422
    r = c.post(
        "/api/papers/2405.00001/comments",
        content=b"{not json",
        headers={**h, "content-type": "application/json"},
    )
    assert r.status_code == 422
    r = c.post(
        "/papers/2405.00001/comments", data={"body": "x", "parent_id": "abc", "csrf_token": csrf(c)}
    )
    assert r.status_code == 422
    assert (
        c.post(
            "/papers/2405.00001/comments",
            data={"body": "x", "parent_id": "999999", "csrf_token": csrf(c)},
        ).status_code
        == 404
    )
    assert c.get("/comments/notanumber/edit").status_code == 422
    r = c.post("/collections", data={"name": "n" * 101, "csrf_token": csrf(c)})
    assert r.status_code == 400 and "at most 100" in r.text
    assert c.post("/api/collections", json={"name": ""}, headers=h).status_code == 422
    assert c.get("/api/collections?cursor=-1").status_code == 400
    assert c.get("/api/collections?limit=100000").status_code == 422
    r = c.post("/settings/tokens", data={"name": "t" * 101, "csrf_token": csrf(c)})
    assert "1-100 characters" in r.text
    r = client.post(
        "/signup",
        data={
            "username": "u" * 31,
            "email": "a@example.org",
            "password": "0123456789ab",
            "csrf_token": csrf(client),
        },
    )
    assert r.status_code == 400
    r = client.post(
        "/signup",
        data={
            "username": "okname",
            "email": "a@example.org",
            "password": "p" * 257,
            "csrf_token": csrf(client),
        },
    )
    assert r.status_code == 400 and "at most 256" in r.text
    r = sign_in(client, "olga", "p" * 300)
    assert r.status_code == 401
    assert (
        client.post(
            "/signin", data={"login": "x", "password": "p" * 5000, "csrf_token": csrf(client)}
        ).status_code
        == 422
    )
    # NUL bytes are dropped, not stored
    assert _comment(c, "a\x00b").status_code == 303
    with db.read(engine) as conn:
        bodies = conn.exec_driver_sql("SELECT body_md FROM comments").scalars().all()
        assert bodies == ["ab"]
        assert papers.get_paper(conn, "2405.00001").num_comments == 3
        assert conn.exec_driver_sql("SELECT count(*) FROM collections").scalar() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM users").scalar() == 1


@pytest.mark.parametrize(
    "path", ["/users/" + "x" * 5000, "/collections/99999999999999999999", "/collect/nonsense"]
)
def test_odd_paths_are_clean_errors(client, user_client, path):
    c = user_client("pat")
    assert c.get(path).status_code in (404, 422)
