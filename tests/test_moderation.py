"""Moderation: admins hide/restore papers and comments, suspend users; all in the audit log."""

from __future__ import annotations

from conftest import csrf, sign_in
from paperfeed import db, papers


def test_only_admins_moderate(user_client, paper, client):
    c = user_client("ada")
    assert c.get("/admin/audit").status_code == 403
    r = c.post("/admin/papers/2405.00001/hide", data={"csrf_token": csrf(c)})
    assert r.status_code == 403
    assert client.get("/admin/audit", follow_redirects=False).status_code == 303


def test_hide_restore_paper_and_comment_with_audit(user_client, paper, engine, client):
    admin = user_client("mod", admin=True)
    writer = user_client("bob")
    r = writer.post(
        "/papers/2405.00001/comments",
        data={"body": "spam spam", "csrf_token": csrf(writer)},
        follow_redirects=False,
    )
    comment_id = int(r.headers["location"].split("-")[-1])
    assert "Moderation" in admin.get("/papers").text
    admin.post(f"/admin/comments/{comment_id}/hide", data={"csrf_token": csrf(admin)})
    page = client.get("/papers/2405.00001").text
    assert "spam spam" not in page and "removed by a moderator" not in page
    assert "spam spam" in admin.get("/papers/2405.00001").text  # admins still see it, marked
    with db.read(engine) as conn:
        assert papers.get_paper(conn, "2405.00001").num_comments == 2
    assert "spam spam" in admin.get("/admin/audit").text
    admin.post(f"/admin/comments/{comment_id}/restore", data={"csrf_token": csrf(admin)})
    assert "spam spam" in client.get("/papers/2405.00001").text

    admin.post("/admin/papers/2405.00001/hide", data={"csrf_token": csrf(admin)})
    assert client.get("/papers/2405.00001").status_code == 404
    assert "Attention is a" not in client.get("/papers").text
    audit = admin.get("/admin/audit").text
    assert "Attention is a" in audit  # listed under hidden papers with a restore button
    admin.post("/admin/papers/2405.00001/restore", data={"csrf_token": csrf(admin)})
    assert client.get("/papers/2405.00001").status_code == 200
    with db.read(engine) as conn:
        log = conn.exec_driver_sql(
            "SELECT u.username, a.action, a.target_type FROM audit_log a"
            " JOIN users u ON u.id = a.actor_id ORDER BY a.id"
        ).all()
    assert [tuple(x) for x in log] == [
        ("mod", "hide", "comment"),
        ("mod", "restore", "comment"),
        ("mod", "hide", "paper"),
        ("mod", "restore", "paper"),
    ]


def test_suspend_signs_out_and_blocks(user_client, make_user, paper, app):
    from fastapi.testclient import TestClient

    admin = user_client("mod2", admin=True)
    victim = user_client("carol")
    assert victim.get("/settings").status_code == 200
    r = admin.post(
        "/admin/users/carol/suspend", data={"csrf_token": csrf(admin)}, follow_redirects=False
    )
    assert r.status_code == 303
    assert victim.get("/settings", follow_redirects=False).status_code == 303  # session gone
    with TestClient(app) as fresh:
        r = sign_in(fresh, "carol", "pw-carol-0123456789")
        assert r.status_code == 401 and "suspended" in r.text
    assert admin.get("/users/carol").status_code == 200
    assert (
        admin.post("/admin/users/mod2/suspend", data={"csrf_token": csrf(admin)}).status_code == 400
    )
    admin.post("/admin/users/carol/unsuspend", data={"csrf_token": csrf(admin)})
    with TestClient(app) as fresh:
        assert sign_in(fresh, "carol", "pw-carol-0123456789").status_code == 303
