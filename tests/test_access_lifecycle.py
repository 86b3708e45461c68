"""The access lifecycle: deactivating a user (tokens and sessions stop at once, open
cases back to the queue, supervisors told), tokens with an expiry, their listing and
revocation, password changes and resets, and the admin page over the audit log."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from db import accounts
from db.engine import make_engine, make_sessionmaker
from db.models import ApiToken, AuditEntry, OutboxMessage, User
from tests.conftest import BackgroundWorker, make_settings
from web import create_app


def make_app(url: str, temporal_address: str = "127.0.0.1:9",
             order_system_url: str = "http://127.0.0.1:9"):
    app = create_app(make_settings(temporal_address, url, order_system_url))
    with app.extensions["aftersales"].sessions.begin() as session:
        accounts.create_user(session, "ada", "admin", "ada-password")
        accounts.create_user(session, "sue", "supervisor", "sue-password",
                             email="sue@shop.example")
        accounts.create_user(session, "alice", "handler", "alice-password")
    return app


@pytest.fixture
def app(sqlite_url):
    app = make_app(sqlite_url)
    yield app
    app.extensions["aftersales"].engine.dispose()


def sessions_of(app):
    return app.extensions["aftersales"].sessions


def token_for(app, name: str, expires_in: timedelta | None = None) -> str:
    with sessions_of(app).begin() as session:
        return accounts.create_token(session, name, expires_in)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def csrf_token(page: str) -> str:
    match = (re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
             or re.search(r'type="hidden" name="csrf_token" value="([^"]+)"', page))
    assert match, "the form carries no CSRF token"
    return match.group(1)


def sign_in(client, name: str, password: str | None = None):
    token = csrf_token(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"username": name,
                                       "password": password or f"{name}-password",
                                       "csrf_token": token})


def signed_in(app, name: str):
    client = app.test_client()
    assert sign_in(client, name).status_code == 302
    return client


# ------------------------------------------------------------------ tokens


def test_a_token_expires_is_revoked_and_notes_its_use_once_a_minute(database_url):
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    now = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    with sessions.begin() as session:
        accounts.create_user(session, "alice", "handler")
        short = accounts.create_token(session, "alice", timedelta(days=90), now=now)
        lasting = accounts.create_token(session, "alice", now=now)
    with sessions.begin() as session:
        row = accounts.find_token(session, short)
        assert row is not None and re.fullmatch(r"tk_[0-9a-f]{8}", row.id)
        assert accounts.as_utc(row.expires_at) == now + timedelta(days=90)
        user, why = accounts.authenticate_token(session, short, now + timedelta(days=89))
        assert user is not None and user.name == "alice" and why == ""
    with sessions.begin() as session:
        first_use = accounts.find_token(session, short).last_used_at
        assert accounts.as_utc(first_use) == now + timedelta(days=89)
        # Within the minute: no new write.
        accounts.authenticate_token(session, short, now + timedelta(days=89, seconds=30))
        assert not session.dirty
        accounts.authenticate_token(session, short, now + timedelta(days=89, minutes=2))
    with sessions() as session:
        assert accounts.as_utc(accounts.find_token(session, short).last_used_at) == \
            now + timedelta(days=89, minutes=2)
        assert accounts.authenticate_token(session, short, now + timedelta(days=90)) == \
            (None, "expired")
        assert accounts.authenticate_token(session, lasting, now + timedelta(days=900))[0]
        assert accounts.authenticate_token(session, "as_nothing") == (None, "unknown")
    with sessions.begin() as session:
        token_id = accounts.find_token(session, lasting).id
        accounts.revoke_token(session, token_id)
    with sessions() as session:
        assert accounts.authenticate_token(session, lasting) == (None, "revoked")
        assert [accounts.token_state(t, now + timedelta(days=91))
                for t in accounts.list_tokens(session, "alice")] in (
            ["expired", "revoked"], ["revoked", "expired"])
        with pytest.raises(accounts.AccountError, match="no token 'tk_00000000'"):
            accounts.revoke_token(session, "tk_00000000")
    engine.dispose()


def test_tokens_made_before_the_migration_get_an_id(database_url):
    from alembic import command

    from db.engine import alembic_config

    config = alembic_config(database_url)
    command.downgrade(config, "0014")
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO users (name, role, active, created_at, email, locale, "
            "display_name, session_version) VALUES ('old', 'handler', true, "
            "'2026-01-01 00:00:00+00', '', '', '', 0)"))
        for digest in ("a" * 64, "b" * 64):
            connection.execute(text(
                "INSERT INTO api_tokens (token_hash, user_name, created_at, revoked) "
                f"VALUES ('{digest}', 'old', '2026-01-01 00:00:00+00', false)"))
    command.upgrade(config, "head")
    with make_sessionmaker(engine)() as session:
        rows = list(session.scalars(select(ApiToken)))
        assert len(rows) == 2 and len({r.id for r in rows}) == 2
        assert all(re.fullmatch(r"tk_[0-9a-f]{8}", r.id) for r in rows)
        assert all(r.expires_at is None and r.last_used_at is None for r in rows)
    engine.dispose()


def test_expired_revoked_and_deactivated_tokens_get_401(app):
    client = app.test_client()
    expired = token_for(app, "alice", timedelta(seconds=1))
    with sessions_of(app).begin() as session:
        accounts.find_token(session, expired).expires_at = datetime.now(UTC) - \
            timedelta(seconds=1)
    answer = client.get("/api/v1/cases", headers=bearer(expired))
    assert answer.status_code == 401 and answer.content_type == "application/problem+json"
    assert "expired" in answer.get_json()["detail"]

    revoked = token_for(app, "alice")
    assert client.get("/api/v1/cases", headers=bearer(revoked)).status_code == 200
    admin = token_for(app, "ada")
    listed = client.get("/api/v1/users/alice/tokens", headers=bearer(admin)).get_json()
    by_state = {t["state"]: t for t in listed["items"]}
    assert set(by_state) == {"active", "expired"}
    assert by_state["active"]["last_used_at"] is not None
    assert revoked not in str(listed) and "token_hash" not in str(listed)
    token_id = by_state["active"]["id"]
    assert client.post(f"/api/v1/tokens/{token_id}/revoke",
                       headers=bearer(admin)).get_json()["state"] == "revoked"
    reused = client.get("/api/v1/cases", headers=bearer(revoked))
    assert reused.status_code == 401 and reused.content_type == "application/problem+json"
    assert client.post("/api/v1/tokens/tk_00000000/revoke",
                       headers=bearer(admin)).status_code == 404

    kept = token_for(app, "alice")
    assert client.get("/api/v1/cases", headers=bearer(kept)).status_code == 200
    assert client.post("/api/v1/users/alice/deactivate",
                       headers=bearer(admin)).status_code == 200
    refused = client.get("/api/v1/cases", headers=bearer(kept))
    assert refused.status_code == 401 and refused.content_type == "application/problem+json"
    assert "deactivated" in refused.get_json()["detail"]
    # Active again: the token works again (sessions stay ended).
    assert client.post("/api/v1/users/alice/activate",
                       headers=bearer(admin)).get_json()["active"] is True
    assert client.get("/api/v1/cases", headers=bearer(kept)).status_code == 200


# ------------------------------------------------------------------ deactivation


def test_deactivation_ends_sessions_and_tells_the_supervisors(app):
    alice = signed_in(app, "alice")
    assert alice.get("/desk").status_code == 200
    admin = signed_in(app, "ada")
    page = admin.get("/admin").get_data(as_text=True)
    assert admin.post("/admin/users/alice/deactivate",
                      data={"csrf_token": csrf_token(page)}).status_code == 302
    gone = alice.get("/desk")
    assert gone.status_code == 302 and "/login" in gone.headers["Location"]
    # No new sign-in while deactivated.
    assert sign_in(app.test_client(), "alice").status_code == 401
    with sessions_of(app)() as session:
        notice = session.scalars(select(OutboxMessage).where(
            OutboxMessage.template == "user_deactivated")).one()
        assert notice.recipient == "role:supervisor"
        assert notice.payload["user"] == "alice" and notice.payload["by"] == "ada"
        assert notice.payload["count"] == 0
    # Activated again: signing in works, the old session stays ended.
    page = admin.get("/admin").get_data(as_text=True)
    admin.post("/admin/users/alice/activate", data={"csrf_token": csrf_token(page)})
    assert alice.get("/desk").status_code == 302
    assert sign_in(app.test_client(), "alice").status_code == 302


def test_an_admin_cannot_deactivate_themself_or_no_one(app):
    client = app.test_client()
    admin = token_for(app, "ada")
    assert client.post("/api/v1/users/ada/deactivate",
                       headers=bearer(admin)).status_code == 409
    assert client.post("/api/v1/users/nobody/deactivate",
                       headers=bearer(admin)).status_code == 404


def test_the_admin_page_says_why_a_user_was_not_deactivated_or_a_case_not_returned(
        app, monkeypatch):
    """The refusals come as codes and are said in the page's language (zh here), not in
    the workflow's English; the API keeps its English `cases_not_returned`."""
    from tests.test_pages import put
    from web.gateway import ActionRefused, TemporalUnavailable
    from workflows.case.refusals import refused

    put(app, "AS-D1", stage="analyze", assignee="alice")
    put(app, "AS-D2", stage="analyze", assignee="alice")

    def unassign(case_id, update, inp, update_id=None):
        if case_id == "AS-D1":
            raise ActionRefused.of(refused("no_longer_assigned", "assignee",
                                           assignee="alice"))
        raise TemporalUnavailable("no answer")

    monkeypatch.setattr(app.extensions["aftersales"].gateway, "act", unassign)
    admin = signed_in(app, "ada")
    admin.set_cookie("lang", "zh_CN")
    # Oneself: refused in Chinese.
    refused_page = admin.post("/admin/users/ada/deactivate", data={
        "csrf_token": csrf_token(admin.get("/admin").get_data(as_text=True))},
        follow_redirects=True).get_data(as_text=True)
    assert "未停用：不能停用自己的账号" in refused_page and "another admin" not in refused_page
    done = admin.post("/admin/users/alice/deactivate", data={
        "csrf_token": csrf_token(admin.get("/admin").get_data(as_text=True))},
        follow_redirects=True).get_data(as_text=True)
    assert "AS-D1（该工单已不再分派给 alice）" in done or \
        "AS-D1 (该工单已不再分派给 alice)" in done, done
    assert "无法连接工单服务" in done
    assert "no longer assigned" not in done and "no answer" not in done
    # The API says the same in English.
    with sessions_of(app).begin() as session:
        accounts.set_active(session, "alice", True)
    answer = app.test_client().post("/api/v1/users/alice/deactivate",
                                    headers=bearer(token_for(app, "ada")))
    assert answer.get_json()["cases_not_returned"] == {
        "AS-D1": "the case is no longer assigned to alice", "AS-D2": "no answer"}


