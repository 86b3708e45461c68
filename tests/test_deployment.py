"""The production topology file: every service runs a command that exists, with
settings the code reads. (No Docker engine here to run it; this keeps it honest.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from aftersales.cli import main
from aftersales.settings import Settings

ROOT = Path(__file__).parent.parent


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


def test_read_model_bench_runs_on_a_small_fill(tmp_path):
    """The read-model bench fills and measures (figures are for docs/benchmarks.md)."""
    from bench.readmodel import fill, measure

    url = f"sqlite:///{tmp_path / 'bench.db'}"
    fill(url, 300)
    result = measure(url)
    assert set(result["queries"]) == {"desk_queue", "overdue_list", "stage_queue",
                                      "search_order", "search_phone", "search_name",
                                      "search_one_character", "case_page",
                                      "report_summary"}
    assert all(q["p95_ms"] > 0 for q in result["queries"].values())
    assert any("ix_cases_assignee_due" in line for line in result["plans"]["desk_queue"])
    # The name search starts from the gram index, not a scan of every case.
    assert any("case_name_grams" in line for line in result["plans"]["search_name"])


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
