"""Collections (public/private, add/remove from cards, BibTeX) and follows, by page and API."""

from __future__ import annotations

from conftest import csrf
from paperfeed import db


def _create(c, name, public=False, **extra):
    data = {"name": name, "csrf_token": csrf(c), **extra}
    if public:
        data["is_public"] = "true"
    r = c.post("/collections", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text
    return r


def test_collection_lifecycle_and_bibtex(user_client, paper, client):
    c = user_client("ada")
    r = _create(c, "Reading list", public=True)
    cid = int(r.headers["location"].rsplit("/", 1)[1])
    card = c.get("/papers").text
    assert "/collect/2405.00001?next=" in card and ">Save<" in card
    assert "Reading list" in c.get("/collect/2405.00001").text
    r = c.post(
        f"/collections/{cid}/items",
        data={"arxiv_id": "2405.00001", "csrf_token": csrf(c), "next": "/papers"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/papers"
    assert "Saved ✓" in c.get("/papers").text
    public = client.get(f"/collections/{cid}")
    assert public.status_code == 200 and "Attention is a" in public.text and "by <a" in public.text
    bib = client.get(f"/collections/{cid}.bib")
    assert bib.status_code == 200 and bib.headers["content-type"].startswith("application/x-bibtex")
    assert "@misc{lovelace2024attention" in bib.text and "eprint = {2405.00001}" in bib.text
    assert "reading-list.bib" in bib.headers["content-disposition"]
    # same name twice gets its own slug
    second = _create(c, "Reading list")
    assert second.headers["location"] != f"/collections/{cid}"
    c.post(
        f"/collections/{cid}/items",
        data={"arxiv_id": "2405.00001", "remove": "true", "csrf_token": csrf(c)},
    )
    assert "This collection is empty" in client.get(f"/collections/{cid}").text
    c.post(
        f"/collections/{cid}/edit", data={"name": "Renamed", "csrf_token": csrf(c)}
    )  # now private
    assert client.get(f"/collections/{cid}").status_code == 404
    assert client.get(f"/collections/{cid}.bib").status_code == 404
    assert "Renamed" in c.get(f"/collections/{cid}").text
    c.post(f"/collections/{cid}/delete", data={"csrf_token": csrf(c)})
    assert c.get(f"/collections/{cid}").status_code == 404


def test_create_with_paper_from_save_page(user_client, paper):
    c = user_client("bob")
    r = _create(c, "Quick", arxiv_id="2405.00001", next="/papers/2405.00001")
    assert r.headers["location"] == "/papers/2405.00001"
    assert "Saved in 1 collection" in c.get("/papers/2405.00001").text


def test_collections_api_crud(user_client, paper, client):
    c = user_client("carol")
    h = {"X-CSRF-Token": csrf(c)}
    r = c.post("/api/collections", json={"name": "API list", "is_public": True}, headers=h)
    assert r.status_code == 201
    cid = r.json()["id"]
    assert r.json()["owner"] == "carol" and r.json()["size"] == 0
    r = c.put(f"/api/collections/{cid}/papers/2405.00001", headers=h)
    assert r.status_code == 200 and [p["arxiv_id"] for p in r.json()["papers"]] == ["2405.00001"]
    for i in range(3):
        c.post("/api/collections", json={"name": f"more {i}"}, headers=h)
    page = c.get("/api/collections?limit=2").json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = c.get(f"/api/collections?limit=2&cursor={page['next_cursor']}").json()
    assert len(rest["items"]) == 2 and rest["next_cursor"] is None
    assert client.get(f"/api/collections/{cid}").json()["size"] == 1
    r = c.patch(
        f"/api/collections/{cid}", json={"name": "Private now", "is_public": False}, headers=h
    )
    assert r.status_code == 200 and r.json()["name"] == "Private now"
    assert client.get(f"/api/collections/{cid}").status_code == 404
    assert c.delete(f"/api/collections/{cid}/papers/2405.00001", headers=h).json()["papers"] == []
    assert c.delete(f"/api/collections/{cid}", headers=h).status_code == 204
    assert c.get(f"/api/collections/{cid}").status_code == 404


def test_follow_authors_and_categories(user_client, paper, engine):
    c = user_client("dave")
    page = c.get("/papers/2405.00001").text
    assert "Follow cs.CL" in page and "Follow Ada Lovelace" in page
    c.post("/follows", data={"kind": "author", "value": "Ada Lovelace", "csrf_token": csrf(c)})
    c.post("/follows", data={"kind": "category", "value": "cs.CL", "csrf_token": csrf(c)})
    c.post(
        "/follows", data={"kind": "category", "value": "cs.CL", "csrf_token": csrf(c)}
    )  # idempotent
    page = c.get("/papers/2405.00001").text
    assert "Following cs.CL" in page and "Following Ada Lovelace" in page
    with db.read(engine) as conn:
        rows = conn.exec_driver_sql("SELECT kind, value FROM follows ORDER BY kind").all()
        key = conn.exec_driver_sql(
            "SELECT name_key FROM paper_authors WHERE name = 'Ada Lovelace'"
        ).scalar()
    assert [tuple(r) for r in rows] == [("author", key), ("category", "cs.CL")]
    r = c.post("/follows", data={"kind": "category", "value": "not a cat!", "csrf_token": csrf(c)})
    assert r.status_code == 400 and "not an arXiv category" in r.text
    c.post(
        "/follows",
        data={"kind": "author", "value": "Ada Lovelace", "remove": "true", "csrf_token": csrf(c)},
    )
    h = {"X-CSRF-Token": csrf(c)}
    assert c.get("/api/follows").json() == [{"kind": "category", "value": "cs.CL"}]
    assert (
        c.post(
            "/api/follows", json={"kind": "author", "value": "Alan Turing"}, headers=h
        ).status_code
        == 201
    )
    assert c.delete("/api/follows?kind=category&value=cs.CL", headers=h).status_code == 204
    assert c.get("/api/follows").json() == [{"kind": "author", "value": "alan turing"}]
