"""CPU to convert a case's payload: Temporal's default JSON converter against ours
(aftersales/converter.py), on the intake input of a recorded case (a `CaseInput`
holding the SLA policy in force, the largest payload a case has).

    .venv/bin/python bench/payload_conversion.py [HISTORY_NAME] [N]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.api.common.v1 import Payload  # noqa: E402
from temporalio.client import WorkflowHistory  # noqa: E402
from temporalio.converter import DataConverter  # noqa: E402

from aftersales.converter import PayloadConverter  # noqa: E402
from workflows.case.contracts import CaseInput  # noqa: E402


def intake_payload(name: str) -> Payload:
    path = ROOT / "tests" / "histories" / f"{name}.json"
    history = WorkflowHistory.from_json(name, path.read_text("utf-8"))
    return history.events[0].workflow_execution_started_event_attributes.input.payloads[0]


def cpu_ms(job, count: int) -> float:
    started = time.process_time()
    for _ in range(count):
        job()
    return round((time.process_time() - started) / count * 1000, 3)


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "complaint"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    payload = intake_payload(name)
    result: dict = {"history": name, "payload_bytes": len(payload.data)}
    for label, converter in (("default", DataConverter.default.payload_converter),
                             ("aftersales", PayloadConverter())):
        value = converter.from_payloads([payload], [CaseInput])[0]
        result[label] = {
            "decode_ms": cpu_ms(lambda c=converter: c.from_payloads([payload], [CaseInput]),
                                count),
            "encode_ms": cpu_ms(lambda c=converter, v=value: c.to_payloads([v]), count)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
