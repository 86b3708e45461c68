"""Every way an action on a case can be refused, by a stable code: one table.

A refusal is a `code` (snake_case, never reworded), the English sentence (the REST
API's problem `detail`), the values the sentence names (`params`) and, where it is
about one input, that input's name (`field`). The workflow carries code, params and
field in its `ApplicationError`'s details (workflow.py `refuse`); the API adds `code`
and `field` to the problem+json body; the pages say the sentence again in their own
language from the code (web/reasons.py), never from the English wording. A test walks
this table and fails if a code has no translation there.

Pure: no Temporal, no I/O. The action table's preconditions (lifecycle.py), the
validators of workflow.py and the pure rules they call (remedies.py, warranty.py,
contracts.tag_problem) all build their refusals here, so a code names one sentence.
"""

from __future__ import annotations

import dataclasses
import string
from typing import Any

# The kinds a refusal can be of; each maps to an HTTP status (web/problems.py).
WRONG_STAGE = "WrongStage"          # 409: not now, not in this state
FORBIDDEN = "Forbidden"             # 403: not for this role or person
INVALID = "InvalidAction"           # 422: the input does not fit the case
TOO_MANY = "TooMany"                # 409: the case holds all it may
ALREADY_ERASED = "AlreadyErased"    # erasure counts it as done (aftersales/erasure.py)
# 500: the change was made but the read model refused to store it (also the projection
# activity's failure type; contracts.py gives it to the activities and the web).
PROJECTION_REFUSED = "ProjectionRefused"

