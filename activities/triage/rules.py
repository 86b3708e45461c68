"""The unmistakable escalation signals: a customer who names 12315, the consumer
association, the media, a lawyer, a chargeback or a regulator, or who writes again in
anger. The model catches the rest; these rules make sure the obvious is never missed.

A signal in a clause that also denies it ("我不会去打12315", "no need to escalate") does
not fire. Words that are only sometimes a threat (a lawyer, social media, a regulator)
fire only next to a word of intent (contact, report, post, sue, 找, 投诉, 发到 …).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workflows.case.escalation import CLAUSE, NEGATION

INTENT = re.compile(
    r"找|联系|告|投诉|举报|起诉|曝光|发到|发给|发帖|发在|报警|准备|打算|要去|去|会|已经"
    r"|contact|report|post|share|sharing|call|writing to|will|going to|'ll|taking this"
    r"|tell|file|filing|opened|started|expect|in touch|heard from")


@dataclass(frozen=True)
class EscalationRule:
    name: str
    signal: re.Pattern
    needs_intent: bool = False


RULES = (
    EscalationRule("12315", re.compile(r"(?<!\d)12315(?!\d)")),
    EscalationRule("consumer association", re.compile(
        r"消协|消费者协会|消保委|消费者权益保护|consumer (association|council|protection)")),
    EscalationRule("media exposure", re.compile(
        r"曝光|黑猫投诉|电视台|记者|媒体(?!播放)|报社|微博|抖音|小红书"
        r"|journalist|newspaper|the press|local news|news ?paper|social media|review site"
        r"|consumer programme|tv station"), needs_intent=True),
    EscalationRule("lawyer", re.compile(
        r"律师(?!事务所)|起诉|法院|告你们|lawyer|solicitor|attorney|\bsue\b|legal action"
        r"|court"), needs_intent=True),
    EscalationRule("chargeback", re.compile(
        r"chargeback|charge ?back|拒付|dispute with (my )?(bank|card)|dispute the charge"
        r"|opened a dispute|filing a dispute|card issuer|paypal")),
    EscalationRule("regulator", re.compile(
        r"市场监管|市场监督管理|监管部门|监管局|工商局|物价局|价格监管|质监|食品安全局"
        r"|regulator|trading standards|authorit(y|ies)|ombudsman|data protection"),
        needs_intent=True),
    EscalationRule("police", re.compile(r"报警|报案|call(ed)? the police")),
)

REPEAT = re.compile(
    r"第[三四五六七八九十\d]次|又是我|又来了|再三|三次|四次|五次|问了一个月|多次"
    r"|again|(three|four|five|3|4|5|third|fourth|fifth) (times|emails|messages|time)"
    r"|still (no|nothing|missing)")
ANGER = re.compile(
    r"[!！]{2,}|太过分|忍无可忍|受够|没耐心|到底|敷衍|没人管|生气|是不是故意|好欺负"
    r"|unacceptable|appalling|ridiculous|enough|beyond a joke|unbelievable|disgrace"
    r"|\b[A-Z]{4,}\b")


def escalation_signals(text: str) -> list[str]:
    """Names of the rules that fire on `text` (original case, for the shouting check)."""
    lowered = text.lower()
    fired: list[str] = []
    for clause in CLAUSE.split(lowered):
        if not clause.strip() or NEGATION.search(clause):
            continue
        for rule in RULES:
            if rule.name in fired or not rule.signal.search(clause):
                continue
            if rule.needs_intent and not INTENT.search(clause):
                continue
            fired.append(rule.name)
    if REPEAT.search(lowered) and ANGER.search(text) and not NEGATION.search(lowered):
        fired.append("writing again in anger")
    return fired
