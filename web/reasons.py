"""The workflow's explanations (why a priority, why not eligible, which rule fired), in
the page's language.

The workflow writes them as plain English sentences into the case's history and the
API returns them as they are. The pages recognise each kind of sentence by its shape
and say it again from the catalog; tests/test_pages.py runs every generator in
workflows/ through here, so a reworded sentence cannot slip through untranslated. A
sentence of no known shape is shown as written.

The workflow's refusals of an action are not read back from their English: each
carries a code and its values (workflows/case/refusals.py), and `say_refusal` says it
from REFUSAL_WORDS below.
"""

from __future__ import annotations

import re

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from web.caseview import (
    ACTION_NAMES,
    CLOCK_NAMES,
    PARCEL_WORDS,
    RESOLUTION_NAMES,
    ROLE_NAMES,
    STAGE_NAMES,
    TIER_NAMES,
)
from workflows.case.lifecycle import ASSIGN_OTHERS, N_

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
# The workflow's refusals of an action, by their code (workflows/case/refusals.py): the
# pages say them in their own language from here, with the values that are keys (a
# stage, an action, a role...) in words too. The REST API keeps the English `detail`.
# A code missing here is shown in the workflow's English; a test holds this table to
# every code the workflow has and to the zh catalog.
REFUSAL_WORDS: dict[str, str] = {
    "wrong_stage": N_("“%(action)s” is not possible while the case is at stage "
                      "“%(stage)s”"),
    "wrong_role": N_("“%(permission)s” needs the role %(roles)s; you are %(role)s"),
    "already_yours": N_("the case is already yours"),
    "resolution_running": N_("a resolution is already running for this case"),
    "nothing_to_approve": N_("nothing on this case awaits a supervisor's approval"),
    "four_eyes": N_("%(planner)s planned this refund, so another supervisor or an admin "
                    "must approve it (four eyes)"),
    "nothing_to_inspect": N_("no returned goods are awaiting inspection on this case"),
    "quote_answered": N_("this repair quote was already answered (%(answer)s)"),
    "no_quote": N_("no repair quote is waiting for an answer on this case"),
    "question_pending": N_("the customer has not answered the previous question yet"),
    "merged_away": N_("the case was merged into %(into)s; work on that case"),
    "reopen_window_over": N_("a case can be changed within %(days)s days of closing"),
    "cancel_while_running": N_("the resolution is running; cancel once it has finished or "
                               "failed, or while its refund awaits approval"),
    "merge_while_running": N_("a resolution is running for this case; merge once it has "
                              "finished or failed"),
    "unassign_admin_only": N_("only an admin returns a case to the queue"),
    "not_open": N_("the case is %(stage)s, not open"),
    "no_longer_assigned": N_("the case is no longer assigned to %(assignee)s"),
    "resolution_or_resolutions": N_("choose one resolution, or several remedies"),
    "no_remedies": N_("name at least one remedy"),
    "too_many_remedies": N_("at most %(max)s remedies in one resolution"),
    "remedies_overlap": N_("remedies %(first)s and %(second)s are both %(remedy)s: settle "
                           "that once, in one remedy"),
    "price_the_swap": N_("price the replacement before combining an exchange with other "
                         "remedies"),
    "swap_costs_more": N_("%(sku)s costs more than the item: the customer pays the "
                          "difference, so settle that exchange on its own"),
    "remedies_over_refundable": N_("the remedies refund %(money)s, more than the %(left)s "
                                   "left to refund on this order"),
    "replacement_not_exchange": N_("a replacement item is for an exchange, not for "
                                   "%(type)s"),
    "replacement_one_line": N_("an exchange for another item replaces one item: choose one "
                               "line"),
    "orderless_remedy": N_("a case without an order is settled with an apology, a coupon "
                           "or points"),
    "compensation_needs_value": N_("a compensation needs a coupon code, points or an "
                                   "amount"),
    "refund_needs_amount": N_("a refund needs an amount"),
    "needs_items": N_("a %(type)s needs the items that move"),
    "not_eligible": N_("not eligible: %(reasons)s (a supervisor can override)"),
    "more_than_bought": N_("%(sku)s ×%(quantity)s is more than the order has "
                           "(%(bought)s)"),
    "over_refundable": N_("%(money)s is more than the %(left)s left to refund on this "
                          "order"),
    "quote_only_repair": N_("only a repair outside the warranty takes a quote"),
    "quote_under_warranty": N_("the items are under warranty, so the repair is free: give "
                               "no quote"),
    "quote_needed": N_("the warranty of %(sku)s ended on %(date)s: a repair outside the "
                       "warranty needs a quote for the customer to accept"),
    "quote_amount_format": N_("the quote must be an amount above 0.00, like 120.00"),
    "quote_above_value": N_("a quote of %(amount)s is more than the %(value)s the items "
                            "cost: offer a refund or an exchange instead"),
    "inspection_needs_grade": N_("give the inspection's grade (A, B, C or D)"),
    "grade_unknown": N_("the grade must be one of %(grades)s"),
    "grade_disagrees": N_("grade %(grade)s and the pass or fail chosen disagree: give the "
                          "grade alone"),
    "grade_not_for_repair": N_("grades are for returned goods; a repair's inspection is "
                               "passed or failed"),
    "tag_blank": N_("a tag is a word or short phrase, without leading or trailing spaces"),
    "tag_too_long": N_("a tag has at most %(max)s characters"),
    "tag_characters": N_("a tag has no commas, tabs or line breaks"),
    "too_many_tags": N_("a case has at most %(max)s tags"),
    "too_many_files": N_("a case has at most %(max)s files"),
    "merge_target_ended": N_("case %(into)s has ended and takes no more cases"),
    "not_a_case_id": N_("“%(into)s” is not a case id"),
    "unknown_product": N_("the catalogue has no product %(sku)s"),
    "out_of_stock": N_("%(sku)s: %(wanted)s wanted, %(available)s available; offer another "
                       "replacement or a refund"),
    "coupon_unknown": N_("the order system has no coupon %(coupon)s"),
    "coupon_expired": N_("coupon %(coupon)s has expired"),
    "coupon_used": N_("coupon %(coupon)s has already been used"),
    "merge_into_itself": N_("a case cannot be merged into itself"),
    "merge_target_missing": N_("there is no case %(into)s"),
    "already_merged": N_("case %(case_id)s is already merged into %(into)s"),
    "merge_target_closed": N_("case %(into)s is %(stage)s; merge into an open case (reopen "
                              "it first if the customer's request goes on there)"),
    "merge_other_customer": N_("case %(into)s is another customer's; only the same "
                               "customer's cases are merged"),
    "no_active_user": N_("%(assignee)s is not an active user"),
    "erase_open_case": N_("the case is open and needs the customer's data to be finished; "
                          "cancel or close it first"),
    "already_erased": N_("the customer's data is already erased"),
    "not_awaiting_rating": N_("the case is not waiting for a rating"),
    "rating_range": N_("the rating is 1 to 5"),
    "quote_decision": N_("the answer must be %(decisions)s"),
    "too_many_messages": N_("a case holds at most %(max)s messages; please write to us "
                            "about a new request"),
    "message_length": N_("a message has 1 to %(max)s characters"),
    "not_written": N_("case %(case_id)s changed, but it could not be stored; operators are "
                      "alerted, and the case is shown again once it is written"),
}
# What a remedy of several does (remedies.REMEDY_KINDS), said in the refusal above.
REMEDY_KIND_NAMES = {"apology": _l("an apology"), "grant": _l("a coupon or points"),
                     "money": _l("a refund of money"), "goods": _l("goods that move")}