# code -> (kind, the English sentence). A placeholder names a param; `{name:SEP}` joins
# a list param with SEP, `{name!r}` quotes it as Python does.
REFUSALS: dict[str, tuple[str, str]] = {
    # The action table (lifecycle.py): stage, role and the state's own rules.
    "wrong_stage": (WRONG_STAGE, "'{action}' is not allowed while the case is in stage "
                                 "'{stage}' (allowed in: {allowed:, })"),
    "wrong_role": (FORBIDDEN, "'{permission}' needs the role {roles: or }; you are {role}"),
    "already_yours": (INVALID, "the case is already yours"),
    "resolution_running": (WRONG_STAGE, "a resolution is already running for this case"),
    "nothing_to_approve": (WRONG_STAGE, "nothing on this case awaits a supervisor's "
                                        "approval"),
    "four_eyes": (FORBIDDEN, "{planner} planned this refund, so another supervisor or an "
                             "admin must approve it (four eyes)"),
    "nothing_to_inspect": (WRONG_STAGE, "no returned goods are awaiting inspection on this "
                                        "case"),
    "quote_answered": (WRONG_STAGE, "this repair quote was already answered ({answer})"),
    "no_quote": (WRONG_STAGE, "no repair quote is waiting for your answer on this case"),
    "question_pending": (WRONG_STAGE, "the customer has not answered the previous question "
                                      "yet"),
    "merged_away": (WRONG_STAGE, "the case was merged into {into}; work on that case"),
    "reopen_window_over": (WRONG_STAGE, "a case can be changed within {days} days of "
                                        "closing"),
    "cancel_while_running": (WRONG_STAGE, "the resolution is running; cancel once it has "
                                          "finished or failed, or while its refund awaits "
                                          "approval"),
    "merge_while_running": (WRONG_STAGE, "a resolution is running for this case; merge "
                                         "once it has finished or failed"),
    # assign and unassign
    "unassign_admin_only": (FORBIDDEN, "only an admin returns a case to the queue"),
    "not_open": (WRONG_STAGE, "the case is {stage}, not open"),
    "no_longer_assigned": (INVALID, "the case is no longer assigned to {assignee}"),
    # resolve: the remedies (remedies.py) ...
    "resolution_or_resolutions": (INVALID, "send either resolution or resolutions (a list "
                                           "of remedies)"),
    "no_remedies": (INVALID, "name at least one remedy"),
    "too_many_remedies": (INVALID, "at most {max} remedies in one resolution"),
    "remedies_overlap": (INVALID, "remedies {first} and {second} are both {what}: settle "
                                  "that once, in one remedy"),
    "price_the_swap": (INVALID, "price the replacement (replacement_price) before "
                                "combining an exchange with other remedies"),
    "swap_costs_more": (INVALID, "{sku} costs more than the item: the customer pays the "
                                 "difference, so settle that exchange on its own, not "
                                 "combined with other remedies"),
    "remedies_over_refundable": (INVALID, "the remedies refund {money}, more than the "
                                          "{left} left to refund on this order"),
    "replacement_not_exchange": (INVALID, "replacement_sku is for an exchange, not a "
                                          "{type}"),
    "replacement_one_line": (INVALID, "an exchange with a replacement_sku replaces one "
                                      "item: send one line"),
    # ... one remedy ...
    "orderless_remedy": (INVALID, "a case without an order is settled with an apology or a "
                                  "coupon or points; there is no payment to refund and no "
                                  "goods to move"),
    "compensation_needs_value": (INVALID, "a compensation needs a coupon_code, points or "
                                          "an amount"),
    "refund_needs_amount": (INVALID, "a refund needs an amount"),
    "needs_items": (INVALID, "a {type} needs the items that move"),
    "not_eligible": (INVALID, "not eligible: {reasons:; } (a supervisor can override)"),
    "more_than_bought": (INVALID, "{sku} x{quantity} is more than the order has "
                                  "({bought})"),
    "over_refundable": (INVALID, "{money} is more than the {left} left to refund on this "
                                 "order"),
    # ... and its warranty (warranty.py)
    "quote_only_repair": (INVALID, "only a repair outside the warranty takes a "
                                   "quote_amount"),
    "quote_under_warranty": (INVALID, "the items are under warranty, so the repair is "
                                      "free: send no quote_amount"),
    "quote_needed": (INVALID, "the warranty of {sku} ended on {date}: a repair outside the "
                              "warranty needs a quote_amount for the customer to accept"),
    "quote_amount_format": (INVALID, 'quote_amount must be an amount above 0.00 like '
                                     '"120.00"'),
    "quote_above_value": (INVALID, "a quote of {amount} is more than the {value} the items "
                                   "cost: offer a refund or an exchange instead"),
    # inspect
    "inspection_needs_grade": (INVALID, "give the inspection's grade (A, B, C or D) or "
                                        "passed"),
    "grade_unknown": (INVALID, "grade must be one of {grades:, }, not {grade!r}"),
    "grade_disagrees": (INVALID, "grade {grade} and passed {passed} disagree: give the "
                                 "grade alone"),
    "grade_not_for_repair": (INVALID, "grades are for returned goods; a repair's "
                                      "inspection takes passed"),
    # tag (contracts.tag_problem; the workflow puts the tag in front: "tag 'x': …")
    "tag_blank": (INVALID, "a tag is a word or short phrase, without leading or trailing "
                           "spaces"),
    "tag_too_long": (INVALID, "a tag has at most {max} characters"),
    "tag_characters": (INVALID, "a tag has no commas, tabs or line breaks"),
    "too_many_tags": (INVALID, "a case has at most {max} tags"),
    # attach
    "too_many_files": (TOO_MANY, "a case has at most {max} files"),
    # merge
    "merge_target_ended": (WRONG_STAGE, "case {into} has ended and takes no more cases: "
                                        "{error}"),
    "not_a_case_id": (INVALID, "'{into}' is not a case id"),
    "merge_into_itself": (INVALID, "a case cannot be merged into itself"),
    # ... and what the web checks of the case merged into, from the read model
    # (web/commands.py check_merge), before the workflow is asked
    "merge_target_missing": (INVALID, "no case {into}"),
    "already_merged": (WRONG_STAGE, "case {case_id} is already merged into {into}"),
    "merge_target_closed": (WRONG_STAGE, "case {into} is {stage}; merge into an open case "
                                         "(reopen it first if the customer's request goes "
                                         "on there)"),
    "merge_other_customer": (INVALID, "case {into} is another customer's; only the same "
                                      "customer's cases are merged"),
    # resolve: what the web asks the order system and the warehouse before the case is
    # asked (web/catalogue.py): the replacement's product and stock, the coupons
    "unknown_product": (INVALID, "the catalogue has no product {sku}"),
    "out_of_stock": (WRONG_STAGE, "{sku}: {wanted} wanted, {available} available; offer "
                                  "another replacement or a refund"),
    "coupon_unknown": (INVALID, "the order system has no coupon {coupon}"),
    "coupon_expired": (INVALID, "coupon {coupon} has expired"),
    "coupon_used": (INVALID, "coupon {coupon} has already been used"),
    # assign: the web checks the assignee is an active user (web/commands.py)
    "no_active_user": (INVALID, "no such active user"),
    # erase
    "erase_open_case": (WRONG_STAGE, "the case is open and needs the customer's data to be "
                                     "finished; cancel or close it first"),
    "already_erased": (ALREADY_ERASED, "the customer's data is already erased"),
    # the customer's: feedback, the quote, messages
    "not_awaiting_rating": (WRONG_STAGE, "the case is not waiting for your rating"),
    "rating_range": (INVALID, "rating must be 1 to 5"),
    "quote_decision": (INVALID, "decision must be {decisions: or }"),
    "too_many_messages": (TOO_MANY, "a case holds at most {max} messages; please write to "
                                    "us about a new request"),
    "message_length": (INVALID, "a message has 1 to {max} characters"),
    # Not the caller's fault: the change was made but the read model refused to store it.
    "not_written": (PROJECTION_REFUSED, "case {case_id} changed, but the read model refused "
                                        "to store it; operators are alerted, and the case "
                                        "is shown again once it is written"),
}


class _Sentence(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> Any:
        if isinstance(value, list | tuple):
            return format_spec.join(str(v) for v in value)
        return super().format_field(value, format_spec)


_SENTENCE = _Sentence()


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why an action cannot be taken: see the module's docstring."""

    kind: str
    code: str
    message: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    field: str | None = None

    def __str__(self) -> str:
        return self.message

    def details(self) -> dict[str, Any]:
        """What travels beside the message in the workflow's error (JSON values)."""
        return {"code": self.code, "params": self.params, "field": self.field}

    def prefixed(self, prefix: str, field: str | None, **params: Any) -> Refusal:
        """The same refusal said about one thing of several: `prefix` before the
        sentence (e.g. the tag it is about), its values among the params, and the
        input it is in."""
        return Refusal(self.kind, self.code, prefix + self.message,
                       {**self.params, **params}, field or self.field)


def refused(code: str, field: str | None = None, **params: Any) -> Refusal:
    """The refusal `code` with these values (JSON values: str, int, lists of them)."""
    kind, sentence = REFUSALS[code]
    return Refusal(kind, code, _SENTENCE.format(sentence, **params), params, field)
