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

from web.caseview import CLOCK_NAMES, PARCEL_WORDS, TIER_NAMES

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
]


def say(sentence: str) -> str:
    """The sentence in the page's language, or as written if its shape is unknown."""
    for pattern, message in PATTERNS:
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
            return str(message % values) if values else str(message)
    return sentence


def register(app) -> None:
    app.jinja_env.filters["say"] = say
