"""Signing in to the pages: CSRF on every form, a session cookie scripts cannot read,
a brake on password guessing, and signing out."""

from __future__ import annotations

import re

import pytest

from db.accounts import create_user
from tests.conftest import make_settings
from web import create_app


def make_app(url: str, public_url: str = "http://testserver"):
    settings = make_settings("127.0.0.1:9", url, "http://127.0.0.1:9",
                             public_url=public_url)
    app = create_app(settings)
    with app.extensions["aftersales"].sessions.begin() as session:
        create_user(session, "alice", "handler", "correct horse")
    return app


@pytest.fixture
def app(sqlite_url):
    app = make_app(sqlite_url)
    yield app
    app.extensions["aftersales"].engine.dispose()


def csrf_token(page: str) -> str:
    match = (re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
             or re.search(r'type="hidden" name="csrf_token" value="([^"]+)"', page))
    assert match, "the form carries no CSRF token"
    return match.group(1)


def sign_in(client, password: str = "correct horse", addr: str = "192.0.2.1"):
    token = csrf_token(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"username": "alice", "password": password,
                                       "csrf_token": token},
                       environ_base={"REMOTE_ADDR": addr})


def test_login_form_and_session_cookie(app):
    client = app.test_client()
    page = client.get("/login")
    assert page.status_code == 200
    assert 'name="username"' in page.get_data(as_text=True)
    assert 'name="password"' in page.get_data(as_text=True)
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"]
    response = sign_in(client)
    # A handler lands on the desk.
    assert response.status_code == 302 and response.headers["Location"].endswith("/desk")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # served over plain HTTP here
    desk = client.get("/desk", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "alice · handler" in desk and "My cases" in desk


def test_forms_without_a_csrf_token_are_refused(app):
    client = app.test_client()
    response = client.post("/login", data={"username": "alice",
                                           "password": "correct horse"})
    assert response.status_code == 400
    assert sign_in(client).status_code == 302
    assert client.post("/logout").status_code == 400  # no token: still signed in
    assert client.get("/desk").status_code == 200
    token = csrf_token(client.get("/desk").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/desk").headers["Location"].endswith("/login?next=/desk")


def test_password_guessing_is_slowed_down(app):
    client = app.test_client()
    answers = [sign_in(client, "wrong", addr="198.51.100.4").status_code for _ in range(7)]
    assert answers[:5] == [401] * 5 and set(answers[5:]) == {429}
    # Even the right password waits out the brake from that address...
    assert sign_in(client, addr="198.51.100.4").status_code == 429
    # ...while another address signs in.
    assert sign_in(app.test_client(), addr="198.51.100.5").status_code == 302


def test_session_cookie_is_secure_over_https(sqlite_url):
    app = make_app(sqlite_url, public_url="https://aftersales.example.com")
    response = sign_in(app.test_client())
    assert "Secure" in response.headers["Set-Cookie"]
    app.extensions["aftersales"].engine.dispose()


# As they arrive in the query string (percent-encoded, as a link would carry them).
@pytest.mark.parametrize("target", ["//evil.example/x", "/%09/evil.example", "%2F%2Fevil.example",
                                    "https://evil.example/", "/%5Cevil.example", "/%0d/x",
                                    "/%0a/evil.example"])
def test_sign_in_never_redirects_off_the_site(app, target):
    client = app.test_client()
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post(f"/login?next={target}", data={
        "username": "alice", "password": "correct horse", "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/desk"


def test_sign_in_returns_to_the_page_asked_for(app):
    client = app.test_client()
    assert client.get("/desk?kind=return").headers["Location"] == \
        "/login?next=/desk?kind%3Dreturn"
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post("/login?next=/desk?kind%3Dreturn", data={
        "username": "alice", "password": "correct horse", "csrf_token": token})
    assert response.headers["Location"] == "/desk?kind=return"


def test_an_expired_form_gets_a_page_in_the_users_language_not_json(app):
    client = app.test_client()
    response = client.post("/login", data={"username": "alice", "password": "x"},
                           headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 400
    assert response.content_type.startswith("text/html")
    assert "表单已过期" in response.get_data(as_text=True)
