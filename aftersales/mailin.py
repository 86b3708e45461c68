"""Inbound mail: raw bytes in, a clean `InboundMail` out, and the two transports that
fetch the bytes (an IMAP mailbox polled under a cursor; an SMTP receiver for
development). docs/mail-in.md says what is parsed and why.

Pure of case logic: nothing here knows which case a mail belongs to or what to do with
it. The router gets an `InboundMail` whose text is what the customer wrote (the quoted
history cut), whose `automatic` says why it must never open or answer a case (loops
with auto-replies and bounces), and whose `problem` says why it could not be understood
(the caller drops or logs it). `parse` never raises: mail is written by every program
ever made, and one broken message must not stop the mailbox.

Attachments are handed over as bytes with the sender's claims (name, declared type);
aftersales/attachments.py decides what they really are.

    python -m aftersales.mailin --port 2525   # a receiver that prints what it parses
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import codecs
import hashlib
import imaplib
import json
import logging
import mimetypes
import quopri
import re
import secrets
import signal
import ssl
import threading
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import errors as email_errors
from email import message_from_bytes, policy
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from sqlalchemy.orm import Session, sessionmaker

from db import mail as mail_store
from workflows.case.vocabulary import CASE_ID

log = logging.getLogger("aftersales.mailin")

Handle = Callable[[bytes], None]

__all__ = ["Attachment", "Handle", "ImapPoller", "InboundMail", "PollReport",
           "SmtpReceiver", "TooLarge", "automatic_reason", "case_ids_in", "decode_bytes",
           "decode_words", "dedupe_key", "html_to_text", "order_numbers_in", "parse",
           "referenced_ids", "start_receiver", "strip_quotes"]


class Attachment(NamedTuple):
    """A file as the mail carries it: the sender's name and type, the decoded bytes."""

    filename: str
    data: bytes
    content_type: str


class TooLarge(NamedTuple):
    """A part over the size limit: not decoded, only described."""

    filename: str
    content_type: str
    size: int  # decoded bytes, estimated from the encoded length when not decoded
    reason: str


@dataclass(frozen=True)
class InboundMail:
    message_id: str | None  # "<...>", as in the header; None when missing
    in_reply_to: str | None
    references: list[str]
    sender: str  # the From address, lower-cased; "" when there is none
    sender_name: str
    to: list[str]
    cc: list[str]
    subject: str
    date: datetime | None
    text: str  # what the sender wrote: quoted history and signature cut
    full_text: str  # the whole text part, history included (for the record)
    attachments: list[Attachment]
    too_large: list[TooLarge]
    # Why this mail must never open or answer a case (an auto-reply, a bounce, a
    # mailing list); None for a mail a person wrote.
    automatic: str | None
    # Why it could not be understood; None when it could.
    problem: str | None
    # Every defect the parser noted, serious or not (for the log).
    defects: list[str] = field(default_factory=list)
    size: int = 0
    sha256: str = ""


# ------------------------------------------------------------ parse


def parse(raw: bytes, *, max_bytes: int) -> InboundMail:
    """The mail in `raw`, never an exception: what cannot be understood gives an
    InboundMail whose `problem` says why.

    `max_bytes` bounds each part: a bigger one is not decoded (it is cut from the bytes
    before the parser copies them, so a 30 MB attachment costs no second 30 MB) and is
    listed in `too_large`; the text of the mail is kept.
    """
    digest = hashlib.sha256(raw).hexdigest()
    try:
        return _parse(raw, max_bytes, digest)
    except Exception as err:  # a case no one foresaw: the caller logs it, never crashes
        log.warning("mail %s could not be parsed", digest[:12], exc_info=True)
        return _unreadable(raw, digest, f"could not be parsed: {type(err).__name__}: {err}")


def _unreadable(raw: bytes, digest: str, problem: str) -> InboundMail:
    return InboundMail(message_id=None, in_reply_to=None, references=[], sender="",
                       sender_name="", to=[], cc=[], subject="", date=None, text="",
                       full_text="", attachments=[], too_large=[], automatic=None,
                       problem=problem, size=len(raw), sha256=digest)


def _parse(raw: bytes, max_bytes: int, digest: str) -> InboundMail:
    nonce = secrets.token_hex(8)
    slim = omit_large_bodies(raw, max_bytes, nonce)
    msg = message_from_bytes(slim, policy=policy.default)
    headers = raw_headers(msg)
    sender_name, sender = _first_address(headers.get("from") or headers.get("sender") or [])
    text_parts, attachments, too_large, notes = _contents(msg, max_bytes, nonce)
    full_text = clean_text("\n".join(text_parts))
    subject = decode_words(_first(headers, "subject"))
    defects = [type(d).__name__ for part in msg.walk() for d in part.defects]
    return InboundMail(
        message_id=_first_id(_first(headers, "message-id")),
        in_reply_to=_first_id(_first(headers, "in-reply-to")),
        references=_ids(" ".join(headers.get("references", []))),
        sender=sender,
        sender_name=sender_name,
        to=[a for _, a in _addresses(headers.get("to", []))],
        cc=[a for _, a in _addresses(headers.get("cc", []))],
        subject=subject,
        date=_date(_first(headers, "date")),
        text=strip_quotes(full_text),
        full_text=full_text,
        attachments=attachments,
        too_large=too_large,
        automatic=automatic_reason(headers, sender, msg.get_content_type(), subject),
        problem=_problem(msg, headers, sender, notes),
        defects=defects,
        size=len(raw),
        sha256=digest,
    )


