"""The workflow's explanations (why a priority, why not eligible, which rule fired), in
the page's language.

The workflow writes them as plain English sentences into the case's history and the
API returns them as they are. The pages recognise each kind of sentence by its shape
and say it again from the catalog; tests/test_pages.py runs every generator in
workflows/ through here, so a reworded sentence cannot slip through untranslated. A
sentence of no known shape is shown as written.
"""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l

from web.caseview import (
    ACTION_NAMES,
    CLOCK_NAMES,
    PARCEL_WORDS,
    RESOLUTION_NAMES,
    STAGE_NAMES,
    TIER_NAMES,
)

_P = r"(?P<p>P[1-4])"
CATEGORY_NAMES = {"fresh": _l("fresh food"), "custom": _l("made to order"),
                  "digital": _l("digital goods"), "periodical": _l("periodicals")}
PATTERNS = [
    (re.compile(rf"^requested {_P}$"), _l("requested %(p)s")),
    (re.compile(rf"^policy default {_P}$"), _l("policy default %(p)s")),
    (re.compile(r"^customer tier (?P<tier>\w+): \+(?P<n>\d+)$"),
     _l("customer tier %(tier)s: +%(n)s")),
    (re.compile(r"^escalation words (?P<words>.+): \+(?P<n>\d+)$"),
     _l("escalation words %(words)s: +%(n)s")),
    (re.compile(r"^(?P<count>\d+) earlier case\(s\) within (?P<days>\d+) days "
                r"\((?P<ids>[^)]*)\): \+(?P<n>\d+)$"),
     _l("%(count)s earlier case(s) within %(days)s days (%(ids)s): +%(n)s")),
    (re.compile(r"^triage: escalation risk \((?P<why>.*)\): \+(?P<n>\d+)$"),
     _l("triage: escalation risk (%(why)s): +%(n)s")),
    (re.compile(r"^rule: (?P<rule>.+)$"), _l("rule: %(rule)s")),
    (re.compile(r"^cue: (?P<cue>.+)$"), _l("cue: %(cue)s")),
    (re.compile(r"^amount at stake (?P<amount>[\d.]+) ≥ (?P<threshold>[\d.]+): \+(?P<n>\d+)$"),
     _l("amount at stake %(amount)s ≥ %(threshold)s: +%(n)s")),
    (re.compile(r"^the order has not been delivered yet$"),
     _l("the order has not been delivered yet")),
    (re.compile(r"^delivered (?P<date>[\d-]+), more than (?P<window>\w+) ago$"),
     _l("delivered %(date)s, more than %(window)s ago")),
    (re.compile(r"^(?P<sku>\S+) is not on order (?P<order>\S+)$"),
     _l("%(sku)s is not on order %(order)s")),
    (re.compile(r"^(?P<sku>\S+): (?P<asked>\d+) asked, (?P<bought>\d+) bought, "
                r"(?P<left>\d+) not yet returned$"),
     _l("%(sku)s: %(asked)s asked, %(bought)s bought, %(left)s not yet returned")),
    (re.compile(r"^(?P<sku>\S+) is (?P<category>[\w-]+): excluded from no-reason returns$"),
     _l("%(sku)s is %(category)s: excluded from no-reason returns")),
    (re.compile(rf"^(?P<share>\d+)% of the (?P<clock>\w+) target \((?P<target>\w+)\) "
                rf"for {_P}$"),
     _l("%(share)s%% of the %(clock)s target (%(target)s) for %(p)s")),
    (re.compile(r"^parcel (?P<waybill>\S+) (?P<status>\w+)$"),
     _l("parcel %(waybill)s %(status)s")),
    (re.compile(rf"^100% of the (?P<clock>\w+) target \((?P<target>\w+)\) for {_P}, "
                r"reached when the clock stopped$"),
     _l("the %(clock)s target (%(target)s) for %(p)s was used up when the clock stopped")),
    # The second escalation names no priority.
    (re.compile(r"^(?P<share>\d+)% of the (?P<clock>\w+) target \((?P<target>\w+)\)$"),
     _l("%(share)s%% of the %(clock)s target (%(target)s)")),
    (re.compile(r"^manual$"), _l("escalated by hand")),
]
# The workflow's refusals of an action (the API's English problem+json `detail`): the
# desk says them again in the page's language. The REST API keeps the English.
REFUSALS = [
    (re.compile(r"^(?P<money>[\d.]+) is more than the (?P<left>[\d.]+) left to refund on "
                r"this order$"),
     _l("%(money)s is more than the %(left)s left to refund on this order")),
    (re.compile(r"^the remedies refund (?P<money>[\d.]+), more than the (?P<left>[\d.]+) "
                r"left to refund on this order$"),
     _l("the remedies refund %(money)s, more than the %(left)s left to refund on this "
        "order")),
    (re.compile(r"^a refund needs an amount$"), _l("a refund needs an amount")),
    # The order system's coupons (web/catalogue.py check_coupons).
    (re.compile(r"^the order system has no coupon (?P<code>.+)$"),
     _l("the order system has no coupon %(code)s")),
    (re.compile(r"^coupon (?P<code>.+) has expired$"), _l("coupon %(code)s has expired")),
    (re.compile(r"^coupon (?P<code>.+) has already been used$"),
     _l("coupon %(code)s has already been used")),
    (re.compile(r"^a compensation needs a coupon_code, points or an amount$"),
     _l("a compensation needs a coupon code, points or an amount")),
    (re.compile(r"^a (?P<type>\w+) needs the items that move$"),
     _l("a %(type)s needs the items that move")),
    (re.compile(r"^(?P<sku>\S+) x(?P<quantity>\d+) is more than the order has "
                r"\((?P<bought>\d+)\)$"),
     _l("%(sku)s ×%(quantity)s is more than the order has (%(bought)s)")),
    (re.compile(r"^not eligible: (?P<reasons>.+) \(a supervisor can override\)$"),
     _l("not eligible: %(reasons)s (a supervisor can override)")),
    (re.compile(r"^a case without an order is settled with an apology or a coupon or "
                r"points; there is no payment to refund and no goods to move$"),
     _l("a case without an order is settled with an apology, a coupon or points")),
    (re.compile(r"^the case is (?P<stage>\w+), not open$"),
     _l("the case is %(stage)s, not open")),
    (re.compile(r"^the case is no longer assigned to (?P<who>\S+)$"),
     _l("the case is no longer assigned to %(who)s")),
    (re.compile(r"^only an admin returns a case to the queue$"),
     _l("only an admin returns a case to the queue")),
    (re.compile(r"^'(?P<action>\w+)' is not allowed while the case is in stage "
                r"'(?P<stage>\w+)' \(allowed in: [\w, ]+\)$"),
     _l("“%(action)s” is not possible while the case is at stage “%(stage)s”")),
    (re.compile(r"^give the inspection's grade \(A, B, C or D\) or passed$"),
     _l("give the inspection's grade (A, B, C or D)")),
    (re.compile(r"^a case has at most (?P<n>\d+) (?P<what>tags|files)$"),
     _l("a case has at most %(n)s %(what)s")),
    (re.compile(r"^a case cannot be merged into itself$"),
     _l("a case cannot be merged into itself")),
    (re.compile(r"^'(?P<id>.+)' is not a case id$"), _l("“%(id)s” is not a case id")),
]


