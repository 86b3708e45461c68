"""Settings from `AFTERSALES_*` environment variables; every process reads the same."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from workflows.case.vocabulary import LOCALES
from workflows.sla import parse_duration

MB = 1024 * 1024
# The web app's secret key signs session cookies: at least 256 bits (docs/security.md).
MIN_SECRET_KEY_BYTES = 32


def _provider(default: str) -> str:
    """A message provider's setting: text read from AFTERSALES_<NAME> (PROVIDER_SETTINGS)."""
    return field(default=default, metadata={"provider": True})


@dataclass(frozen=True)
class Settings:
    data_dir: str = "./var"
    database_url: str = ""
    temporal_address: str = "127.0.0.1:7233"
    # True when AFTERSALES_TEMPORAL_ADDRESS was given: `aftersales dev` then uses that
    # server instead of starting its own.
    temporal_address_set: bool = False
    temporal_namespace: str = "default"
    # TLS / mTLS to a Temporal cluster or Temporal Cloud: PEM file paths, or an API key.
    temporal_tls: bool = False
    temporal_tls_ca: str = ""
    temporal_tls_cert: str = ""
    temporal_tls_key: str = ""
    temporal_api_key: str = ""
    # How long the web app waits for a case to answer an action (AFTERSALES_UPDATE_TIMEOUT,
    # seconds); past it the answer is a 503 whose outcome is unknown (docs/api.md).
    update_timeout: float = 60.0
    task_queue: str = "aftersales"
    # Case workflows a worker keeps in memory (AFTERSALES_WORKER_CACHE), about 370 KiB
    # each; beyond it a woken case is replayed from its history first
    # (docs/benchmarks.md). 2,000 bounds a worker near 0.75 GiB.
    worker_cache: int = 2000
    sla_file: str | None = None
    # The routing file (docs/teams.md); None: the shipped aftersales/routing.toml.
    routing_file: str | None = None
    secret_key: str = ""
    order_system_url: str = "http://127.0.0.1:5101"
    inventory_system_url: str = "http://127.0.0.1:5102"
    courier_system_url: str = "http://127.0.0.1:5103"
    # Shared with the courier system: its webhooks are signed with it (HMAC-SHA256).
    courier_webhook_secret: str = ""
    # `kid:base64key,...`: when set, Temporal payloads are encrypted (aftersales/codec.py).
    payload_keys: str = ""
    # Closed cases are anonymised this many seconds after closing (AFTERSALES_RETENTION,
    # a duration like "365d").
    retention: int = 365 * 86400
    public_url: str = "http://127.0.0.1:5000"
    # Email by SMTP (activities/senders.py). No host: emails are only logged.
    smtp_host: str = ""
    smtp_port: int = 0  # 0: 25, 587 with starttls, 465 with ssl
    smtp_tls: str = "none"  # none | starttls | ssl
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "Aftersales <aftersales@localhost>"
    # The SMS / WeChat sender (docs/notifications.md#providers): log (nothing is sent),
    # aliyun, tencent, wechat, webhook, or a class of your own as "module:Class".
    message_sender: str = "log"
    # Language of a customer's or user's notifications when none is known: zh-CN or en.
    default_locale: str = "zh-CN"
    # Development only: the file the local SMTP sink of `aftersales dev` writes, shown at
    # /dev/mail. Empty (always, in production): no /dev/mail.
    dev_mailbox: str = ""
    # Set only by `aftersales dev` for its children: a development stack on one machine,
    # where running without payload keys is expected and not warned about.
    dev_stack: bool = False
    # The triage model file (docs/triage.md); "" is the one the project ships.
    triage_model: str = ""
    # Attachments (docs/intake.md): where the bytes live, `file` (under data_dir/blobs)
    # or `s3` (any S3-compatible store; credentials the boto3 way), and the limits.
    blob_store: str = "file"
    s3_endpoint: str = ""
    s3_bucket: str = "aftersales"
    max_image: int = 10 * MB  # an image or a PDF
    max_video: int = 50 * MB
    max_files: int = 20  # a case
    # The largest request body besides uploads (JSON, forms, webhooks); an upload may
    # carry its files of the sizes above plus the multipart around them
    # (web/body_limit.py). Larger bodies are answered 413 before they are read.
    max_body: int = MB
    # How many proxies (load balancers) stand in front of the web processes: the
    # client's address is taken from X-Forwarded-For that many hops back, and the
    # scheme from X-Forwarded-Proto. 0 (no proxy): both headers are ignored, so a
    # client cannot choose the address the rate limits count it under.
    trusted_proxies: int = 0
    # The public request page (/request) asks for a one-time code sent to the order's
    # phone or email before showing the order (AFTERSALES_REQUEST_CODES=1).
    request_codes: bool = False
    # Events out (docs/conversation.md): every timeline event POSTed to these endpoints,
    # signed with the secret like the courier's webhooks.
    event_webhook_urls: tuple[str, ...] = ()
    event_webhook_secret: str = ""
    # --- Message providers (activities/providers.py, docs/notifications.md#providers) ---
    # Read only by the provider AFTERSALES_MESSAGE_SENDER names (WeChat: whenever its app
    # id is set); a provider missing one it needs refuses to start, naming it. The
    # endpoints are overridable so tests and `aftersales dev` can point at local fakes.
    # Our template name -> the provider's registered template and its parameters (TOML).
    sms_templates: str = _provider("")
    wechat_templates: str = _provider("")
    # Alibaba Cloud SMS (dysmsapi, signature version 1.0).
    aliyun_access_key_id: str = _provider("")
    aliyun_access_key_secret: str = _provider("")
    aliyun_sign_name: str = _provider("")
    aliyun_endpoint: str = _provider("https://dysmsapi.aliyuncs.com")
    # Tencent Cloud SMS (API 3.0, TC3-HMAC-SHA256).
    tencent_secret_id: str = _provider("")
    tencent_secret_key: str = _provider("")
    tencent_sdk_app_id: str = _provider("")
    tencent_sign_name: str = _provider("")
    tencent_region: str = _provider("ap-guangzhou")
    tencent_endpoint: str = _provider("https://sms.tencentcloudapi.com")
    # WeChat Official Account subscription notifications, to customers with an openid.
    wechat_app_id: str = _provider("")
    wechat_app_secret: str = _provider("")
    wechat_endpoint: str = _provider("https://api.weixin.qq.com")
    # Any other gateway: a signed JSON POST (X-Aftersales-Signature, HMAC-SHA256).
    sms_webhook_url: str = _provider("")
    sms_webhook_secret: str = _provider("")
    # Inbound mail (aftersales/mailin.py, docs/mail-in.md). The mailbox the scheduler
    # polls, `imaps://user:pass@host:993/INBOX` (TLS from the start) or `imap://...`
    # (STARTTLS unless AFTERSALES_IMAP_STARTTLS=0, for a server on 127.0.0.1 only);
    # empty: no polling. AFTERSALES_IMAP_CA_FILE trusts a private CA besides the system's.
    # AFTERSALES_IMAP_INTERVAL: how often it is polled (at least a minute: the lease is
    # per minute). The development receiver `aftersales dev` starts listens on
    # AFTERSALES_MAIL_IN_HOST:AFTERSALES_MAIL_IN_PORT (0: a free port). A message over
    # AFTERSALES_MAIL_IN_MAX_MESSAGE is refused (552 by SMTP, skipped on IMAP); a part
    # over AFTERSALES_MAIL_IN_MAX_PART is not decoded. AFTERSALES_MAIL_ORDER_PATTERN: a
    # regular expression for the order numbers customers write (the simulator's SO-10001).
    imap_url: str = ""
    imap_starttls: bool = True
    imap_ca_file: str = ""
    imap_interval: int = 60
    # Staff SLA warnings wait this long at most, batched into one digest per person
    # (docs/notifications.md, "Quiet warnings"); seconds.
    digest_interval: int = 1800
    mail_in_host: str = "127.0.0.1"
    mail_in_port: int = 0
    mail_in_max_message: int = 40 * MB
    mail_in_max_part: int = 25 * MB
    mail_order_pattern: str = r"(?<![A-Za-z0-9-])SO-\d{5,}(?![0-9])"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        get = env.get
        data_dir = get("AFTERSALES_DATA_DIR", "./var")
        database_url = get("AFTERSALES_DATABASE_URL") or default_database_url(data_dir)
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            temporal_address=get("AFTERSALES_TEMPORAL_ADDRESS") or "127.0.0.1:7233",
            temporal_address_set=bool(get("AFTERSALES_TEMPORAL_ADDRESS")),
            temporal_namespace=get("AFTERSALES_TEMPORAL_NAMESPACE", "default"),
            temporal_tls=(get("AFTERSALES_TEMPORAL_TLS", "").lower() in ("1", "true", "yes")
                          or bool(get("AFTERSALES_TEMPORAL_TLS_CERT"))),
            temporal_tls_ca=get("AFTERSALES_TEMPORAL_TLS_CA", ""),
            temporal_tls_cert=get("AFTERSALES_TEMPORAL_TLS_CERT", ""),
            temporal_tls_key=get("AFTERSALES_TEMPORAL_TLS_KEY", ""),
            temporal_api_key=get("AFTERSALES_TEMPORAL_API_KEY", ""),
            update_timeout=float(get("AFTERSALES_UPDATE_TIMEOUT") or 60),
            task_queue=get("AFTERSALES_TASK_QUEUE", "aftersales"),
            worker_cache=int(get("AFTERSALES_WORKER_CACHE") or 2000),
            sla_file=get("AFTERSALES_SLA_FILE") or None,
            routing_file=get("AFTERSALES_ROUTING_FILE") or None,
            secret_key=get("AFTERSALES_SECRET_KEY", ""),
            order_system_url=get("AFTERSALES_ORDER_SYSTEM_URL", "http://127.0.0.1:5101"),
            inventory_system_url=get("AFTERSALES_INVENTORY_SYSTEM_URL",
                                     "http://127.0.0.1:5102"),
            courier_system_url=get("AFTERSALES_COURIER_SYSTEM_URL", "http://127.0.0.1:5103"),
            courier_webhook_secret=get("AFTERSALES_COURIER_WEBHOOK_SECRET", ""),
            payload_keys=get("AFTERSALES_PAYLOAD_KEYS", ""),
            retention=parse_duration(get("AFTERSALES_RETENTION") or "365d"),
            public_url=(get("AFTERSALES_PUBLIC_URL") or "http://127.0.0.1:5000").rstrip("/"),
            smtp_host=get("AFTERSALES_SMTP_HOST", ""),
            smtp_port=int(get("AFTERSALES_SMTP_PORT") or 0),
            smtp_tls=_one_of("AFTERSALES_SMTP_TLS", get("AFTERSALES_SMTP_TLS") or "none",
                             SMTP_TLS_MODES),
            smtp_user=get("AFTERSALES_SMTP_USER", ""),
            smtp_password=get("AFTERSALES_SMTP_PASSWORD", ""),
            smtp_from=get("AFTERSALES_SMTP_FROM") or "Aftersales <aftersales@localhost>",
            message_sender=get("AFTERSALES_MESSAGE_SENDER") or "log",
            default_locale=_one_of("AFTERSALES_DEFAULT_LOCALE",
                                   get("AFTERSALES_DEFAULT_LOCALE") or "zh-CN", LOCALES),
            dev_mailbox=get("AFTERSALES_DEV_MAILBOX", ""),
            dev_stack=get("AFTERSALES_DEV_STACK", "") == "1",
            triage_model=get("AFTERSALES_TRIAGE_MODEL", ""),
            blob_store=_one_of("AFTERSALES_BLOB_STORE", get("AFTERSALES_BLOB_STORE") or "file",
                               BLOB_STORES),
            s3_endpoint=get("AFTERSALES_S3_ENDPOINT", ""),
            s3_bucket=get("AFTERSALES_S3_BUCKET") or "aftersales",
            max_image=parse_size("AFTERSALES_MAX_IMAGE", get("AFTERSALES_MAX_IMAGE") or "10MB"),
            max_video=parse_size("AFTERSALES_MAX_VIDEO", get("AFTERSALES_MAX_VIDEO") or "50MB"),
            max_files=int(get("AFTERSALES_MAX_FILES") or 20),
            max_body=parse_size("AFTERSALES_MAX_BODY", get("AFTERSALES_MAX_BODY") or "1MB"),
            trusted_proxies=_count("AFTERSALES_TRUSTED_PROXIES",
                                   get("AFTERSALES_TRUSTED_PROXIES") or "0"),
            request_codes=get("AFTERSALES_REQUEST_CODES", "").lower() in ("1", "true", "yes"),
            event_webhook_urls=_urls("AFTERSALES_EVENT_WEBHOOK_URL",
                                     get("AFTERSALES_EVENT_WEBHOOK_URL", "")),
            event_webhook_secret=_required_with(
                "AFTERSALES_EVENT_WEBHOOK_SECRET", get("AFTERSALES_EVENT_WEBHOOK_SECRET", ""),
                "AFTERSALES_EVENT_WEBHOOK_URL", get("AFTERSALES_EVENT_WEBHOOK_URL", "")),
            **{name: get(f"AFTERSALES_{name.upper()}") or default
               for name, default in PROVIDER_SETTINGS.items()},
            imap_url=get("AFTERSALES_IMAP_URL", ""),
            imap_starttls=get("AFTERSALES_IMAP_STARTTLS", "1").lower() not in ("0", "false",
                                                                              "no"),
            imap_ca_file=get("AFTERSALES_IMAP_CA_FILE", ""),
            imap_interval=max(60, parse_duration(get("AFTERSALES_IMAP_INTERVAL") or "60s")),
            digest_interval=max(60, parse_duration(get("AFTERSALES_DIGEST_INTERVAL") or "30m")),
            mail_in_host=get("AFTERSALES_MAIL_IN_HOST") or "127.0.0.1",
            mail_in_port=int(get("AFTERSALES_MAIL_IN_PORT") or 0),
            mail_in_max_message=parse_size("AFTERSALES_MAIL_IN_MAX_MESSAGE",
                                           get("AFTERSALES_MAIL_IN_MAX_MESSAGE") or "40MB"),
            mail_in_max_part=parse_size("AFTERSALES_MAIL_IN_MAX_PART",
                                        get("AFTERSALES_MAIL_IN_MAX_PART") or "25MB"),
            mail_order_pattern=_pattern("AFTERSALES_MAIL_ORDER_PATTERN",
                                        get("AFTERSALES_MAIL_ORDER_PATTERN")
                                        or cls.mail_order_pattern),
        )

    def check_secret_key(self) -> None:
        """Refuse a missing or short secret key: it signs the staff's session cookies,
        so a guessable one lets anyone sign in as anyone (ValueError with the fix)."""
        if len(self.secret_key.encode()) < MIN_SECRET_KEY_BYTES:
            state = "is not set" if not self.secret_key else (
                f"has {len(self.secret_key.encode())} bytes")
            raise ValueError(
                f"AFTERSALES_SECRET_KEY {state}: the web app needs a random key of at least "
                f"{MIN_SECRET_KEY_BYTES} bytes to sign sign-in sessions. Make one with "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(32))' and set it "
                "in every web process's environment (docs/operations.md).")

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """The environment that gives a child process these settings."""
        env = {
            "AFTERSALES_DATA_DIR": self.data_dir,
            "AFTERSALES_DATABASE_URL": self.database_url,
            "AFTERSALES_TEMPORAL_ADDRESS": self.temporal_address,
            "AFTERSALES_TEMPORAL_NAMESPACE": self.temporal_namespace,
            "AFTERSALES_TEMPORAL_TLS": "true" if self.temporal_tls else "",
            "AFTERSALES_TEMPORAL_TLS_CA": self.temporal_tls_ca,
            "AFTERSALES_TEMPORAL_TLS_CERT": self.temporal_tls_cert,
            "AFTERSALES_TEMPORAL_TLS_KEY": self.temporal_tls_key,
            "AFTERSALES_TEMPORAL_API_KEY": self.temporal_api_key,
            "AFTERSALES_UPDATE_TIMEOUT": f"{self.update_timeout:g}",
            "AFTERSALES_TASK_QUEUE": self.task_queue,
            "AFTERSALES_WORKER_CACHE": str(self.worker_cache),
            "AFTERSALES_SECRET_KEY": self.secret_key,
            "AFTERSALES_ORDER_SYSTEM_URL": self.order_system_url,
            "AFTERSALES_INVENTORY_SYSTEM_URL": self.inventory_system_url,
            "AFTERSALES_COURIER_SYSTEM_URL": self.courier_system_url,
            "AFTERSALES_COURIER_WEBHOOK_SECRET": self.courier_webhook_secret,
            "AFTERSALES_PAYLOAD_KEYS": self.payload_keys,
            "AFTERSALES_RETENTION": f"{self.retention}s",
            "AFTERSALES_PUBLIC_URL": self.public_url,
            "AFTERSALES_SMTP_HOST": self.smtp_host,
            "AFTERSALES_SMTP_PORT": str(self.smtp_port or ""),
            "AFTERSALES_SMTP_TLS": self.smtp_tls,
            "AFTERSALES_SMTP_USER": self.smtp_user,
            "AFTERSALES_SMTP_PASSWORD": self.smtp_password,
            "AFTERSALES_SMTP_FROM": self.smtp_from,
            "AFTERSALES_MESSAGE_SENDER": self.message_sender,
            "AFTERSALES_DEFAULT_LOCALE": self.default_locale,
            "AFTERSALES_DEV_MAILBOX": self.dev_mailbox,
            "AFTERSALES_DEV_STACK": "1" if self.dev_stack else "",
            "AFTERSALES_TRIAGE_MODEL": self.triage_model,
            "AFTERSALES_BLOB_STORE": self.blob_store,
            "AFTERSALES_S3_ENDPOINT": self.s3_endpoint,
            "AFTERSALES_S3_BUCKET": self.s3_bucket,
            "AFTERSALES_MAX_IMAGE": str(self.max_image),
            "AFTERSALES_MAX_VIDEO": str(self.max_video),
            "AFTERSALES_MAX_FILES": str(self.max_files),
            "AFTERSALES_MAX_BODY": str(self.max_body),
            "AFTERSALES_TRUSTED_PROXIES": str(self.trusted_proxies),
            "AFTERSALES_REQUEST_CODES": "1" if self.request_codes else "",
            "AFTERSALES_EVENT_WEBHOOK_URL": ",".join(self.event_webhook_urls),
            "AFTERSALES_EVENT_WEBHOOK_SECRET": self.event_webhook_secret,
            **{f"AFTERSALES_{name.upper()}": getattr(self, name) for name in PROVIDER_SETTINGS},
            "AFTERSALES_IMAP_URL": self.imap_url,
            "AFTERSALES_IMAP_STARTTLS": "1" if self.imap_starttls else "0",
            "AFTERSALES_IMAP_CA_FILE": self.imap_ca_file,
            "AFTERSALES_IMAP_INTERVAL": f"{self.imap_interval}s",
            "AFTERSALES_DIGEST_INTERVAL": f"{self.digest_interval}s",
            "AFTERSALES_MAIL_IN_HOST": self.mail_in_host,
            "AFTERSALES_MAIL_IN_PORT": str(self.mail_in_port or ""),
            "AFTERSALES_MAIL_IN_MAX_MESSAGE": str(self.mail_in_max_message),
            "AFTERSALES_MAIL_IN_MAX_PART": str(self.mail_in_max_part),
            "AFTERSALES_MAIL_ORDER_PATTERN": self.mail_order_pattern,
        }
        if self.sla_file:
            env["AFTERSALES_SLA_FILE"] = self.sla_file
        if self.routing_file:
            env["AFTERSALES_ROUTING_FILE"] = self.routing_file
        return env