def _problem(msg: Message, headers: dict[str, list[str]], sender: str,
             notes: list[str]) -> str | None:
    """The first reason this mail is not understood, if any. Minor defects (a missing
    closing boundary, base64 padding) are not: the content is all there."""
    if not headers:
        return "not a mail: no headers"
    if not sender:
        return "no sender address (From)"
    for part in msg.walk():
        for defect in part.defects:
            if isinstance(defect, email_errors.StartBoundaryNotFoundDefect
                          | email_errors.NoBoundaryInMultipartDefect
                          | email_errors.MultipartInvariantViolationDefect):
                return "broken MIME structure: the multipart boundary is not in the body"
    return notes[0] if notes else None


# ------------------------------------------------------------ headers


def raw_headers(msg: Message) -> dict[str, list[str]]:
    """Header values as sent (lower-cased names), unfolded, with 8-bit bytes decoded.

    The raw values, not policy.default's parsed headers: those decode encoded words with
    the declared charset only (GB2312 that is really GBK comes out broken) and can
    raise on malformed values; every value here is decoded by `decode_words` instead.
    """
    found: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        text = value if isinstance(value, str) else str(value)
        found.setdefault(name.strip().lower(), []).append(_unfold(_undo_surrogates(text)))
    return found


def _first(headers: dict[str, list[str]], name: str) -> str:
    values = headers.get(name)
    return values[0] if values else ""


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value).strip()


def _undo_surrogates(value: str) -> str:
    """Raw 8-bit header bytes (RFC 6532 UTF-8, or GBK from an old client) arrive as
    surrogate escapes; decode them as text."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    return decode_bytes(value.encode("ascii", "surrogateescape"), None)


ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")


def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded with this module's charset rules.

    Adjacent words in one charset are joined as bytes before decoding: clients split a
    long subject into words in the middle of a multi-byte character (GBK, UTF-8), and
    decoding word by word would break that character. Whitespace between encoded words
    is dropped, as the RFC says; a word that does not decode stays as written.
    """
    out: list[str] = []
    pending: list[bytes] = []
    pending_charset = ""
    position = 0
    after_word = False

    def flush() -> None:
        if pending:
            out.append(decode_bytes(b"".join(pending), pending_charset))
            pending.clear()

    for match in ENCODED_WORD.finditer(value):
        between = value[position:match.start()]
        position = match.end()
        if between and not (after_word and between.isspace()):
            flush()
            out.append(between)
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:  # kept as written, and text for the whitespace rule
            flush()
            out.append(match.group(0))
            after_word = False
            continue
        charset = match.group(1).split("*", 1)[0].lower()
        if pending and charset != pending_charset:
            flush()
        pending_charset = charset
        pending.append(data)
        after_word = True
    flush()
    out.append(value[position:])
    return "".join(out)