@pytest.fixture(scope="module")
def live(temporal_address, order_system_url, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('access') / 'db.sqlite'}"
    app = make_app(url, temporal_address, order_system_url)
    worker = BackgroundWorker(app.extensions["aftersales"].settings)
    worker.start()
    yield app
    app.extensions["aftersales"].gateway.close()
    app.extensions["aftersales"].engine.dispose()
    worker.stop()


def test_a_deactivated_users_open_cases_go_back_to_the_queue(live):
    client = live.test_client()
    with sessions_of(live).begin() as session:
        accounts.create_user(session, "hank", "handler")
    hank, admin = token_for(live, "hank"), token_for(live, "ada")
    opened = client.post("/api/v1/cases", headers=bearer(hank), json={
        "kind": "complaint", "channel": "web", "order_id": "SO-10003",
        "customer": {"id": "C-1003", "name": "张伟", "phone": "13900000003"},
        "description": "水壶漏水"})
    assert opened.status_code == 201, opened.get_json()
    case_id = opened.get_json()["id"]
    taken = client.post(f"/api/v1/cases/{case_id}/assign", json={"assignee": "hank"},
                        headers=bearer(hank))
    assert taken.get_json()["assignee"] == "hank"
    # A request hank sent with an Idempotency-Key: its answer is kept for replays.
    note = {"text": "called the customer"}
    keyed = {**bearer(hank), "Idempotency-Key": "hank-note-1"}
    sent = client.post(f"/api/v1/cases/{case_id}/note", json=note, headers=keyed)
    assert sent.status_code == 200, sent.get_json()
    assert client.post(f"/api/v1/cases/{case_id}/note", json=note,
                       headers=keyed).headers.get("Idempotent-Replayed") == "true"

    done = client.post("/api/v1/users/hank/deactivate", headers=bearer(admin))
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["returned_cases"] == [case_id]
    assert done.get_json()["cases_not_returned"] == {}
    case = client.get(f"/api/v1/cases/{case_id}", headers=bearer(admin)).get_json()
    assert case["assignee"] is None
    event = case["timeline"][-1]
    assert event["type"] == "unassigned" and event["actor"] == "ada"
    assert event["detail"] == {"from": "hank", "reason": "deactivated"}
    # The deactivated user's pending idempotent request is not replayed, nor is a new one
    # taken: both are refused before the key is looked at, and nothing changes.
    for key in ("hank-note-1", "hank-note-2"):
        again = client.post(f"/api/v1/cases/{case_id}/note", json=note,
                            headers={**bearer(hank), "Idempotency-Key": key})
        assert again.status_code == 401, again.get_data(as_text=True)
        assert again.content_type == "application/problem+json"
        assert "Idempotent-Replayed" not in again.headers
    after = client.get(f"/api/v1/cases/{case_id}", headers=bearer(admin)).get_json()
    assert after["timeline"] == case["timeline"]
    # Another handler finds it in the desk's unassigned queue.
    desk = signed_in(live, "alice").get("/desk").get_data(as_text=True)
    assert case_id in desk.split('id="team-h"', 1)[-1]
    with sessions_of(live)() as session:
        notice = session.scalars(select(OutboxMessage).where(
            OutboxMessage.template == "user_deactivated")).one()
        assert notice.payload["cases"] == [case_id] and notice.payload["count"] == 1
        assert notice.sent_at is not None  # sent at once (logged: no SMTP in tests)
    # The case page says what happened.
    page = signed_in(live, "ada").get(f"/desk/cases/{case_id}",
                                      headers={"Accept-Language": "en"})
    assert "returned the case to the queue" in page.get_data(as_text=True)


