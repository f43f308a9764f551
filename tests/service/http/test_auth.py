"""API keys, roles and the auth matrix: every route x {no key, wrong key, revoked key, each role}."""

from __future__ import annotations

import time

import pytest

from index.db import open_database
from index.settings import Settings
from index.store import Store
from service import auth
from service.server import is_loopback, unsafe_binding

# (method, path, json body, minimum role). Bodies are deliberately invalid where the call would
# otherwise change state: an allowed caller then gets a 400/404, which still proves it got past
# authentication and authorisation (both run before the body is read).
ROUTES = [
    ("POST", "/v1/search", {"query": "vacation"}, "reader"),
    ("POST", "/v1/answer", {"query": "vacation days"}, "reader"),
    ("GET", "/v1/chunks/999999", None, "reader"),
    ("POST", "/v1/chat/completions", {"model": "groundwork", "messages": [{"role": "user", "content": "vacation days?"}]}, "reader"),
    ("GET", "/v1/models", None, "reader"),
    ("GET", "/v1/documents", None, "writer"),
    ("GET", "/v1/documents/999999", None, "writer"),
    ("PATCH", "/v1/documents/999999", {"title": "x"}, "writer"),
    ("DELETE", "/v1/documents/999999", None, "writer"),
    ("POST", "/v1/documents", None, "writer"),
    ("GET", "/v1/ingest-jobs/nonexistent", None, "writer"),
    ("POST", "/v1/ingest-jobs", {"paths": []}, "admin"),
    ("POST", "/v1/reindex", {"unknown_field": 1}, "admin"),
    ("GET", "/v1/reindex", None, "admin"),
    ("POST", "/v1/keys", {}, "admin"),
    ("GET", "/v1/keys", None, "admin"),
    ("DELETE", "/v1/keys/000000000000", None, "admin"),
]
RANK = {"reader": 0, "writer": 1, "admin": 2}


@pytest.fixture
def store(tmp_path):
    engine = open_database(Settings(data_dir=tmp_path / "d"))
    yield Store(engine)
    engine.dispose()


# --- key functions ---------------------------------------------------------------------------------


def test_create_authenticate_revoke(store):
    plaintext, row = auth.create_key(store, "writer", ["eng", "ops"], "ci-bot")
    assert plaintext.startswith(f"gw_{row.prefix}_")
    assert row.key_hash != plaintext and plaintext.split("_", 2)[2] not in row.key_hash
    info = auth.authenticate(store, f"Bearer {plaintext}")
    assert info is not None and info.role == "writer" and info.prefix == row.prefix
    assert info.principal.id == "ci-bot" and info.principal.groups == {"eng", "ops"} and not info.principal.all_access
    assert auth.authenticate(store, f"bearer   {plaintext}  ") is not None  # scheme is case-insensitive
    assert auth.revoke_key(store, row.prefix)
    assert auth.authenticate(store, f"Bearer {plaintext}") is None
    assert not auth.revoke_key(store, row.prefix)  # already revoked
    assert [k.prefix for k in auth.list_keys(store)] == [row.prefix]
    assert auth.list_keys(store, include_revoked=False) == []


def test_revoke_by_id_or_whole_key(store):
    plaintext, row = auth.create_key(store, "reader", [], "a")
    assert auth.revoke_key(store, str(row.id))
    plaintext2, _ = auth.create_key(store, "reader", [], "b")
    assert auth.revoke_key(store, plaintext2)
    assert auth.authenticate(store, f"Bearer {plaintext2}") is None


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer gw_", "Bearer gw__secret", "Bearer xx_0123456789ab_secret",
    "Bearer gw_0123456789ab_", "Bearer gw_NOTHEX012345_secret", "Bearer gw_0123456789ab_" + "a" * 500,
])
def test_malformed_headers_are_rejected(store, header):
    auth.create_key(store, "admin", ["*"], "x")
    assert auth.authenticate(store, header) is None


def test_wrong_secret_with_a_real_prefix_is_rejected(store):
    plaintext, row = auth.create_key(store, "admin", [], "x")
    assert auth.authenticate(store, f"Bearer gw_{row.prefix}_{'x' * 43}") is None