QUOTE_ANSWERS = {"accepted": _l("accepted"), "declined": _l("declined")}
DECISION_NAMES = {"accept": _l("accept"), "decline": _l("decline")}
ASSIGN_OTHERS_NAME = _l("give cases to others")


# Lists said in the page's language (、 and 或 in Chinese), two items at a time.
EITHER = _l("%(first)s or %(second)s")
AND_ALSO = _l("%(first)s, %(second)s")
THEN = _l("%(first)s; %(second)s")


def _joined(how, items) -> str:
    said = ""
    for item in items:
        said = str(item) if not said else str(how) % {"first": said, "second": item}
    return said


def _one_of(values, names) -> str:
    return _joined(EITHER, (names.get(v, v) for v in values))


def _permission(value: str) -> str:
    if value == ASSIGN_OTHERS:
        return str(ASSIGN_OTHERS_NAME)
    action = value.removeprefix("cases.")
    return str(ACTION_NAMES.get(action, action))


# A refusal's params that are keys, in words: param name -> how to say its value.
PARAM_WORDS = {
    "stage": lambda v: str(STAGE_NAMES.get(v, v)),
    "action": lambda v: str(ACTION_NAMES.get(v, v)),
    "type": lambda v: str(RESOLUTION_NAMES.get(v, v)),
    "remedy": lambda v: str(REMEDY_KIND_NAMES.get(v, v)),
    "role": lambda v: str(ROLE_NAMES.get(v, v)),
    "roles": lambda v: _one_of(v, ROLE_NAMES),
    "permission": _permission,
    "answer": lambda v: str(QUOTE_ANSWERS.get(v, v)),
    "decisions": lambda v: _one_of(v, DECISION_NAMES),
    "grades": lambda v: _joined(AND_ALSO, v),
    "reasons": lambda v: _joined(THEN, (say(r) for r in v)),
}


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


def say_refusal(err) -> str:
    """A refused action's reason in the page's language, from its `code` and `params`
    (an ActionRefused, or a Problem that carries them); an unknown code, or none, is
    shown as the English `message` (or `detail`) says it."""
    english = str(getattr(err, "message", None) or getattr(err, "detail", None) or err)
    words = REFUSAL_WORDS.get(getattr(err, "code", None) or "")
    if words is None:
        return english
    params = getattr(err, "params", None) or {}
    try:
        values = {name: PARAM_WORDS[name](value) if name in PARAM_WORDS else value
                  for name, value in params.items()}
        said = gettext(words) % values
    except (KeyError, TypeError, ValueError):  # values of another worker's version
        return english
    if "tag" in params:  # one of several tags: which one
        said = gettext("tag “%(tag)s”: %(why)s", tag=params["tag"], why=said)
    return said


def register(app) -> None:
    app.jinja_env.filters["say"] = say
