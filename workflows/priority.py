"""Priority at intake: a base priority raised by what makes a case urgent.

Pure and deterministic. Each rule that fires adds a reason, shown on the case, so a
handler can see why the case is P1.
"""

from __future__ import annotations

from workflows.sla import PRIORITIES

DEFAULT_PRIORITY = "P3"
TIER_BOOST = {"vip": 1}
# Threats to go to the consumer association, the 12315 hotline, the media or court.
ESCALATION_WORDS = (
    "12315",
    "消协",
    "投诉到",
    "媒体",
    "曝光",
    "律师",
    "lawyer",
    "chargeback",
)


def score_priority(
    requested: str | None,
    tier: str,
    description: str,
    repeat_of: str | None,
) -> tuple[str, list[str]]:
    """Return the intake priority and the reasons for it."""
    priority = requested or DEFAULT_PRIORITY
    reasons = [f"requested {requested}" if requested else f"default {DEFAULT_PRIORITY}"]
    steps = 0
    boost = TIER_BOOST.get(tier.lower(), 0)
    if boost:
        steps += boost
        reasons.append(f"customer tier {tier}: +{boost}")
    lowered = description.lower()
    words = [w for w in ESCALATION_WORDS if w.lower() in lowered]
    if words:
        steps += 1
        reasons.append("escalation words " + ", ".join(words) + ": +1")
    if repeat_of:
        steps += 1
        reasons.append(f"repeat of open case {repeat_of}: +1")
    index = max(0, PRIORITIES.index(priority) - steps)
    return PRIORITIES[index], reasons
