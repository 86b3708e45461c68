"""CPU to bring one case into a worker's cache: the sandboxed workflow instance is
created (the workflow module imported afresh) and the case's history replayed. A
worker pays it for every new case, and again whenever a case evicted from a full cache
(AFTERSALES_WORKER_CACHE) wakes for a deadline or an action.

Replays a recorded case history (tests/histories/, default: a complaint with its
notifications) N times in Temporal's default sandbox and prints the CPU per load.
Usage, from the repository root:

    .venv/bin/python bench/workflow_load.py [HISTORY_NAME] [N]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.client import WorkflowHistory  # noqa: E402
from temporalio.worker import Replayer  # noqa: E402

from aftersales.settings import Settings  # noqa: E402
from aftersales.temporal import data_converter  # noqa: E402
from aftersales.worker import compile_workflows  # noqa: E402
from workflows.case.workflow import CaseWorkflow  # noqa: E402


async def load(name: str, count: int) -> dict:
    path = ROOT / "tests" / "histories" / f"{name}.json"
    history = WorkflowHistory.from_json(name, path.read_text(encoding="utf-8"))
    # The same converter and sandbox as `aftersales worker`.
    replayer = Replayer(workflows=[CaseWorkflow],
                        data_converter=data_converter(Settings.from_env()))
    await replayer.replay_workflow(history)  # once untimed: imports, caches
    cpu = time.process_time()
    for _ in range(count):
        await replayer.replay_workflow(history)
    cpu = time.process_time() - cpu
    return {"history": name, "events": len(history.events), "loads": count,
            "cpu_ms_per_load": round(cpu / count * 1000, 2)}


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "notify_complaint"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    compile_workflows()  # as the worker does at start
    print(json.dumps(asyncio.run(load(name, count))))


if __name__ == "__main__":
    main()
