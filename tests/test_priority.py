"""Intake priority scoring with the policy's rules."""

from __future__ import annotations

from workflows.case.priority import score_priority
from workflows.sla import PriorityRules, format_duration


def test_base_priority_and_each_rule():
    rules = PriorityRules(amount_boost={"1000.00": 1, "5000.00": 2})
    assert score_priority(rules, None, "regular", "box dented", [], "99.00")[0] == "P3"
    assert score_priority(rules, "P4", "regular", "box dented", [], None)[0] == "P4"
    assert score_priority(rules, None, "VIP", "box dented", [], None)[0] == "P2"
    assert score_priority(rules, None, "regular", "我要去媒体曝光", [], None)[0] == "P2"
    assert score_priority(rules, None, "regular", "again", ["AS-1"], None)[0] == "P2"
    priority, reasons = score_priority(rules, None, "regular", "tv broke", [], "6000.00")
    assert priority == "P1" and any("5000.00" in r for r in reasons)
    assert score_priority(rules, None, "regular", "x", [], "1000.00")[0] == "P2"


def test_never_above_p1_and_reasons_explain_every_step():
    rules = PriorityRules()
    priority, reasons = score_priority(rules, "P2", "vip", "Call my LAWYER, chargeback!",
                                       ["AS-1", "AS-2"], None)
    assert priority == "P1"
    assert reasons[0] == "requested P2"
    assert any("lawyer" in r and "chargeback" in r for r in reasons)
    assert any("2 earlier case(s) within 30 days" in r for r in reasons)


def test_weights_come_from_the_policy():
    quiet = PriorityRules(tier_boost={}, escalation_boost=0, repeat_boost=0)
    assert score_priority(quiet, None, "vip", "12315", ["AS-1"], None) == (
        "P3", ["policy default P3"])


def test_triage_escalation_risk_raises_once_with_the_words():
    rules = PriorityRules()
    risk = ["rule: writing again in anger", "cue: anger"]
    priority, reasons = score_priority(rules, None, "regular", "third time! unacceptable",
                                       [], None, escalation_risk=risk)
    assert priority == "P2"
    assert reasons[-1] == ("triage: escalation risk (rule: writing again in anger, "
                           "cue: anger): +1")
    # Words of the policy and triage's risk are one reason to hurry, not two.
    priority, reasons = score_priority(rules, None, "regular", "我要打12315", [], None,
                                       escalation_risk=["rule: 12315"])
    assert priority == "P2" and len(reasons) == 2 and "12315" in reasons[1]
    quiet = PriorityRules(escalation_boost=0)
    assert score_priority(quiet, None, "regular", "x", [], None, escalation_risk=risk)[0] \
        == "P3"


def test_format_duration():
    assert [format_duration(s) for s in (86400, 5400, 3600, 90, 0)] == [
        "1d", "90m", "1h", "90s", "0s"]


def test_a_denied_escalation_word_does_not_raise_the_priority():
    """The policy's words are read as triage reads them: a clause that denies the threat
    does not count."""
    from workflows.case.priority import score_priority
    from workflows.sla import PriorityRules

    rules = PriorityRules()
    denied, _ = score_priority(rules, None, "regular", "我不会去打12315，只想换一个", [], None)
    meant, reasons = score_priority(rules, None, "regular", "再不处理我就打12315", [], None)
    assert denied == rules.default
    assert meant != rules.default and any("12315" in r for r in reasons)


def test_cases_scored_before_clauses_were_read_keep_their_score():
    """Replay repeats the old reading where the two differ (the workflow asks the
    `escalation-clauses` patch): the word anywhere in the text counts."""
    from workflows.case.priority import score_priority
    from workflows.sla import PriorityRules

    rules = PriorityRules()
    text = "No need for a lawyer, just refund me"
    assert score_priority(rules, None, "regular", text, [], None)[0] == rules.default
    old, _ = score_priority(rules, None, "regular", text, [], None, negation=False)
    assert old != rules.default
