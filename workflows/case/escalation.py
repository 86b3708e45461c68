"""Reading a customer's words for a threat to take the case further, the one way both
intake priority (the policy's `escalation_words`) and triage's escalation rules do it.

Text is read clause by clause; a clause that also denies ("我不会去打12315", "no need
to escalate") does not count. Pure: regular expressions only.
"""

from __future__ import annotations

import re

CLAUSE = re.compile(r"[，。！？；,.!?;\n]+")
NEGATION = re.compile(
    r"不会|不想|不打算|不用|不打$|我不打|不需要|没必要|不去|不投诉|并不"
    r"|won't|will not|not going to|no need|don't want|do not want|not planning"
    r"|isn't needed|not needed|no longer need|not a complaint|don't want to make")


def clauses(text: str) -> list[str]:
    """The lower-cased clauses of `text` that do not deny what they say."""
    return [c for c in CLAUSE.split(text.lower()) if c.strip() and not NEGATION.search(c)]


def words_in(text: str, words: list[str], negation: bool = True) -> list[str]:
    """The escalation words that appear in a clause of `text` not denying them, in the
    order given. Without `negation`, anywhere in the text: how cases opened before the
    clauses were read scored their priority, which their replay must repeat."""
    if not negation:
        lowered = text.lower()
        return [w for w in words if w.lower() in lowered]
    kept = clauses(text)
    return [w for w in words if any(w.lower() in clause for clause in kept)]
