"""A local SMTP sink for development: `aftersales dev` runs it and points the worker's
SMTP settings at it, so notifications land in a file (one JSON object a line) that the
web app shows at /dev/mail when AFTERSALES_DEV_MAILBOX names it. Never for production.

    python -m aftersales.mailsink --port 8025 --mailbox var/mail/mailbox.jsonl
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller


class MailboxHandler:
    """aiosmtpd handler: every message accepted is appended to the mailbox file."""

    def __init__(self, mailbox: Path) -> None:
        self.mailbox = mailbox
        self._lock = threading.Lock()
        mailbox.parent.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope) -> str:
        mail = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        part = mail.get_body(preferencelist=("plain",))
        entry = {
            "received_at": datetime.now(UTC).isoformat(),
            "mail_from": envelope.mail_from,
            "rcpt_to": list(envelope.rcpt_tos),
            "to": str(mail.get("To", "")),
            "subject": str(mail.get("Subject", "")),
            "date": str(mail.get("Date", "")),
            "message_id": str(mail.get("Message-ID", "")),
            "language": str(mail.get("Content-Language", "")),
            "body": part.get_content() if part is not None else "",
        }
        with self._lock, self.mailbox.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return "250 Message accepted for delivery"


def read_mailbox(path: str | Path) -> list[dict]:
    """The messages in a sink's mailbox file, oldest first."""
    file = Path(path)
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def start_sink(mailbox: Path, host: str = "127.0.0.1", port: int = 0) -> Controller:
    """A running sink on `host:port` (0: a free port; see `controller.port`)."""
    from aftersales.devstack import free_port

    controller = Controller(MailboxHandler(mailbox), hostname=host,
                            port=port or free_port(host))
    controller.start()
    return controller


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aftersales.mailsink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mailbox", required=True)
    args = parser.parse_args(argv)
    controller = start_sink(Path(args.mailbox), args.host, args.port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"mail sink on {args.host}:{args.port}, mailbox {args.mailbox}", flush=True)
    stop.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
