"""Accounts end to end: sign-up, verification mail, sign-in, remember me, reset, tokens, CLI."""

from __future__ import annotations

from typer.testing import CliRunner

from conftest import csrf, mail_link, outbox_messages, sign_in
from paperfeed import accounts, db


def _signup(client, username, email, password="correct horse battery"):
    return client.post(
        "/signup",
        data={
            "username": username,
            "email": email,
            "password": password,
            "csrf_token": csrf(client),
        },
    )


def test_signup_verify_signin_profile_signout(client, settings, engine):
    r = _signup(client, "ada", "Ada@Example.org")
    assert r.status_code == 200 and "Check your inbox" in r.text
    (msg,) = outbox_messages(settings)
    assert msg["To"] == "ada@example.org"
    with db.read(engine) as conn:
        row = accounts.by_name(conn, "ada")
    assert row.password_hash.startswith("$argon2id$")
    assert row.email_verified_at is None

    r = sign_in(client, "ada", "correct horse battery")
    assert r.status_code == 303 and r.headers["location"] == "/papers"
    cookie = r.headers.get_list("set-cookie")
    session = next(c for c in cookie if c.startswith("pf_session="))
    assert "HttpOnly" in session and "SameSite=lax" in session and "Max-Age" not in session
    page = client.get("/settings")
    assert "not verified yet" in page.text

    r = client.get(mail_link(msg, "/verify"))
    assert r.status_code == 200 and "Email verified" in r.text
    assert "Your email address is verified" in client.get("/settings").text
    assert client.get(mail_link(msg, "/verify")).status_code == 200  # idempotent
    assert client.get("/verify?token=garbage").status_code == 400

    profile = client.get("/users/ADA")
    assert profile.status_code == 200 and "Member since" in profile.text
    assert client.get("/users/nobody").status_code == 404

    r = client.post("/signout", data={"csrf_token": csrf(client)}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/settings", follow_redirects=False).status_code == 303


def test_remember_me_and_secure_cookie(app, settings, make_user):
    from fastapi.testclient import TestClient

    _name, password = make_user("bob")
    settings.cookie_secure = True
    with TestClient(app, base_url="https://testserver") as c:
        r = sign_in(c, "bob@example.org", password, remember=True)
        assert r.status_code == 303
        session = next(h for h in r.headers.get_list("set-cookie") if h.startswith("pf_session="))
        assert f"Max-Age={settings.remember_days * 86400}" in session
        assert "Secure" in session and "HttpOnly" in session


def test_session_is_server_side_and_revocable(client, make_user, engine):
    name, password = make_user("carol")
    sign_in(client, name, password)
    token = client.cookies.get("pf_session")
    with db.read(engine) as conn:
        stored = conn.exec_driver_sql("SELECT token_hash FROM sessions").scalars().all()
    assert token not in stored and len(stored) == 1  # only the digest is stored
    with db.transaction(engine) as conn:
        conn.exec_driver_sql("DELETE FROM sessions")
    assert client.get("/settings", follow_redirects=False).status_code == 303


def test_signup_does_not_reveal_registered_addresses(client, settings, make_user):
    make_user("dave")
    new = _signup(client, "dave2", "dave@example.org")
    fresh = _signup(client, "erin", "erin@example.org")
    assert new.status_code == fresh.status_code == 200
    assert new.text.replace("dave2", "X") == fresh.text.replace("erin", "X")
    subjects = [m["Subject"] for m in outbox_messages(settings)]
    assert any("tried to sign up" in s for s in subjects)
    taken = _signup(client, "Dave", "other@example.org")
    assert taken.status_code == 400 and "taken" in taken.text


def test_signup_validation_messages(client):
    cases = {
        ("a", "a@example.org", "long enough pw"): "3-30 characters",
        ("<script>", "x@example.org", "long enough pw"): "3-30 characters",
        ("admin", "x@example.org", "long enough pw"): "reserved",
        ("okname", "not-an-email", "long enough pw"): "valid email",
        ("okname", "x@example.org", "short"): "at least 10",
    }
    for (u, e, p), message in cases.items():
        r = _signup(client, u, e, p)
        assert r.status_code == 400 and message in r.text, (u, r.text)


def test_password_reset_flow(client, settings, make_user):
    name, old = make_user("frank")
    r = client.post("/reset", data={"email": "frank@example.org", "csrf_token": csrf(client)})
    unknown = client.post("/reset", data={"email": "ghost@example.org", "csrf_token": csrf(client)})
    assert r.status_code == unknown.status_code == 200 and r.text == unknown.text
    (msg,) = outbox_messages(settings)
    link = mail_link(msg, "/reset/confirm")
    assert client.get(link).status_code == 200
    token = link.split("token=")[1]
    r = client.post(
        "/reset/confirm",
        data={"token": token, "password": "a brand new password", "csrf_token": csrf(client)},
    )
    assert r.status_code == 200 and "Password changed" in r.text
    # single use: the link is bound to the old password hash
    again = client.post(
        "/reset/confirm",
        data={"token": token, "password": "another new one!", "csrf_token": csrf(client)},
    )
    assert again.status_code == 400
    assert sign_in(client, name, old).status_code == 401
    assert sign_in(client, name, "a brand new password").status_code == 303


def test_api_tokens_create_use_revoke(user_client, client):
    c = user_client("gina")
    r = c.post("/settings/tokens", data={"name": "script", "csrf_token": csrf(c)})
    assert r.status_code == 200
    token = r.text.split('id="new-token">')[1].split("<")[0]
    assert token.startswith("pf_")
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/collections", headers=auth).status_code == 200
    assert "never" not in c.get("/settings").text  # last used is recorded
    token_id = c.get("/settings").text.split("/settings/tokens/")[1].split("/")[0]
    r = c.post(f"/settings/tokens/{token_id}/revoke", data={"csrf_token": csrf(c)})
    assert r.status_code == 200
    r = client.get("/api/collections", headers=auth)
    assert r.status_code == 401 and r.json()["error"]["status"] == 401
    bad = client.get("/api/collections", headers={"Authorization": "Bearer pf_nope"})
    assert bad.status_code == 401


def test_cli_users_commands(engine, settings, make_user, monkeypatch, tmp_path):
    from paperfeed.cli import app as cli

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PAPERFEED_DATABASE_URL", url)
    monkeypatch.setenv("PAPERFEED_PASSWORD_MEMORY_KIB", "1024")
    disk = db.make_engine(url)
    db.upgrade(disk)
    with db.transaction(disk) as conn:
        accounts.sign_up(conn, settings, "hank", "hank@example.org", "0123456789ab")
    runner = CliRunner()
    r = runner.invoke(cli, ["users", "promote", "hank"])
    assert r.exit_code == 0 and "promoted" in r.output
    assert "already" in runner.invoke(cli, ["users", "promote", "hank"]).output
    r = runner.invoke(cli, ["users", "list"])
    assert "hank" in r.output and "admin" in r.output
    assert runner.invoke(cli, ["users", "demote", "hank"]).exit_code == 0
    r = runner.invoke(cli, ["users", "suspend", "hank"])
    assert r.exit_code == 0 and "suspended" in runner.invoke(cli, ["users", "list"]).output
    assert runner.invoke(cli, ["users", "promote", "nobody"]).exit_code == 1
    with db.transaction(disk) as conn:
        conn.exec_driver_sql(
            "INSERT INTO rate_limits (key, window_start, count) VALUES ('old', 0, 1), "
            "('new', 9999999999, 1)"
        )
    r = runner.invoke(cli, ["users", "cleanup"])
    assert r.exit_code == 0 and "1 rate-limit window" in r.output
    with db.read(disk) as conn:
        actions = conn.exec_driver_sql("SELECT action FROM audit_log ORDER BY id").scalars().all()
    assert actions == ["promote", "demote", "suspend"]
    disk.dispose()
