"""Priority at intake: the policy's base priority raised by what makes a case urgent.

Pure and deterministic. Each rule that fires adds a reason, shown on the case, so a
handler can see why the case is P1. The rules and their weights live in the policy
file's `[priority]` table.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from workflows.case.escalation import words_in
from workflows.case.vocabulary import raise_priority
from workflows.sla import PriorityRules


def score_priority(
    rules: PriorityRules,
    requested: str | None,
    tier: str,
    description: str,
    recent_cases: list[str],
    amount_at_stake: str | None,
    escalation_risk: list[str] | None = None,
    negation: bool = True,
) -> tuple[str, list[str]]:
    """Return the intake priority and the reasons for it.

    `requested` is the priority the caller asked for (used as the base instead of the
    policy default); `recent_cases` are earlier cases of this customer or on this order
    within the policy's repeat window; `amount_at_stake` is the order total;
    `escalation_risk` the reasons triage found the customer about to take the case further
    (None when it did not). Escalation words and triage raise the priority once together.
    With `negation` (the default) a clause that denies the threat does not count.
    """
    base = requested or rules.default
    reasons = [f"requested {requested}" if requested else f"policy default {rules.default}"]
    steps = 0
    tier_boost = rules.tier_boost.get(tier.lower(), 0)
    if tier_boost:
        steps += tier_boost
        reasons.append(f"customer tier {tier}: +{tier_boost}")
    words = words_in(description, rules.escalation_words, negation)
    if words and rules.escalation_boost:
        steps += rules.escalation_boost
        reasons.append("escalation words " + ", ".join(words) + f": +{rules.escalation_boost}")
    elif escalation_risk and rules.escalation_boost:
        steps += rules.escalation_boost
        why = ", ".join(escalation_risk[:3])
        reasons.append(f"triage: escalation risk ({why}): +{rules.escalation_boost}")
    if recent_cases and rules.repeat_boost:
        steps += rules.repeat_boost
        days = rules.repeat_window // 86400
        reasons.append(f"{len(recent_cases)} earlier case(s) within {days} days "
                       f"({', '.join(recent_cases[:3])}): +{rules.repeat_boost}")
    amount_boost, threshold = _amount_boost(rules, amount_at_stake)
    if amount_boost:
        steps += amount_boost
        reasons.append(f"amount at stake {amount_at_stake} ≥ {threshold}: +{amount_boost}")
    return raise_priority(base, steps), reasons


def _amount_boost(rules: PriorityRules, amount: str | None) -> tuple[int, str | None]:
    if not amount or not rules.amount_boost:
        return 0, None
    try:
        value = Decimal(amount)
    except InvalidOperation:
        return 0, None
    best, at = 0, None
    for threshold, levels in rules.amount_boost.items():
        if value >= Decimal(threshold) and levels > best:
            best, at = levels, threshold
    return best, at