# ------------------------------------------------------------------ passwords


def test_changing_ones_own_password(app):
    other = signed_in(app, "alice")
    client = signed_in(app, "alice")
    page = client.get("/account/password", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    token = csrf_token(page.get_data(as_text=True))
    with sessions_of(app)() as session:
        before = session.get(User, "alice").password_hash

    wrong = client.post("/account/password", headers={"Accept-Language": "en"}, data={
        "csrf_token": token, "current": "not-the-password", "new": "a-new-password-1",
        "repeat": "a-new-password-1"})
    assert wrong.status_code == 422
    assert "The current password is wrong." in wrong.get_data(as_text=True)
    short = client.post("/account/password", headers={"Accept-Language": "en"}, data={
        "csrf_token": token, "current": "alice-password", "new": "short",
        "repeat": "short"})
    assert short.status_code == 422 and "At least 10 characters." in short.get_data(
        as_text=True)
    differ = client.post("/account/password", headers={"Accept-Language": "en"}, data={
        "csrf_token": token, "current": "alice-password", "new": "a-new-password-1",
        "repeat": "a-new-password-2"})
    assert differ.status_code == 422
    with sessions_of(app)() as session:
        assert session.get(User, "alice").password_hash == before
    assert other.get("/desk").status_code == 200  # nothing changed, nothing ended

    changed = client.post("/account/password", data={
        "csrf_token": token, "current": "alice-password", "new": "a-new-password-1",
        "repeat": "a-new-password-1"})
    assert changed.status_code == 302
    assert client.get("/desk").status_code == 200  # this session goes on
    assert other.get("/desk").status_code == 302  # the other one has ended
    assert sign_in(app.test_client(), "alice").status_code == 401
    assert sign_in(app.test_client(), "alice", "a-new-password-1").status_code == 302


def test_an_admin_resets_a_password(app):
    alice = signed_in(app, "alice")
    admin = signed_in(app, "ada")
    token = csrf_token(admin.get("/admin").get_data(as_text=True))
    short = admin.post("/admin/users/alice/password", data={
        "csrf_token": token, "new": "short", "repeat": "short"})
    assert short.status_code == 302
    assert alice.get("/desk").status_code == 200
    admin.post("/admin/users/alice/password", data={
        "csrf_token": token, "new": "reset-by-ada-1", "repeat": "reset-by-ada-1"})
    assert alice.get("/desk").status_code == 302
    assert sign_in(app.test_client(), "alice", "reset-by-ada-1").status_code == 302
    api = token_for(app, "ada")
    assert app.test_client().post("/api/v1/users/alice/password", headers=bearer(api),
                                  json={"password": "short"}).status_code == 422


# ------------------------------------------------------------------ the admin page


@pytest.mark.parametrize("name", ["alice", "sue"])
def test_the_admin_page_is_for_admins_only(app, name):
    answer = signed_in(app, name).get("/admin", headers={"Accept-Language": "en"})
    assert answer.status_code == 403
    assert "This page is for admin." in answer.get_data(as_text=True)
    assert signed_in(app, name).get("/admin/audit.csv").status_code == 403
    assert app.test_client().get("/admin").status_code == 302


def test_the_admin_page_reads_the_audit_log_and_exports_it(app):
    failed = app.test_client()
    assert sign_in(failed, "alice", "=HYPERLINK(guess)").status_code == 401
    token_for(app, "alice")
    admin = signed_in(app, "ada")
    now = datetime.now(UTC)
    with sessions_of(app).begin() as session:
        for n in range(60):
            session.add(AuditEntry(at=now - timedelta(minutes=n), actor="bob", role="handler",
                                   method="POST", path=f"/desk/cases/AS-{n}/note",
                                   case_id=f"AS-{n}", action="note", status=200))
        session.add(AuditEntry(at=now - timedelta(days=3), actor="=cmd|' /C calc'!A0",
                               role="handler", method="POST", path="+1-2", case_id="AS-X",
                               action="note", status=200))

    page = admin.get("/admin", headers={"Accept-Language": "en"})
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Users and tokens" in body and re.search(r"tk_[0-9a-f]{8}", body)
    assert "Page 1 of" in body
    second = admin.get("/admin?actor=bob&page=2", headers={"Accept-Language": "en"})
    assert "Page 2 of 2" in second.get_data(as_text=True)
    assert "AS-59" in second.get_data(as_text=True)
    one_case = admin.get("/admin?case_id=AS-7").get_data(as_text=True)
    assert "/desk/cases/AS-7/note" in one_case and "AS-8/note" not in one_case
    recent = admin.get(f"/admin?action=note&from={(now - timedelta(days=1)).date()}")
    assert "AS-X" not in recent.get_data(as_text=True)

    # Sign-ins are in the log, failed ones too, never the password.
    with sessions_of(app)() as session:
        signs = {(e.actor, e.action) for e in session.scalars(
            select(AuditEntry).where(AuditEntry.path == "/login"))}
        assert {("alice", "sign-in-failed"), ("ada", "sign-in")} <= signs
    assert "HYPERLINK" not in admin.get("/admin?actor=alice").get_data(as_text=True)

    export = admin.get("/admin/audit.csv?action=note")
    assert export.status_code == 200 and export.content_type.startswith("text/csv")
    rows = list(csv.reader(io.StringIO(export.get_data(as_text=True))))
    assert rows[0][:3] == ["at", "actor", "role"] and len(rows) == 62
    formula = next(r for r in rows if r[5] == "AS-X")
    assert formula[1] == "'=cmd|' /C calc'!A0" and formula[4] == "'+1-2"
    with sessions_of(app)() as session:
        exported = session.scalars(select(AuditEntry).where(
            AuditEntry.action == "audit-export")).one()
        assert exported.actor == "ada" and "action=note" in exported.path

    api = token_for(app, "ada")
    listed = app.test_client().get("/api/v1/audit?actor=bob&per_page=10&page=2",
                                   headers=bearer(api)).get_json()
    assert listed["total"] == 60 and len(listed["items"]) == 10
    assert listed["items"][0]["case_id"] == "AS-10"
    bad = app.test_client().get("/api/v1/audit?from=yesterday", headers=bearer(api))
    assert bad.status_code == 422 and "from" in bad.get_json()["errors"]
    # The page in Chinese (the choice is remembered from here on).
    chinese = admin.get("/admin?lang=zh_CN").get_data(as_text=True)
    assert "用户与令牌" in chinese and "审计日志" in chinese and "下载 CSV" in chinese


# ------------------------------------------------------------------ the command line


def run(args: list[str], env: dict[str, str], stdin: str | None = None
        ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aftersales.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60, input=stdin)


def test_the_command_line_lifecycle(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    env = {**os.environ, "AFTERSALES_DATABASE_URL": url,
           "AFTERSALES_TEMPORAL_ADDRESS": "127.0.0.1:9"}
    assert run(["users", "create", "alice", "--role", "handler", "--password",
                "first-password"], env).returncode == 0
    made = run(["token", "create", "alice", "--expires", "90d"], env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().split()[-1]
    token_id = re.search(r"tk_[0-9a-f]{8}", made.stdout).group(0)
    assert "expires" in made.stdout
    assert run(["token", "create", "alice", "--expires", "soon"], env).returncode == 2

    listed = run(["token", "list", "alice"], env)
    assert listed.returncode == 0 and token_id in listed.stdout
    assert token not in listed.stdout and "active" in listed.stdout

    unknown = run(["token", "revoke", "tk_00000000"], env)
    assert unknown.returncode != 0 and "no token 'tk_00000000'" in unknown.stderr
    not_whole = run(["token", "revoke", "as_secretsecretsecret"], env)
    assert not_whole.returncode != 0 and "secretsecret" not in not_whole.stderr
    assert run(["token", "revoke", token_id], env).returncode == 0
    assert "revoked" in run(["token", "list", "alice"], env).stdout
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        assert accounts.authenticate_token(session, token) == (None, "revoked")

    too_short = run(["users", "set-password", "alice"], env, stdin="short\n")
    assert too_short.returncode != 0 and "at least 10" in too_short.stderr
    assert run(["users", "set-password", "alice"], env,
               stdin="second-password\n").returncode == 0
    with make_sessionmaker(engine)() as session:
        assert accounts.check_password(session, "alice", "second-password") is not None
        assert session.get(User, "alice").session_version == 1

    # No open cases: nothing to send to Temporal.
    off = run(["users", "deactivate", "alice"], env)
    assert off.returncode == 0, off.stderr
    assert "0 open case(s)" in off.stdout
    assert run(["users", "deactivate", "nobody"], env).returncode != 0
    with make_sessionmaker(engine)() as session:
        user = session.get(User, "alice")
        assert not user.active and user.session_version == 2
        assert accounts.check_password(session, "alice", "second-password") is None
        actions = list(session.scalars(select(AuditEntry.action).where(
            AuditEntry.method == "CLI").order_by(AuditEntry.id)))
        assert actions == ["tokens.create", "tokens.revoke", "users.set-password",
                           "users.deactivate"]
    assert run(["users", "activate", "alice"], env).returncode == 0
    with make_sessionmaker(engine)() as session:
        assert session.get(User, "alice").active
    engine.dispose()
