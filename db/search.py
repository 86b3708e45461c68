"""The search box's index: which cases a free-text query can mean.

A query matches a case by its id (any letter case, spaces ignored), its order id,
the customer's phone (its digits, whatever the formatting: "+86 138-0013-8000" is
13800138000, `cases.customer_phone_digits`), a waybill number of one of its courier
parcels (`case_waybills`), or by part of the customer's name.

Names are short and often Chinese (王芳), where a word index or a trigram index
(PostgreSQL's pg_trgm needs three characters) does not help and `LIKE '%…%'` reads
every case. So each case's name is kept as its characters and
character pairs (`case_name_grams`, indexed by gram): a query of one character looks
up that character, a longer one every pair in it; the cases holding all of them are
then checked with LIKE against the name itself, case-folded by Python when it was
written (`cases.customer_name_folded`), not by the database's `lower()`, which folds
only ASCII on SQLite and depends on the locale on PostgreSQL. Both SQLite and
PostgreSQL run it from indexes (docs/benchmarks.md).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from sqlalchemy import Select, delete, func, select, text, union
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from db.models import Case, CaseNameGram, CaseWaybill
from workflows.case.vocabulary import ID_ALPHABET

# A query's grams come from its first 200 characters (a name holds at most 200); the
# LIKE check still compares all of it.
MAX_QUERY_CHARS = 200


# What a phone number may be written with besides its digits.
PHONE_MARKS = frozenset(" +-().\u3000\uff0b\uff0d")
# A case id typed without its dash or with the letters in lower case: "as 23456 789ab".
_CASE_ID_TYPED = re.compile(f"AS-?([{ID_ALPHABET}]{{10}})")


def normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def name_grams(name: str) -> set[str]:
    """Every character and every pair of neighbouring characters of a name."""
    text = normalise(name)
    grams = {c for c in text if not c.isspace()}
    grams.update(text[i:i + 2] for i in range(len(text) - 1))
    return grams


def compact(text: str) -> str:
    """The text without any spaces, in upper case: how ids and waybill numbers compare."""
    return "".join(text.split()).upper()


def phone_digits(phone: str) -> str:
    """A phone number's digits (full-width ones too), without China's country code in
    front of a mobile number: "+86 138-0013-8000" and "13800138000" are one phone."""
    digits = "".join(str(unicodedata.decimal(c)) for c in phone if c.isdecimal())
    for prefix in ("0086", "86"):
        rest = digits[len(prefix):]
        if digits.startswith(prefix) and len(rest) == 11 and rest.startswith("1"):
            return rest
    return digits


def case_id_of(query: str) -> str | None:
    """The case id a query spells, however it was typed; None if it spells none."""
    typed = _CASE_ID_TYPED.fullmatch(compact(query))
    return f"AS-{typed.group(1)}" if typed else None


def looks_like_phone(query: str) -> bool:
    """Digits and the marks phones are written with, and enough digits to be one."""
    return (all(c.isdecimal() or c in PHONE_MARKS for c in query)
            and sum(c.isdecimal() for c in query) >= 5)


def query_grams(query: str) -> set[str]:
    """What a case's name must hold to contain the query."""
    text = normalise(query)[:MAX_QUERY_CHARS]
    if len(text) <= 1:
        return {text} if text else set()
    return {text[i:i + 2] for i in range(len(text) - 1)}


def index_name(session: Session, case_id: str, name: str) -> None:
    """Add the name's grams to the index (kept ones stay: a query is checked against
    the current name, so grams of an earlier name cannot make a false match)."""
    grams = name_grams(name)
    if not grams:
        return
    ordered = sorted(grams)
    if session.get_bind().dialect.name == "postgresql":
        # One statement: psycopg2 sends an executemany INSERT ... ON CONFLICT row by row.
        session.execute(_ADD_GRAMS_PG, {"grams": ordered, "case_id": case_id})
        return
    session.execute(sqlite.insert(CaseNameGram).on_conflict_do_nothing(),
                    [{"gram": gram, "case_id": case_id} for gram in ordered])


_ADD_GRAMS_PG = text(
    "INSERT INTO case_name_grams (gram, case_id) "
    "SELECT gram, :case_id FROM unnest(CAST(:grams AS text[])) AS gram "
    "ON CONFLICT DO NOTHING")


def forget_name(session: Session, case_id: str) -> None:
    session.execute(delete(CaseNameGram).where(CaseNameGram.case_id == case_id))


def index_waybills(session: Session, case_id: str, numbers: Iterable[str]) -> None:
    """Add the case's waybill numbers to the index. A case's parcels are only ever
    added to, so kept rows never point at a parcel the case no longer has."""
    found = sorted({compact(n) for n in numbers if n and n.strip()})
    if not found:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_ADD_WAYBILLS_PG, {"numbers": found, "case_id": case_id})
        return
    session.execute(sqlite.insert(CaseWaybill).on_conflict_do_nothing(),
                    [{"waybill": n, "case_id": case_id} for n in found])


_ADD_WAYBILLS_PG = text(
    "INSERT INTO case_waybills (waybill, case_id) "
    "SELECT n, :case_id FROM unnest(CAST(:numbers AS text[])) AS n "
    "ON CONFLICT DO NOTHING")


def matching_case_ids(query: str) -> Select:
    """The ids of the cases the query means, as a subquery for a case list."""
    query = query.strip()
    packed = compact(query)
    arms = [select(Case.id).where(Case.id == (case_id_of(query) or query)),
            select(Case.id).where(Case.order_id.in_({query, packed})),
            select(Case.id).where(Case.customer_phone == query),
            select(CaseWaybill.case_id).where(CaseWaybill.waybill == packed)]
    if looks_like_phone(query):
        arms.append(select(Case.id).where(
            Case.customer_phone_digits == phone_digits(query)))
    grams = query_grams(query)
    if grams:
        candidates = (select(CaseNameGram.case_id).where(CaseNameGram.gram.in_(grams))
                      .group_by(CaseNameGram.case_id)
                      .having(func.count() == len(grams)))
        pattern = "%" + _escape_like(normalise(query)) + "%"
        arms.append(select(Case.id).where(
            Case.id.in_(candidates),
            Case.customer_name_folded.like(pattern, escape="\\")))
    return select(union(*arms).subquery().c[0])


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
