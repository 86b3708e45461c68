"""`aftersales bench --open-cases` runs end to end against the real dev server and order
simulator with a worker process of its own (figures are not judged here: see
docs/benchmarks.md)."""

from __future__ import annotations

import pytest

from bench.timers import main
from tests.conftest import make_settings

# The bench starts its own worker processes (one or two) and runs for a minute or more.
pytestmark = pytest.mark.slow


def test_open_cases_bench_reports_memory_and_lateness(temporal_address, order_system_url,
                                                      tmp_path):
    settings = make_settings(temporal_address, "sqlite:///unused", order_system_url)
    result = main(settings, count=24, concurrency=4, window=6.0,
                  database_url=f"sqlite:///{tmp_path / 'bench.db'}", worker_cache=None)
    planned = result["open_cases"] - result["pace_setting_cases"]
    assert result["pace_setting_cases"] == 2 and planned == 22
    # Every planned case breached once and announced its three warnings first.
    assert result["breaches_fired"] == planned and result["warnings_fired"] == 3 * planned
    assert 0 <= result["lateness_p50_s"] <= result["lateness_p99_s"] <= result["lateness_max_s"]
    assert result["worker_rss_all_open_mib"] > result["worker_rss_idle_mib"] > 0
    assert len(result["workflow_tasks_by_worker"]) == 1


def test_open_cases_bench_shares_the_cases_between_two_workers(
        temporal_address, order_system_url, postgres_url):
    """`--workers 2`: two worker processes on one task queue and one PostgreSQL read
    model; every deadline still fires once, and both workers ran the cases."""
    settings = make_settings(temporal_address, "sqlite:///unused", order_system_url)
    result = main(settings, count=24, concurrency=4, window=6.0,
                  database_url=postgres_url, worker_cache=None, workers=2)
    planned = result["open_cases"] - result["pace_setting_cases"]
    assert result["workers"] == 2
    assert result["breaches_fired"] == planned and result["warnings_fired"] == 3 * planned
    shares = result["workflow_tasks_by_worker"]
    assert len(shares) == 2 and min(shares) > 0, shares
