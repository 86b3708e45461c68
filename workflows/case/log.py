"""What happened to a case since its last write: timeline events and outbox messages.

The workflow and its sagas record through one `CaseLog`; each write to the read model
takes what has gathered (`take`). Sequence numbers are chosen here, per case, so a
retried write adds nothing twice (docs/architecture.md, "Idempotency").
"""

from __future__ import annotations

from temporalio import workflow

from workflows.case.contracts import CaseState, OutboxMessage, TimelineEvent

SYSTEM = "system"
CUSTOMER = "customer"


class CaseLog:
    def __init__(self, state: CaseState) -> None:
        self._state = state
        self._seq = 0
        self._outbox_seq = 0
        self.events: list[TimelineEvent] = []
        self.outbox: list[OutboxMessage] = []

    def event(self, actor: str, kind: str, before: str | None = None,
              after: str | None = None, detail: dict | None = None) -> None:
        """A timeline event; `before`/`after` default to the current stage."""
        self._seq += 1
        stage = self._state.stage
        self.events.append(TimelineEvent(
            seq=self._seq, at=workflow.now(), actor=actor, type=kind,
            stage_before=before or stage, stage_after=after or stage, detail=detail or {},
        ))

    def move(self, after: str, actor: str, kind: str, detail: dict | None = None) -> None:
        """Move the case to stage `after`, recorded as one event."""
        before = self._state.stage
        self._state.stage = after
        self.event(actor, kind, before, after, detail)

    def notify_customer(self, template: str, payload: dict) -> None:
        self._notify("customer", self._state.customer.id, template, payload)

    def notify_staff(self, recipient: str, template: str, payload: dict) -> None:
        self._notify("staff", recipient, template, payload)

    def _notify(self, channel: str, recipient: str, template: str, payload: dict) -> None:
        self._outbox_seq += 1
        case_id = self._state.case_id
        self.outbox.append(OutboxMessage(
            key=f"{case_id}:{self._outbox_seq}", at=workflow.now(), channel=channel,
            recipient=recipient, template=template, payload={"case_id": case_id, **payload},
        ))

    @property
    def dirty(self) -> bool:
        return bool(self.events or self.outbox)

    def take(self) -> tuple[list[TimelineEvent], list[OutboxMessage]]:
        """What gathered since the last write; the log starts empty again."""
        events, outbox = self.events, self.outbox
        self.events, self.outbox = [], []
        return events, outbox
