"""The payload converter decodes exactly what Temporal's default converter decodes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter

from aftersales.converter import PayloadConverter
from tests.conftest import HISTORIES
from workflows.case.contracts import (
    CaseInput,
    CaseItem,
    CaseSnapshot,
    Customer,
    EscalationRisk,
    OrderLookup,
    OutboxMessage,
    Projection,
    Resolution,
    StageClock,
    Suggestion,
    TimelineEvent,
    Triage,
)

DEFAULT = DataConverter.default.payload_converter
OURS = PayloadConverter()


def both(payload: Payload, hint: type):
    return (DEFAULT.from_payloads([payload], [hint])[0],
            OURS.from_payloads([payload], [hint])[0])


def started_inputs():
    for path in sorted(HISTORIES.glob("*.json")):
        history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
        started = history.events[0].workflow_execution_started_event_attributes
        yield path.stem, started.input.payloads[0]


@pytest.mark.parametrize(("name", "payload"), list(started_inputs()))
def test_recorded_case_inputs_decode_the_same(name, payload):
    default, ours = both(payload, CaseInput)
    assert isinstance(ours, CaseInput)
    assert ours == default
    assert ours.policy == default.policy  # the deepest part: the whole SLA policy
    assert OURS.to_payloads([ours])[0].data == DEFAULT.to_payloads([default])[0].data


def test_a_full_projection_round_trips_the_same():
    from datetime import UTC, datetime

    at = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    triage = Triage(
        model_version="m1", kind=Suggestion("complaint", 0.8, ["坏了"]),
        root_cause=Suggestion("damaged_in_transit", 0.7, ["破"]),
        priority=Suggestion("P2", 0.6, []), sentiment=Suggestion("negative", 0.9, []),
        escalation_risk=EscalationRisk(True, 0.95, ["12315"]))
    snap = CaseSnapshot(
        case_id="AS-1", version=7, kind="return", channel="app", stage="resolve",
        status="waiting", priority="P2", priority_reasons=["repeat"], assignee="alice",
        order_id="SO-1", customer=Customer(id="C-1", name="王芳", phone="138"),
        items=[CaseItem(sku="SKU-1", quantity=2)], description="坏了", created_at=at,
        updated_at=at, stage_due_at=at, resolution_due_at=None, overdue=False,
        status_token="t", customer_url="http://x/s/t",
        clocks=[StageClock(name="confirm", target=3600, used=12.5, state="met")],
        resolution=Resolution(type="refund", amount="12.50", items=[CaseItem("SKU-1", 1)]),
        triage=triage)
    projection = Projection(
        snap, events=[TimelineEvent(seq=1, at=at, actor="alice", type="confirmed",
                                    stage_before="confirm", stage_after="analyze",
                                    detail={"nested": {"list": [1, 2]}})],
        outbox=[OutboxMessage(key="AS-1:1", at=at, channel="email", recipient="a@b",
                              template="t", payload={"x": 1})])
    payload = DEFAULT.to_payloads([projection])[0]
    assert OURS.to_payloads([projection])[0] == payload  # the same bytes
    default, ours = both(payload, Projection)
    assert ours == default == projection
    assert OURS.from_payloads([DEFAULT.to_payloads([None])[0]], [OrderLookup | None]) == [None]


@dataclass
class _Shape:
    name: str
    tags: list[str] = field(default_factory=list)
    derived: int = field(default=0, init=False)


def test_unknown_keys_missing_fields_and_init_false_fields_as_the_default_does():
    payload = DEFAULT.to_payloads([{"name": "a", "tags": ["x"], "derived": 3, "extra": 1}])[0]
    default, ours = both(payload, _Shape)
    assert (ours.name, ours.tags, ours.derived) == ("a", ["x"], 3)
    assert ours == default
    missing = DEFAULT.to_payloads([{"tags": []}])[0]
    for converter in (DEFAULT, OURS):
        with pytest.raises(Exception):  # noqa: B017 - both refuse, in their own words
            converter.from_payloads([missing], [_Shape])
    wrong = DEFAULT.to_payloads([["not", "an", "object"]])[0]
    with pytest.raises(TypeError):
        OURS.from_payloads([wrong], [_Shape])