def _word_bytes(encoding: str, text: str) -> bytes | None:
    try:
        if encoding in "bB":
            return base64.b64decode(text + "=" * (-len(text) % 4))
        return quopri.decodestring(text.encode("ascii"), header=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def _addresses(values: list[str]) -> list[tuple[str, str]]:
    """(display name, lower-cased address) of each address with an @ in the values."""
    found = []
    for name, spec in getaddresses(values):
        address = spec.strip().lower()
        if "@" in address and not any(c.isspace() for c in address):
            found.append((decode_words(name).strip(), address))
    return found


def _first_address(values: list[str]) -> tuple[str, str]:
    found = _addresses(values)
    return found[0] if found else ("", "")


MESSAGE_ID = re.compile(r"<[^<>\s]+>")


def _ids(value: str) -> list[str]:
    """The `<...>` message ids in a header, in order, each once."""
    return list(dict.fromkeys(MESSAGE_ID.findall(value)))


def _first_id(value: str) -> str | None:
    found = _ids(value)
    return found[0] if found else None


def _date(value: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# ------------------------------------------------------------ charsets

# Labels decoded as a superset, as browsers do (the WHATWG Encoding Standard): mail
# labelled GB2312 is very often GBK or GB18030 really, Big5 often has the HKSCS or
# Microsoft extensions, "ISO-8859-1" is Windows-1252 in practice.
CHARSETS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("gb2312", "gbk", "gb18030", "cp936", "x-gbk", "euc-cn", "csgb2312",
                     "gb_2312-80", "gb_2312", "chinese", "iso-ir-58", "windows-936",
                     "x-euc-cn"), ("gb18030",)),
    **dict.fromkeys(("big5", "big5-hkscs", "big5hkscs", "cn-big5", "x-x-big5", "csbig5",
                     "cp950", "x-big5", "windows-950"), ("big5hkscs", "cp950")),
    **dict.fromkeys(("us-ascii", "ascii", "iso-8859-1", "latin1", "latin-1", "l1",
                     "windows-1252", "cp1252", "iso_8859-1"), ("utf-8", "cp1252")),
    **dict.fromkeys(("ks_c_5601-1987", "euc-kr", "cp949", "ks_c_5601"), ("cp949",)),
    **dict.fromkeys(("shift_jis", "shift-jis", "sjis", "x-sjis", "windows-31j", "cp932"),
                    ("cp932",)),
    **dict.fromkeys(("utf-8", "utf8", "unicode-1-1-utf-8"), ("utf-8", "gb18030")),
}
# No charset at all: UTF-8 or, for this system's customers, most likely GBK.
UNLABELLED = ("utf-8", "gb18030")


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text from bytes in the named charset, never an exception.

    Tried strictly in turn: the label's superset, then UTF-8 (the usual mislabelling),
    then GB18030 for a UTF-8 label that is not UTF-8; an unknown label tries the same.
    When none fits, the first is used with replacement characters.
    """
    tries = _codecs_for(charset)
    for codec in tries:
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    return data.decode(tries[0], errors="replace")


def _codecs_for(charset: str | None) -> tuple[str, ...]:
    label = (charset or "").strip().strip('"').lower()
    if not label:
        return UNLABELLED
    if label in CHARSETS:
        return CHARSETS[label]
    try:
        codec = codecs.lookup(label).name
    except LookupError:
        return UNLABELLED
    if codec in ("utf-7", "utf-16", "utf-32", "utf-16-be", "utf-16-le"):
        return (codec,)
    return tuple(dict.fromkeys((codec, "utf-8")))


# Control characters other than newline and tab, and the bidirectional overrides that
# can make a line read differently on a handler's screen than it is.
UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = UNSAFE.sub("", text)
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


# ------------------------------------------------------------ the parts

MAX_DEPTH = 20  # nesting of multiparts and attached mails; deeper is not read


def _contents(msg: Message, max_bytes: int, nonce: str
              ) -> tuple[list[str], list[Attachment], list[TooLarge], list[str]]:
    """The body texts, the attachments, the parts over the limit and any problems."""
    leaves = list(_leaves(msg, 0))
    plain = [p for p in leaves if _is_body(p, "plain")]
    html = [p for p in leaves if _is_body(p, "html")]
    body = plain or html
    texts: list[str] = []
    attachments: list[Attachment] = []
    too_large: list[TooLarge] = []
    notes: list[str] = []
    for n, part in enumerate(leaves, start=1):
        is_text = part in body
        if not is_text and _is_body(part, "html", "plain"):
            continue  # the other alternative of the body
        content_type = _content_type(part)
        filename = _filename(part, content_type, n)
        omitted = _omitted_size(part, nonce)
        if omitted is not None:
            too_large.append(_too_large(filename, content_type, omitted, max_bytes))
            continue
        data, note = _payload(part)
        if note:
            notes.append(f"{filename}: {note}")
        if len(data) > max_bytes:
            too_large.append(_too_large(filename, content_type, len(data), max_bytes))
            continue
        if is_text:
            texts.append(_text_of(part, data))
        else:
            attachments.append(Attachment(filename, data, content_type))
    return texts, attachments, too_large, notes


def _leaves(part: Message, depth: int) -> Iterator[Message]:
    """The parts with content, in order. An attached mail (message/rfc822) is one part:
    a forwarded mail is a file the customer sends, not their words."""
    if depth > MAX_DEPTH:
        return
    if part.get_content_type() == "message/rfc822" and depth > 0:
        yield part
        return
    if part.is_multipart():
        payload = part.get_payload()
        for child in payload if isinstance(payload, list) else []:
            if isinstance(child, Message):
                yield from _leaves(child, depth + 1)
        return
    yield part


def _is_body(part: Message, *subtypes: str) -> bool:
    """An inline text part with no file name: the text of the mail, not a text file."""
    if part.get_content_maintype() != "text" or part.get_content_subtype() not in subtypes:
        return False
    if part.get_content_disposition() == "attachment":
        return False
    return not _safe(part.get_filename)


def _content_type(part: Message) -> str:
    return _safe(part.get_content_type) or "application/octet-stream"


def _filename(part: Message, content_type: str, n: int) -> str:
    name = _safe(part.get_filename)
    if isinstance(name, str) and name.strip():
        name = decode_words(_undo_surrogates(name)).strip()
        if name:
            return name
    if content_type == "message/rfc822":
        return f"message-{n}.eml"
    return f"part-{n}{mimetypes.guess_extension(content_type) or '.bin'}"


def _safe(getter: Callable[[], object]) -> str | None:
    """A parameter lookup that can raise on malformed headers: None then."""
    try:
        value = getter()
    except Exception:  # malformed parameters; the part is read without them
        return None
    return value if isinstance(value, str) else None


def _payload(part: Message) -> tuple[bytes, str | None]:
    """The decoded bytes of a part, and what was wrong with its encoding, if anything."""
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        inner = inner[0] if isinstance(inner, list) and inner else inner
        if isinstance(inner, Message):
            try:
                return inner.as_bytes(policy=policy.SMTP), None
            except Exception as err:  # a broken attached mail stays a broken file
                return b"", f"the attached mail cannot be written back ({err})"
        return b"", None
    before = len(part.defects)
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        data = b""
    damaged = [d for d in part.defects[before:]
               if isinstance(d, email_errors.InvalidBase64CharactersDefect
                             | email_errors.InvalidBase64LengthDefect)]
    return data, "damaged base64: some of it could not be decoded" if damaged else None


def _text_of(part: Message, data: bytes) -> str:
    charset = _safe(part.get_content_charset)
    if part.get_content_subtype() == "html":
        return html_to_text(decode_bytes(data, charset or _meta_charset(data)))
    text = decode_bytes(data, charset)
    if (_safe(lambda: part.get_param("format")) or "").lower() == "flowed":
        delsp = (_safe(lambda: part.get_param("delsp")) or "").lower() == "yes"
        text = unflow(text, delsp)
    return text


def _meta_charset(data: bytes) -> str | None:
    match = re.search(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", data[:4096],
                      re.IGNORECASE)
    return match.group(1).decode("ascii") if match else None


def unflow(text: str, delsp: bool = False) -> str:
    """format=flowed (RFC 3676) back to paragraphs: a line ending in a space goes on on
    the next line, at the same quote depth; a signature line "-- " stays itself."""
    out: list[str] = []
    carry: tuple[int, str] | None = None
    for raw_line in text.replace("\r\n", "\n").split("\n"):
        depth = len(raw_line) - len(raw_line.lstrip(">"))
        line = raw_line[depth:]
        line = line[1:] if line.startswith(" ") else line  # space-stuffing
        if carry is not None and carry[0] == depth:
            line = carry[1] + line
        elif carry is not None:
            out.append(">" * carry[0] + (" " if carry[0] else "") + carry[1].rstrip())
        carry = None
        if line.endswith(" ") and line != "-- ":
            carry = (depth, line[:-1] if delsp else line)
            continue
        out.append(">" * depth + (" " if depth else "") + line)
    if carry is not None:
        out.append(">" * carry[0] + (" " if carry[0] else "") + carry[1].rstrip())
    return "\n".join(out)


def _too_large(filename: str, content_type: str, size: int, limit: int) -> TooLarge:
    return TooLarge(filename, content_type, size,
                    f"{filename} ({content_type}) is about {_mb(size)}, over the "
                    f"{_mb(limit)} limit for one part: not read")


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


# ------------------------------------------------------------ parts over the limit

OMITTED = "X-Aftersales-Omitted"
BOUNDARY = re.compile(rb"""boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))""",
                      re.IGNORECASE)
HEADER_END = re.compile(rb"\r?\n\r?\n")
CTE = re.compile(rb"^content-transfer-encoding:[ \t]*([A-Za-z0-9-]+)",
                 re.IGNORECASE | re.MULTILINE)


def omit_large_bodies(raw: bytes, max_bytes: int, nonce: str) -> bytes:
    """`raw` with the body of every part bigger than `max_bytes` (decoded) cut out, and a
    header `X-Aftersales-Omitted: <nonce> <size>` in its place.

    Done on the bytes, before the parser: the parser keeps every line of a part in
    memory and then joins them, so a 30 MB attachment would cost several copies before
    it could be refused. Here nothing is copied but what is kept. The nonce is new for
    each parse, so a sender cannot forge the header to hide a part.
    """
    if len(raw) <= max_bytes:  # no part can be bigger than the whole
        return raw
    boundaries = {m.group(1) or m.group(2) for m in BOUNDARY.finditer(raw)}
    delimiters: list[tuple[int, int, bool]] = []  # (line start, line end, closing)
    for boundary in boundaries:
        pattern = re.compile(rb"^--" + re.escape(boundary) + rb"(--)?[ \t]*\r?$",
                             re.MULTILINE)
        for m in pattern.finditer(raw):
            end = m.end() + (1 if raw[m.end():m.end() + 1] == b"\n" else 0)
            delimiters.append((m.start(), end, bool(m.group(1))))
    delimiters.sort()
    # Segments: the top-level part (headers first), then what follows each delimiter.
    segments: list[tuple[int, int, bool]] = []  # (start, end, has headers)
    starts = [(0, True)] + [(end, not closing) for _, end, closing in delimiters]
    ends = [start for start, _, _ in delimiters] + [len(raw)]
    for (start, has_headers), end in zip(starts, ends, strict=True):
        segments.append((start, max(start, end), has_headers))
    pieces: list[bytes] = []
    position = 0
    for start, end, has_headers in segments:
        cut = _large_body(raw, start, end, has_headers, max_bytes)
        if cut is None:
            continue
        header_end, size = cut
        pieces.append(raw[position:header_end])
        if has_headers:
            pieces.append(b"%s: %s %d\r\n\r\n" % (OMITTED.encode(), nonce.encode(), size))
        position = end
    if not pieces:
        return raw
    pieces.append(raw[position:])
    return b"".join(pieces)


def _large_body(raw: bytes, start: int, end: int, has_headers: bool,
                max_bytes: int) -> tuple[int, int] | None:
    """(end of the last header line, decoded size) of a segment whose body is over the
    limit; None for one within it."""
    if end - start <= max_bytes:
        return None
    if not has_headers:  # an epilogue after a closing delimiter: dropped whole
        return start, end - start
    if raw.startswith((b"\r\n", b"\n"), start):  # a part without headers
        header_end = start
        body_start = start + (2 if raw.startswith(b"\r\n", start) else 1)
    else:
        separator = HEADER_END.search(raw, start, min(end, start + 64 * 1024))
        if separator is None:
            return None
        header_end = separator.start() + (2 if raw.startswith(b"\r\n", separator.start())
                                          else 1)
        body_start = separator.end()
    if start == 0 and _is_multipart(raw[:header_end]):
        return None  # the preamble of the whole mail: its parts are their own segments
    cte = CTE.search(raw[start:header_end])
    encoding = cte.group(1).lower() if cte else b"7bit"
    size = _decoded_size(raw, body_start, end, encoding)
    if size <= max_bytes:
        return None
    return header_end, size


def _is_multipart(headers: bytes) -> bool:
    return re.search(rb"^content-type:[ \t]*multipart/", headers,
                     re.IGNORECASE | re.MULTILINE) is not None


def _decoded_size(raw: bytes, start: int, end: int, encoding: bytes) -> int:
    """The decoded size of an encoded body, counted without decoding it."""
    length = end - start
    if encoding == b"base64":
        whitespace = sum(raw.count(c, start, end) for c in (b"\r", b"\n", b" ", b"\t"))
        tail = raw[max(start, end - 8):end].rstrip()
        padding = len(tail) - len(tail.rstrip(b"="))
        return (length - whitespace) * 3 // 4 - min(padding, 2)
    if encoding == b"quoted-printable":
        return max(0, length - 2 * raw.count(b"=", start, end))
    return length


def _omitted_size(part: Message, nonce: str) -> int | None:
    for value in part.get_all(OMITTED) or []:
        mark, _, size = str(value).strip().partition(" ")
        if mark == nonce and size.isdigit():
            return int(size)
    return None


# ------------------------------------------------------------ HTML


class _HtmlText(HTMLParser):
    """The text of an HTML mail: script and style dropped, a line per block and <br>,
    and blockquotes marked "> " like a plain-text quote, so quote stripping cuts them."""

    BLOCKS = frozenset({"p", "div", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4",
                        "h5", "h6", "pre", "hr", "section", "article", "header", "footer",
                        "dd", "dt", "dl", "address", "center", "form", "fieldset"})
    SKIPPED = frozenset({"script", "style", "head", "title", "template", "noscript"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._line: list[str] = []
        self._line_depth = 0
        self._quote = 0
        self._skip = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self._skip += 1
        elif tag == "br":
            self._break()
        elif tag == "blockquote":
            self._break()
            self._quote += 1
        elif tag in self.BLOCKS:
            self._break()
            if tag == "pre":
                self._pre += 1
            if tag == "li":
                self._add("- ")
        elif tag in ("td", "th"):
            self._add(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "hr"):
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED:
            self._skip = max(0, self._skip - 1)
        elif tag == "blockquote":
            self._break()
            self._quote = max(0, self._quote - 1)
        elif tag in self.BLOCKS:
            self._break()
            if tag == "pre":
                self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre:
            first, *rest = data.split("\n")
            self._add(first)
            for line in rest:
                self._break(force=True)
                self._add(line)
            return
        self._add(re.sub(r"\s+", " ", data))

    def _add(self, text: str) -> None:
        if not text:
            return
        if not self._line:
            self._line_depth = self._quote
            text = text.lstrip(" ") if not self._pre else text
            if not text:
                return
        self._line.append(text)

    def _break(self, force: bool = False) -> None:
        line = "".join(self._line).strip(" \xa0") if not self._pre else "".join(self._line)
        self._line = []
        if line or force or (self.lines and self.lines[-1] != ""):
            prefix = "> " * self._line_depth if line else ">" * self._line_depth
            self.lines.append(prefix + line if self._line_depth else line)
        self._line_depth = self._quote

    def text(self) -> str:
        self._break()
        text = "\n".join(line.replace("\xa0", " ").rstrip() for line in self.lines)
        return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def html_to_text(html: str) -> str:
    """Readable text from an HTML mail (stdlib parser; never raises)."""
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # the stdlib parser gave up on it: strip the tags the crude way
        return re.sub(r"<[^>]*>", " ", re.sub(r"(?is)<(script|style).*?</\1>", "", html))
    return parser.text()


# ------------------------------------------------------------ quote stripping

QUOTED = re.compile(r"^\s*>")
SIGNATURE = re.compile(r"^--\s?$")
SEPARATOR = re.compile(r"^\s*-{2,}\s*(original message|原始邮件|原邮件|回复的原邮件)\s*-{2,}\s*$",
                       re.IGNORECASE)
FORWARDED = re.compile(r"(forwarded message|转发的邮件|转发邮件|原始转发)", re.IGNORECASE)
HEADER_FROM = re.compile(r"^\s*\*?\s*(from|发件人)\s*\*?\s*[:：]", re.IGNORECASE)
HEADER_SENT = re.compile(r"^\s*\*?\s*(sent|date|发送时间|时间|日期)\s*\*?\s*[:：]",
                         re.IGNORECASE)
WROTE_END = re.compile(r"(\bwrote|写道)\s*[:：]\s*$", re.IGNORECASE)
ATTRIBUTION_START = re.compile(r"^\s*(on\s|在|于|\d{4}\s*[-/年])", re.IGNORECASE)
DECORATION = re.compile(r"^[\s_\-=*]*$")


def strip_quotes(text: str) -> str:
    """What the sender wrote, without the history their client quoted.

    Cut from the first mark of unquoted history: an attribution ("On <date>, <name>
    wrote:", also wrapped on two lines; "在 … 写道：", "于 … 写道:") that no quoted
    line follows, Outlook's "-----Original Message-----" or "-----原始邮件-----", a
    "From: … Sent: …" header block (not one in a forwarded mail the sender meant to
    show), and a signature after "-- ". Lines quoted with ">" are dropped wherever they
    are, with their attribution, so an answer written below or between quotes stays.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    keep: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if SIGNATURE.match(line) or SEPARATOR.match(line):
            break
        if HEADER_FROM.match(line) and _is_header_block(lines, i) \
                and not _after_forward_mark(lines, i):
            break
        span = _attribution(lines, i)
        if span:
            if not _quote_follows(lines, i + span):
                break
            i += span
            continue
        if not QUOTED.match(line):
            keep.append(line)
        i += 1
    while keep and DECORATION.match(keep[-1]):
        keep.pop()
    while keep and not keep[0].strip():
        keep.pop(0)
    return "\n".join(keep)


def _attribution(lines: list[str], i: int) -> int:
    """How many lines (1 or 2) an attribution starting at line i takes; 0: none."""
    line = lines[i].strip()
    if not line or len(line) > 300:
        return 0
    if WROTE_END.search(line) and (ATTRIBUTION_START.match(line) or "@" in line
                                   or "写道" in line):
        return 1
    if i + 1 < len(lines) and ATTRIBUTION_START.match(line):
        following = lines[i + 1].strip()
        if WROTE_END.search(following) and len(line) + len(following) <= 300:
            return 2
    return 0


def _quote_follows(lines: list[str], i: int) -> bool:
    while i < len(lines) and not lines[i].strip():
        i += 1
    return i < len(lines) and bool(QUOTED.match(lines[i]))


def _is_header_block(lines: list[str], i: int) -> bool:
    return any(HEADER_SENT.match(line) for line in lines[i + 1:i + 6])


def _after_forward_mark(lines: list[str], i: int) -> bool:
    before = [line for line in lines[max(0, i - 3):i] if line.strip()]
    return any(FORWARDED.search(line) for line in before)


# ------------------------------------------------------------ loop protection

DAEMONS = ("mailer-daemon", "mailerdaemon", "mail-daemon", "postmaster")
AUTOREPLY_HEADERS = ("x-autoreply", "x-autorespond", "x-autogenerated", "x-autoreply-from",
                     "x-mail-autoreply")
BULK = frozenset({"bulk", "junk", "list", "auto_reply"})
AUTOREPLY_SUBJECT = re.compile(
    r"^\s*(自动回复|自動回覆|automatic reply|auto[- ]?reply|autoreply|out of office|"
    r"abwesenheitsnotiz|réponse automatique)\s*[:：]", re.IGNORECASE)


def automatic_reason(headers: dict[str, list[str]], sender: str, content_type: str,
                     subject: str = "") -> str | None:
    """Why a mail was sent by a program and must never open or answer a case, or None.

    Answering a program's mail is how mail loops start: our notification, their
    out-of-office, our reply to it... (RFC 3834). `headers` as from `raw_headers`.
    """
    auto = _first(headers, "auto-submitted").split(";")[0].strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    for name in AUTOREPLY_HEADERS:
        if name in headers and _first(headers, name).strip().lower() != "no":
            return f"{name}: {_first(headers, name).strip()}"
    precedence = _first(headers, "precedence").strip().lower()
    if precedence in BULK:
        return f"Precedence: {precedence}"
    for name in ("list-id", "list-unsubscribe"):
        if name in headers:
            return f"{name}: a mailing list"
    local = sender.partition("@")[0]
    if any(local == d or local.startswith(d + "+") for d in DAEMONS):
        return f"sent by {sender}"
    if "return-path" in headers and _first(headers, "return-path").replace(" ", "") == "<>":
        return "Return-Path: <> (a bounce or an automatic reply)"
    if content_type == "multipart/report":
        return "multipart/report (a delivery or read report)"
    if AUTOREPLY_SUBJECT.match(subject):
        return "an automatic reply by its subject"
    return None


# ------------------------------------------------------------ for the router

CASE_TOKEN = re.compile(rf"\[({CASE_ID})\]")


def case_ids_in(subject: str) -> list[str]:
    """The case ids written in brackets in a subject (`[AS-7K3M9QXR2B]`: "AS-" and ten
    characters of the id alphabet), each once, in order."""
    return list(dict.fromkeys(CASE_TOKEN.findall(subject)))


def order_numbers_in(text: str, pattern: str | re.Pattern[str]) -> list[str]:
    """The order numbers in a text by the configured pattern
    (AFTERSALES_MAIL_ORDER_PATTERN), each once, in order: the first group if the
    pattern has one, else the whole match. Full-width letters and digits, as a
    Chinese input method types them, are read as ASCII (NFKC)."""
    compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
    normal = unicodedata.normalize("NFKC", text)
    found = [m.group(1) if compiled.groups else m.group(0) for m in compiled.finditer(normal)]
    return list(dict.fromkeys(f for f in found if f))


def referenced_ids(mail: InboundMail) -> list[str]:
    """The message ids this mail answers: In-Reply-To first, then References from the
    newest back, each once (the router looks for one of our notifications' ids)."""
    ids = ([mail.in_reply_to] if mail.in_reply_to else []) + list(reversed(mail.references))
    return list(dict.fromkeys(ids))


def dedupe_key(mail: InboundMail) -> str:
    """The key `inbound_mail.message_id` records the mail by: its Message-ID, or (none,
    or too long for the column) a hash of it or of the bytes."""
    if mail.message_id and len(mail.message_id) <= 255:
        return mail.message_id
    if mail.message_id:
        return "sha256:" + hashlib.sha256(mail.message_id.encode()).hexdigest()
    return "sha256:" + mail.sha256


# ------------------------------------------------------------ IMAP


class RetryLater(Exception):
    """A handler could not act on a mail now (Temporal, the database or the order
    system is down): the mail is read again, and this never counts as its failure."""


@dataclass
class PollReport:
    mailbox: str
    uidvalidity: int = 0
    last_uid: int = 0
    handled: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    reset: str | None = None  # why the cursor was started over, if it was
    more: bool = False  # the batch was full: more messages wait


@dataclass(frozen=True)
class ImapAddress:
    scheme: str
    host: str
    port: int
    user: str
    password: str
    mailbox: str

    @property
    def key(self) -> str:
        """The cursor's name for this mailbox: no password in it."""
        return f"{self.user}@{self.host}:{self.port}/{self.mailbox}"


def imap_address(url: str) -> ImapAddress:
    """`imaps://user:pass@host:993/INBOX` (or imap://) taken apart; user and password
    percent-decoded, so a password may hold any character as %XX."""
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname:
        raise ValueError(f"AFTERSALES_IMAP_URL={_masked(url)!r}: expected "
                         "imaps://user:password@host:port/MAILBOX or imap://...")
    port = parts.port or (993 if parts.scheme == "imaps" else 143)
    return ImapAddress(parts.scheme, parts.hostname, port, unquote(parts.username or ""),
                       unquote(parts.password or ""), unquote(parts.path.lstrip("/")) or "INBOX")


def _masked(url: str) -> str:
    return re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", url)


def imap_utf7(name: str) -> str:
    """A mailbox name in IMAP's modified UTF-7 (RFC 3501 5.1.3): "售后" and the like."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            encoded = base64.b64encode("".join(run).encode("utf-16-be")).decode("ascii")
            out.append("&" + encoded.rstrip("=").replace("/", ",") + "-")
            run.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


FETCHED = re.compile(rb"UID (\d+)")
SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


class ImapPoller:
    """Reads new messages from one IMAP mailbox and hands each to `handle(raw)`.

    The cursor (db/mail.py) is the mailbox's UIDVALIDITY and the last UID handed over.
    It moves only after `handle` returned, one message at a time, so a crash or a
    handler that raises reads that message again next time and loses none; the router
    dedupes by Message-ID (inbound_mail). The mailbox is opened read-only (EXAMINE) and
    bodies fetched with BODY.PEEK: nothing is marked, moved or deleted, so people may
    read the same mailbox in their own client.

    A new UIDVALIDITY (the mailbox was recreated or the server rebuilt its index) voids
    every UID: the cursor starts over after the mailbox's current highest UID, and that
    is logged, since mail that came in between the last poll and the change is not read.
    The first poll of a mailbox reads every message already in it.
    """

    def __init__(self, url: str, sessions: sessionmaker[Session], *, starttls: bool = True,
                 ca_file: str = "", max_message: int = 40 * 1024 * 1024, batch: int = 200,
                 max_failures: int = 5, timeout: float = 60.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.address = imap_address(url)
        self._sessions = sessions
        self._starttls = starttls
        self._ca_file = ca_file
        self._max_message = max_message
        self._batch = batch
        self._max_failures = max_failures
        self._timeout = timeout
        self._now = clock

    @classmethod
    def from_settings(cls, settings, sessions: sessionmaker[Session]) -> ImapPoller:
        return cls(settings.imap_url, sessions, starttls=settings.imap_starttls,
                   ca_file=settings.imap_ca_file, max_message=settings.mail_in_max_message)

    def poll(self, handle: Handle) -> PollReport:
        """Hand every message after the cursor to `handle`, oldest first, up to the
        batch size. An exception from `handle` stops the poll and propagates: the
        cursor stays before that message (after `max_failures` polls that fail on the
        same message, it is skipped with an error in the log)."""
        key = self.address.key
        report = PollReport(mailbox=key)
        conn = self._connect()
        try:
            uidvalidity, uidnext = self._examine(conn)
            report.uidvalidity = uidvalidity
            cursor = mail_store.read_cursor(self._sessions, key)
            if cursor is None:
                log.info("mailbox %s: first poll, reading what is in it", key)
                mail_store.reset_cursor(self._sessions, key, uidvalidity, 0, self._now())
                cursor = mail_store.Cursor(uidvalidity, 0)
                report.reset = "first poll"
            elif cursor.uidvalidity != uidvalidity:
                newest = self._newest_uid(conn, uidnext)
                log.warning("mailbox %s: UIDVALIDITY changed from %d to %d; starting over "
                            "after UID %d (messages already there are not read)", key,
                            cursor.uidvalidity, uidvalidity, newest)
                mail_store.reset_cursor(self._sessions, key, uidvalidity, newest, self._now())
                report.reset = f"UIDVALIDITY changed from {cursor.uidvalidity}"
                report.last_uid = newest
                return report
            report.last_uid = cursor.last_uid
            waiting = self._waiting(conn, cursor.last_uid)
            report.more = len(waiting) > self._batch
            for uid, size in waiting[:self._batch]:
                self._one(conn, uid, size, cursor, handle, report)
                report.last_uid = uid
        finally:
            self._logout(conn)
        if report.handled or report.skipped:
            log.info("mailbox %s: %d handed over, %d skipped, cursor at UID %d", key,
                     report.handled, len(report.skipped), report.last_uid)
        return report

    def _one(self, conn: imaplib.IMAP4, uid: int, size: int, cursor: mail_store.Cursor,
             handle: Handle, report: PollReport) -> None:
        key, now = self.address.key, self._now()
        skip = None
        if size > self._max_message:
            skip = f"{_mb(size)}, over the {_mb(self._max_message)} limit for a message"
        elif cursor.failed_uid == uid and cursor.failures >= self._max_failures:
            skip = f"the handler failed on it {cursor.failures} times"
        raw = None if skip else self._fetch(conn, uid)
        if raw is None:
            skip = skip or "gone from the mailbox before it was fetched"
            log.error("mailbox %s: UID %d skipped: %s", key, uid, skip)
            report.skipped.append((uid, skip))
            mail_store.advance(self._sessions, key, cursor.uidvalidity, uid, now)
            return
        try:
            handle(raw)
        except RetryLater as err:
            # Nothing wrong with the mail: a system it needs is down. Read again next
            # poll, however long that takes; never counted towards skipping it.
            log.warning("mailbox %s: UID %d waits: %s", key, uid, err)
            raise
        except Exception:
            failures = mail_store.count_failure(self._sessions, key, cursor.uidvalidity, uid,
                                                self._now())
            log.warning("mailbox %s: the handler failed on UID %d (%d time(s)); it is read "
                        "again next poll", key, uid, failures)
            raise
        mail_store.advance(self._sessions, key, cursor.uidvalidity, uid, self._now())
        report.handled += 1

    # -------------------------------------------------------- the protocol

    def _connect(self) -> imaplib.IMAP4:
        a = self.address
        context = ssl.create_default_context(cafile=self._ca_file or None)
        conn: imaplib.IMAP4
        if a.scheme == "imaps":
            conn = imaplib.IMAP4_SSL(a.host, a.port, ssl_context=context,
                                     timeout=self._timeout)
        else:
            conn = imaplib.IMAP4(a.host, a.port, timeout=self._timeout)
            if self._starttls:
                conn.starttls(ssl_context=context)
        try:
            conn.login(a.user, a.password)
        except Exception:
            self._logout(conn)
            raise
        return conn

    def _examine(self, conn: imaplib.IMAP4) -> tuple[int, int | None]:
        """Open the mailbox read-only; its UIDVALIDITY and UIDNEXT."""
        typ, data = conn.select(_quoted(imap_utf7(self.address.mailbox)), readonly=True)
        if typ != "OK":
            raise imaplib.IMAP4.error(f"mailbox {self.address.key}: cannot open it: {data!r}")
        validity = _number(conn.response("UIDVALIDITY")[1])
        if validity is None:
            raise imaplib.IMAP4.error(f"mailbox {self.address.key}: no UIDVALIDITY")
        return validity, _number(conn.response("UIDNEXT")[1])

    def _newest_uid(self, conn: imaplib.IMAP4, uidnext: int | None) -> int:
        typ, data = conn.uid("SEARCH", "ALL")
        uids = [int(n) for n in (data[0] or b"").split()] if typ == "OK" and data else []
        if uids:
            return max(uids)
        return max(0, (uidnext or 1) - 1)

    def _waiting(self, conn: imaplib.IMAP4, last_uid: int) -> list[tuple[int, int]]:
        """(UID, size) of the messages after `last_uid`, oldest first. `n:*` also
        answers the newest message when n is past it, hence the filter."""
        typ, data = conn.uid("FETCH", f"{last_uid + 1}:*", "(UID RFC822.SIZE)")
        if typ != "OK":
            raise imaplib.IMAP4.error(f"mailbox {self.address.key}: FETCH failed: {data!r}")
        found: dict[int, int] = {}
        for item in data:
            line = item[0] if isinstance(item, tuple) else item
            if not isinstance(line, bytes):
                continue
            uid, size = FETCHED.search(line), SIZE.search(line)
            if uid and int(uid.group(1)) > last_uid:
                found[int(uid.group(1))] = int(size.group(1)) if size else 0
        return sorted(found.items())

    def _fetch(self, conn: imaplib.IMAP4, uid: int) -> bytes | None:
        typ, data = conn.uid("FETCH", str(uid), "(BODY.PEEK[])")
        if typ != "OK":
            raise imaplib.IMAP4.error(f"mailbox {self.address.key}: FETCH {uid}: {data!r}")
        for item in data:
            if isinstance(item, tuple) and len(item) > 1 and isinstance(item[1], bytes):
                return item[1]
        return None

    @staticmethod
    def _logout(conn: imaplib.IMAP4) -> None:
        try:
            conn.logout()
        except (OSError, imaplib.IMAP4.error) as err:
            log.debug("IMAP logout: %s", err)


def _number(values: list) -> int | None:
    for value in values or []:
        text = value.decode() if isinstance(value, bytes) else str(value)
        if text.strip().isdigit():
            return int(text.strip())
    return None


# ------------------------------------------------------------ SMTP (development)


class _ReceiverHandler:
    """aiosmtpd handler: the message's bytes, exactly as received, to `handle`, in a
    thread so a slow handler does not stop the server's event loop."""

    def __init__(self, handle: Handle) -> None:
        self._handle = handle

    async def handle_DATA(self, server, session, envelope) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._handle, raw)
        except Exception:
            log.exception("inbound mail from %s: the handler failed", envelope.mail_from)
            # Temporary: the sending server keeps it and tries again.
            return "451 4.3.0 The message could not be taken now; try again later"
        return "250 2.0.0 Message accepted"