SMTP_TLS_MODES = ("none", "starttls", "ssl")
# The message providers' settings (marked `_provider`), each read from
# AFTERSALES_<NAME> as text with the field's default: one list, so reading and exporting
# them cannot drift apart.
PROVIDER_SETTINGS: dict[str, str] = {
    f.name: str(f.default) for f in fields(Settings) if f.metadata.get("provider")}
BLOB_STORES = ("file", "s3")
SIZE_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": MB, "GB": 1024 * MB}


def parse_size(name: str, text: str) -> int:
    """A size in bytes from "10MB", "512KB" or "1048576"."""
    value = text.strip().upper()
    number = value.rstrip("KMGB")
    unit = value[len(number):]
    if not number.isdigit() or unit not in SIZE_UNITS or int(number) <= 0:
        raise ValueError(f"{name}={text!r}: expected a size like 10MB, 512KB or 1048576")
    return int(number) * SIZE_UNITS[unit]


def _count(name: str, text: str) -> int:
    """A whole number of at least 0."""
    if not text.strip().isdigit():
        raise ValueError(f"{name}={text!r}: expected a whole number, 0 or more")
    return int(text)


def _urls(name: str, text: str) -> tuple[str, ...]:
    """Comma-separated http(s) URLs, each once, in the order given."""
    urls = tuple(dict.fromkeys(u.strip() for u in text.split(",") if u.strip()))
    for url in urls:
        if not url.startswith(("http://", "https://")) or len(url) > 500:
            raise ValueError(f"{name}: {url!r} is not an http(s) URL of at most 500 "
                             "characters")
    return urls


def _required_with(name: str, value: str, other: str, other_value: str) -> str:
    if other_value.strip() and not value:
        raise ValueError(f"{name} is required when {other} is set: receivers check the "
                         "signature made with it")
    return value
def _pattern(name: str, text: str) -> str:
    """A regular expression setting, checked at start rather than at the first mail."""
    try:
        re.compile(text)
    except re.error as err:
        raise ValueError(f"{name}={text!r}: not a regular expression ({err})") from err
    return text


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value


def default_database_url(data_dir: str) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'aftersales.db'}"
