"""The admin commands of the `aftersales` CLI, run as a user would run them."""

from __future__ import annotations

import os
import subprocess
import sys

from db.accounts import user_for_token
from db.engine import make_engine, make_sessionmaker


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aftersales.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_users_and_tokens(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    env = {**os.environ, "AFTERSALES_DATABASE_URL": url}
    result = run(["users", "create", "alice", "--role", "handler", "--password", "pw-1"], env)
    assert result.returncode == 0, result.stderr
    assert run(["users", "create", "alice", "--role", "handler"], env).returncode != 0
    bad_role = run(["users", "create", "eve", "--role", "overlord"], env)
    assert bad_role.returncode != 0 and "overlord" in bad_role.stderr

    result = run(["token", "create", "alice"], env)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1].split()[-1]
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        user = user_for_token(session, token)
        assert user is not None and user.name == "alice"
    engine.dispose()
    missing = run(["token", "create", "nobody"], env)
    assert missing.returncode != 0 and "nobody" in missing.stderr


def test_bad_policy_file_stops_the_process_naming_the_line(tmp_path):
    policy = tmp_path / "sla.toml"
    policy.write_text('[rules]\nfeedback_window = "72h"\nwarn_at = [0.5]\nlunch = "1h"\n')
    env = {**os.environ, "AFTERSALES_SLA_FILE": str(policy),
           "AFTERSALES_SECRET_KEY": "a-secret-key-of-at-least-32-bytes-long",
           "AFTERSALES_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    result = run(["web", "--port", "0"], env)
    assert result.returncode != 0
    assert "line 4" in result.stderr and "lunch" in result.stderr