def say(sentence: str, patterns: list | None = None) -> str:
    """The sentence in the page's language, or as written if its shape is unknown."""
    for pattern, message in PATTERNS if patterns is None else patterns:
        match = pattern.match(sentence)
        if match:
            values = match.groupdict()
            if "tier" in values:
                values["tier"] = str(TIER_NAMES.get(values["tier"], values["tier"]))
            if "clock" in values:
                values["clock"] = str(CLOCK_NAMES.get(values["clock"], values["clock"]))
            if "why" in values:
                values["why"] = ", ".join(say(part) for part in values["why"].split(", "))
            if "category" in values:
                values["category"] = str(CATEGORY_NAMES.get(values["category"],
                                                            values["category"]))
            if "status" in values:
                values["status"] = str(PARCEL_WORDS.get(values["status"], values["status"]))
            if "reasons" in values:
                values["reasons"] = "; ".join(say(r) for r in values["reasons"].split("; "))
            if "stage" in values:
                values["stage"] = str(STAGE_NAMES.get(values["stage"], values["stage"]))
            if "action" in values:
                values["action"] = str(ACTION_NAMES.get(values["action"], values["action"]))
            if "type" in values:
                values["type"] = str(RESOLUTION_NAMES.get(values["type"], values["type"]))
            if "what" in values:
                values["what"] = str(COUNTED[values["what"]])
            return str(message % values) if values else str(message)
    return sentence


COUNTED = {"tags": _l("tags"), "files": _l("files")}


def say_refusal(detail: str) -> str:
    """A refused action's reason in the page's language; a reason of no known shape is
    shown as written (the workflow's English), and a test lists the shapes."""
    return say(detail, REFUSALS)


def register(app) -> None:
    app.jinja_env.filters["say"] = say