def test_admins_are_not_all_access_unless_star(store):
    _, _ = auth.create_key(store, "admin", ["eng"], "plain-admin")
    plain = auth.authenticate(store, f"Bearer {auth.create_key(store, 'admin', ['eng'], 'p')[0]}")
    star = auth.authenticate(store, f"Bearer {auth.create_key(store, 'reader', ['*'], 's')[0]}")
    assert not plain.principal.all_access and plain.principal.groups == {"eng"}
    assert star.principal.all_access and "*" not in star.principal.groups
    assert not plain.principal.can_see(["hr"]) and plain.principal.can_see([]) and star.principal.can_see(["hr"])


def test_unknown_role_is_refused(store):
    with pytest.raises(ValueError):
        auth.create_key(store, "root", [], "x")


def test_role_ordering():
    assert auth.role_allows("admin", "writer") and auth.role_allows("writer", "reader")
    assert not auth.role_allows("reader", "writer") and not auth.role_allows("nobody", "reader")


# --- dev mode binding ------------------------------------------------------------------------------


@pytest.mark.parametrize("host,loopback", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True), ("LOCALHOST", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("example.internal", False),
])
def test_loopback_detection(host, loopback):
    assert is_loopback(host) is loopback


def test_auth_off_is_refused_off_loopback(tmp_path):
    assert unsafe_binding(Settings(data_dir=tmp_path, auth="off", host="0.0.0.0")) is not None
    assert unsafe_binding(Settings(data_dir=tmp_path, auth="off", host="127.0.0.1")) is None
    assert unsafe_binding(Settings(data_dir=tmp_path, auth="required", host="0.0.0.0")) is None


def test_serve_refuses_auth_off_on_all_interfaces(tmp_path, capsys):
    from service.server import EXIT_UNSAFE, serve

    assert serve(Settings(data_dir=tmp_path, auth="off", host="0.0.0.0"), groundwork=object()) == EXIT_UNSAFE
    assert "auth=off" in capsys.readouterr().err


# --- the matrix over HTTP --------------------------------------------------------------------------


def _call(client, method, path, body):
    if method == "POST" and path == "/v1/documents":
        return client.post(path, files={"nope": ("x.txt", b"")})
    return client.request(method, path, json=body) if body is not None else client.request(method, path)