class SmtpReceiver:
    """Inbound mail over SMTP for development: `aftersales dev` starts one and mail sent
    to it goes to the same `handle(raw)` as the IMAP poller's. A message over
    `max_bytes` is refused with 552 (at MAIL FROM when the client declares its SIZE,
    else at the end of DATA). No authentication, no TLS: bind it to 127.0.0.1 only."""

    def __init__(self, handle: Handle, host: str = "127.0.0.1", port: int = 0,
                 max_bytes: int = 40 * 1024 * 1024) -> None:
        from aiosmtpd.controller import Controller

        from aftersales.devstack import free_port

        self.host = host
        self.port = port or free_port(host)
        self._controller = Controller(_ReceiverHandler(handle), hostname=host,
                                      port=self.port, data_size_limit=max_bytes)

    def start(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def describe(self) -> str:
        """The line `aftersales dev` prints."""
        return f"mail in on {self.host}:{self.port}"

    def __enter__(self) -> SmtpReceiver:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()


def start_receiver(settings, handle: Handle) -> SmtpReceiver:
    """A running receiver on the settings' AFTERSALES_MAIL_IN_HOST and _PORT."""
    return SmtpReceiver(handle, settings.mail_in_host, settings.mail_in_port,
                        settings.mail_in_max_message).start()


def _print_mail(max_bytes: int) -> Handle:
    def handle(raw: bytes) -> None:
        mail = parse(raw, max_bytes=max_bytes)
        print(json.dumps({
            "message_id": mail.message_id, "sender": mail.sender, "subject": mail.subject,
            "text": mail.text, "automatic": mail.automatic, "problem": mail.problem,
            "attachments": [(a.filename, a.content_type, len(a.data))
                            for a in mail.attachments],
            "too_large": [t.reason for t in mail.too_large]}, ensure_ascii=False), flush=True)
    return handle


def main(argv: list[str] | None = None) -> int:
    """A receiver that prints what it parses: for trying mail clients by hand."""
    from aftersales.settings import Settings

    settings = Settings.from_env()
    parser = argparse.ArgumentParser(prog="python -m aftersales.mailin")
    parser.add_argument("--host", default=settings.mail_in_host)
    parser.add_argument("--port", type=int, default=settings.mail_in_port or 2525)
    args = parser.parse_args(argv)
    receiver = SmtpReceiver(_print_mail(settings.mail_in_max_part), args.host, args.port,
                            settings.mail_in_max_message).start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(receiver.describe(), flush=True)
    stop.wait()
    receiver.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
