"""Refusals carry a code: every code the workflow can raise is in the one table of
workflows/case/refusals.py, keeps its English sentence (the API's `detail`), and has
its words in the pages' table (web/reasons.py) and the zh catalog."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from tests.test_one_language import foreign
from tests.test_pages import app as app
from web.gateway import ActionRefused
from web.reasons import REFUSAL_WORDS, say_refusal
from workflows.case.refusals import REFUSALS, refused

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "web" / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
# Calls that name a refusal by its code (the first argument), and the action table's
# `_awaits(what, code)`.
CODE_CALLS = {"refuse": 0, "refused": 0, "_awaits": 1}


def codes_in_source() -> dict[str, list[tuple[str, set[str]]]]:
    """Every code the workflow package (and the web, for what it checks before asking
    the case) names where it refuses: code -> its places, each with the names of the
    params given there."""
    found: dict[str, list[tuple[str, set[str]]]] = {}
    for path in sorted([*(ROOT / "workflows").rglob("*.py"), *(ROOT / "web").rglob("*.py")]):
        if path.name == "refusals.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            at = CODE_CALLS.get(node.func.id)
            if at is None or len(node.args) <= at:
                continue
            arg = node.args[at]
            place = f"{path.relative_to(ROOT)}:{node.lineno}"
            params = {k.arg for k in node.keywords if k.arg and k.arg != "field"}
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.setdefault(arg.value, []).append((place, params))
            elif not (isinstance(arg, ast.Name) and arg.id == "code"):  # passed on
                found.setdefault(f"<not a literal at {place}>", []).append((place, params))
    return found


def fields_of(sentence: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(sentence) if name}


CODES = codes_in_source()


def params_of(code: str) -> set[str]:
    """The params every place that raises `code` gives."""
    return set.intersection(*(params for _, params in CODES[code]))


def test_every_code_the_workflow_raises_is_in_the_table_and_every_code_is_raised():
    found = CODES
    assert set(found) - set(REFUSALS) == set(), {c: found[c] for c in set(found) - set(REFUSALS)}
    assert set(REFUSALS) - set(found) == set()
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", code) for code in REFUSALS)


def test_every_code_has_words_on_the_pages_and_in_the_chinese_catalog():
    assert set(REFUSAL_WORDS) == set(REFUSALS)
    with CATALOG.open("rb") as po:
        catalog = read_po(po)
    missing = []
    for code, words in REFUSAL_WORDS.items():
        message = catalog.get(words)
        if message is None or not message.string or message.fuzzy:
            missing.append(code)
        # The words name only values the refusal carries wherever it is raised, and its
        # English sentence names only those too.
        named = set(re.findall(r"%\((\w+)\)s", words))
        assert named <= params_of(code), code
        assert fields_of(REFUSALS[code][1]) <= params_of(code), code
    assert not missing, missing


# Sample values for each param a sentence names, for saying every refusal.
SAMPLES: dict[str, object] = {
    "action": "resolve", "stage": "confirm", "allowed": ["analyze", "resolve"],
    "permission": "cases.approve", "roles": ["supervisor", "admin"], "role": "handler",
    "planner": "sue", "answer": "accepted", "into": "AS-2345678923", "days": 30,
    "assignee": "hank", "max": 5, "first": 1, "second": 2, "remedy": "grant",
    "what": "a coupon or points", "sku": "SKU-TV55", "money": "300.00", "left": "120.00",
    "type": "return_refund", "quantity": 3, "bought": 1, "date": "2026-11-01",
    "reasons": ["the order has not been delivered yet", "SKU-9 is not on order SO-2"],
    "amount": "599.01", "value": "599.00", "grades": ["A", "B", "C", "D"], "grade": "E",
    "passed": "true", "error": "workflow execution already completed", "tag": "破损",
    "decisions": ["accept", "decline"], "case_id": "AS-2345678923",
    "wanted": 2, "available": 1, "coupon": "SORRY-9",
}


def sample(code: str) -> ActionRefused:
    why = refused(code, None, **{name: SAMPLES[name] for name in params_of(code)})
    return ActionRefused(why.kind, why.message, why.code, why.params, why.field)


def test_every_refusal_is_said_in_chinese_with_its_keys_in_words(app):
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        said = {code: say_refusal(sample(code)) for code in REFUSALS}
        tag = refused("tag_too_long", "add", max=40).prefixed("tag 'x': ", "add", tag="破损 x")
        said_tag = say_refusal(ActionRefused(tag.kind, tag.message, tag.code, tag.params))
    untranslated = {c: z for c, z in said.items() if foreign(f"<p>{z}</p>")}
    assert not untranslated, untranslated
    assert said["wrong_stage"] == "工单处于“待确认”阶段，不能“处理”"
    assert said["over_refundable"] == "300.00 超过本订单剩余可退金额 120.00"
    assert said["wrong_role"] == "“批准退款”需要主管或管理员角色，您是客服"
    assert said["grade_unknown"] == "等级只能是 A、B、C、D 之一"
    assert "订单尚未签收" in said["not_eligible"]
    assert "破损 x" in said_tag and "40" in said_tag
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert say_refusal(sample("rating_range")) == "the rating is 1 to 5"


def test_an_unknown_code_or_none_shows_the_workflow_s_english(app):
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert say_refusal(ActionRefused("InvalidAction", "some new rule", "some_new_rule",
                                         {})) == "some new rule"
        assert say_refusal(ActionRefused("InvalidAction", "from an old worker")) == (
            "from an old worker")
        # A known code whose values do not fit the words (another version's): English.
        assert say_refusal(ActionRefused("InvalidAction", "a case has at most 20 tags",
                                         "too_many_tags", {"limit": 20})) == (
            "a case has at most 20 tags")


@pytest.mark.parametrize(("code", "params", "english"), [
    # As the workflow worded them before refusals carried a code: the API's `detail`.
    ("over_refundable", {"money": "29990.00", "left": "10157.00"},
     "29990.00 is more than the 10157.00 left to refund on this order"),
    ("remedies_over_refundable", {"money": "300.00", "left": "120.00"},
     "the remedies refund 300.00, more than the 120.00 left to refund on this order"),
    ("needs_items", {"type": "return_refund"}, "a return_refund needs the items that move"),
    ("more_than_bought", {"sku": "SKU-TV55", "quantity": 3, "bought": 1},
     "SKU-TV55 x3 is more than the order has (1)"),
    ("not_eligible", {"reasons": ["the order has not been delivered yet",
                                  "SKU-9 is not on order SO-2"]},
     "not eligible: the order has not been delivered yet; SKU-9 is not on order SO-2 "
     "(a supervisor can override)"),
    ("wrong_stage", {"action": "resolve", "stage": "confirm",
                     "allowed": ["analyze", "resolve"]},
     "'resolve' is not allowed while the case is in stage 'confirm' (allowed in: analyze, "
     "resolve)"),
    ("wrong_role", {"permission": "cases.assign.others", "roles": ["supervisor", "admin"],
                    "role": "handler"},
     "'cases.assign.others' needs the role supervisor or admin; you are handler"),
    ("grade_unknown", {"grades": ["A", "B", "C", "D"], "grade": "E"},
     "grade must be one of A, B, C, D, not 'E'"),
    ("quote_decision", {"decisions": ["accept", "decline"]},
     "decision must be accept or decline"),
    ("not_a_case_id", {"into": "XX"}, "'XX' is not a case id"),
    ("too_many_files", {"max": 10}, "a case has at most 10 files"),
    ("quote_amount_format", {}, 'quote_amount must be an amount above 0.00 like "120.00"'),
])
def test_the_english_sentence_is_the_one_the_api_gave_before(code, params, english):
    assert refused(code, **params).message == english