@pytest.mark.parametrize("method,path,body,role", ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_missing_wrong_and_revoked_keys_get_401(live, method, path, body, role):
    revoked_plain, revoked_row = auth.create_key(live.groundwork.store, "admin", ["*"], "to-revoke")
    auth.revoke_key(live.groundwork.store, revoked_row.prefix)
    for key in (None, "gw_0123456789ab_wrongsecret", "not-a-key", revoked_plain):
        with live.client(key) as client:
            response = _call(client, method, path, body)
        assert response.status_code == 401, (key, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"]["code"] in ("missing_api_key", "invalid_api_key")


@pytest.mark.parametrize("method,path,body,role", ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_roles(live, method, path, body, role):
    for key_role in ("reader", "writer", "admin"):
        with live.client(live.keys[key_role]) as client:
            response = _call(client, method, path, body)
        if RANK[key_role] < RANK[role]:
            assert response.status_code == 403, (key_role, response.text)
            assert response.json()["error"]["code"] == "forbidden"
        else:
            assert response.status_code not in (401, 403, 500), (key_role, response.status_code, response.text)


def test_health_and_schema_need_no_key_but_metrics_need_an_admin(live):
    with live.client() as client:
        assert client.get("/v1/health").status_code == 200
        assert client.get("/schema/openapi.json").status_code == 200
        assert client.get("/metrics").status_code == 401
    with live.client(live.keys["reader"]) as client:
        assert client.get("/metrics").status_code == 403
    with live.client(live.keys["admin"]) as client:
        assert client.get("/metrics").status_code == 200


def test_health_shows_index_counts_to_admins_only(live):
    with live.client() as anonymous:
        public = anonymous.get("/v1/health").json()["indexes"]
    with live.client(live.keys["reader"]) as reader:
        as_reader = reader.get("/v1/health").json()["indexes"]
    with live.client(live.keys["admin"]) as admin:
        as_admin = admin.get("/v1/health").json()["indexes"]
    for view in (public, as_reader):
        assert set(view) == {"version", "state"}, view
    assert as_admin["vectors"] > 0 and "keyword_docs" in as_admin and "position" in as_admin


def test_models_list_only_collections_the_key_can_see(fresh):
    server = fresh()
    with server.client(server.keys["admin_all"]) as admin:
        assert admin.post("/v1/documents", files={"file": ("pay.txt", b"Salary bands for directors.")},
                          data={"groups": "hr", "collection": "hr-private"}).status_code == 201
        assert "hr-private" in [m["id"] for m in admin.get("/v1/models").json()["data"]]
    with server.client(server.keys["reader"]) as reader:
        names = [m["id"] for m in reader.get("/v1/models").json()["data"]]
        assert "hr-private" not in names and "groundwork" in names
        hidden = reader.post("/v1/chat/completions", json={"model": "hr-private", "messages": [{"role": "user", "content": "salary"}]})
        missing = reader.post("/v1/chat/completions", json={"model": "no-such", "messages": [{"role": "user", "content": "salary"}]})
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["error"]["code"] == missing.json()["error"]["code"] == "model_not_found"


def test_admin_manages_keys_over_http(live):
    with live.client(live.keys["admin"]) as admin:
        created = admin.post("/v1/keys", json={"role": "reader", "groups": ["eng"], "name": "portal"})
        assert created.status_code == 201, created.text
        new_key, prefix = created.json()["key"], created.json()["info"]["prefix"]
        listed = admin.get("/v1/keys").json()
        assert prefix in [k["prefix"] for k in listed]
        assert all("key_hash" not in k and "key" not in k for k in listed)
        with live.client(new_key) as reader:
            assert reader.post("/v1/search", json={"query": "deploy"}).status_code == 200
            assert admin.delete(f"/v1/keys/{prefix}").status_code == 204
            assert reader.post("/v1/search", json={"query": "deploy"}).status_code == 401
        assert admin.delete(f"/v1/keys/{prefix}").status_code == 404
        assert admin.post("/v1/keys", json={"role": "root"}).status_code == 400


def test_dev_mode_is_an_all_access_admin(fresh):
    server = fresh(auth="off")
    with server.client() as client:
        hits = client.post("/v1/search", json={"query": "salary bands compensation", "k": 10}).json()["results"]
        assert any(h["document_id"] == server.doc_ids["hr/salaries.md"] for h in hits)
        assert client.get("/v1/keys").status_code == 200


def test_a_key_revoked_over_http_is_refused_at_once_even_when_recently_verified(fresh):
    server = fresh(auth_cache_s=60)
    plaintext, row = auth.create_key(server.groundwork.store, "reader", [], "soon-revoked")
    with server.client(plaintext) as client:
        assert client.post("/v1/search", json={"query": "vacation"}).status_code == 200  # now verified and remembered
    with server.client(server.keys["admin"]) as admin:
        assert admin.delete(f"/v1/keys/{row.prefix}").status_code in (200, 204)
    with server.client(plaintext) as client:
        assert client.post("/v1/search", json={"query": "vacation"}).status_code == 401


def test_revoking_an_id_no_row_can_have_is_404_not_500(fresh):
    """Regression: a number past the database's integer range (found by the schema fuzz)
    reached the driver, which cannot bind it, and the request failed with a 500."""
    server = fresh()
    with server.client(server.keys["admin"]) as admin:
        for ident in ("9" * 30, str(2**63), "\u00b2\u00b3"):
            assert admin.delete(f"/v1/keys/{ident}").status_code == 404, ident
    assert not auth.revoke_key(server.groundwork.store, "9" * 30)


def test_a_key_revoked_elsewhere_stops_working_within_the_cache_time(fresh):
    server = fresh(auth_cache_s=0.5)
    plaintext, row = auth.create_key(server.groundwork.store, "reader", [], "cli-revoked")
    with server.client(plaintext) as client:
        assert client.post("/v1/search", json={"query": "vacation"}).status_code == 200
        auth.revoke_key(server.groundwork.store, row.prefix)  # as `groundwork keys revoke` does, from another process
        time.sleep(0.6)
        assert client.post("/v1/search", json={"query": "vacation"}).status_code == 401


def test_verified_keys_cache_is_keyed_by_a_hash_and_never_caches_with_ttl_zero():
    info = auth.dev_caller()
    cache = auth.VerifiedKeys(ttl_s=30)
    cache.put("Bearer gw_secret", info)
    assert cache.get("Bearer gw_secret") is info and cache.get("Bearer gw_other") is None
    assert all("gw_secret" not in slot for slot in cache._entries)
    cache.clear()
    assert cache.get("Bearer gw_secret") is None
    off = auth.VerifiedKeys(ttl_s=0)
    off.put("Bearer gw_secret", info)
    assert off.get("Bearer gw_secret") is None
