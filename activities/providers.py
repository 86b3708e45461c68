"""Real message providers behind `MessageSender`: Alibaba Cloud SMS, Tencent Cloud SMS,
WeChat Official Account subscription notifications, and a signed webhook for any other
gateway. Chosen by `AFTERSALES_MESSAGE_SENDER` (docs/notifications.md#providers).

Each speaks its provider's documented HTTP API through httpx (already a dependency)
instead of the provider's SDK: for one signed POST the SDKs bring a stack of their own
(Alibaba's Tea runtime and vendored libraries, Tencent's common package), and a request
built here can be read in full and checked against the local fakes in
simulators/providers.py, which recompute each signature on their own.

A provider's answer is one of three:
- accepted: `send` returns;
- throttled: retried inside `send` a few times with exponential backoff (honouring
  Retry-After), then an ordinary exception, so the outbox retries the row later;
- refused for good for this message or recipient (an invalid number, a user who
  unsubscribed): `PermanentDeliveryError` carrying the provider's code.
Anything else (a 5xx, a timeout, a wrong key, an empty balance) is an ordinary exception,
retried by the outbox: once the configuration or the account is mended, a retry sends.

SMS and WeChat send templates registered with the provider, not our rendered text: a
TOML file maps each of our templates to the provider's template and fills its
parameters from `message.params` (`load_templates`, checked when the sender is built).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from activities.messages import template_names, template_variables
from activities.senders import OutgoingMessage, PermanentDeliveryError, Settings, mask
from activities.signing import webhook_signature
from workflows.case.vocabulary import LOCALES

log = logging.getLogger("aftersales.notifications")

T = TypeVar("T")
TIMEOUT = 10.0  # seconds per request: a send is one of many inside a 2-minute activity


class ProviderSettings(Settings, Protocol):
    """What the providers read of the settings (aftersales/settings.py, one block)."""

    @property
    def sms_templates(self) -> str: ...
    @property
    def wechat_templates(self) -> str: ...
    @property
    def aliyun_access_key_id(self) -> str: ...
    @property
    def aliyun_access_key_secret(self) -> str: ...
    @property
    def aliyun_sign_name(self) -> str: ...
    @property
    def aliyun_endpoint(self) -> str: ...
    @property
    def tencent_secret_id(self) -> str: ...
    @property
    def tencent_secret_key(self) -> str: ...
    @property
    def tencent_sdk_app_id(self) -> str: ...
    @property
    def tencent_sign_name(self) -> str: ...
    @property
    def tencent_region(self) -> str: ...
    @property
    def tencent_endpoint(self) -> str: ...
    @property
    def wechat_app_secret(self) -> str: ...
    @property
    def wechat_endpoint(self) -> str: ...
    @property
    def sms_webhook_url(self) -> str: ...
    @property
    def sms_webhook_secret(self) -> str: ...


def require(settings: object, who: str, *names: str) -> None:
    """Refuse to start without the settings `who` needs, naming their variables (each
    field is read from AFTERSALES_<FIELD>, aftersales/settings.py)."""
    missing = [f"AFTERSALES_{name.upper()}" for name in names if not getattr(settings, name)]
    if missing:
        raise ValueError(f"{who} needs {', '.join(missing)}")


# --- Failures ------------------------------------------------------------------------


class ProviderError(RuntimeError):
    """The provider did not take the message this time (a 5xx, a refused key, a spent
    balance, throttling that outlasted the backoff): an ordinary failure, retried."""


class Throttled(Exception):
    """The provider asked us to slow down, after `retry_after` seconds if it said."""

    def __init__(self, code: str, retry_after: float | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.retry_after = retry_after


@dataclass(frozen=True)
class Backoff:
    """Retries of a throttled call inside one send: waits of base, 2·base, 4·base ...
    (or what Retry-After says). A wait longer than `longest` is not waited out here: the
    outbox retries the row later instead of holding a delivery activity."""

    attempts: int = 4
    base: float = 0.5
    longest: float = 10.0


def with_backoff(call: Callable[[], T], provider: str, backoff: Backoff,
                 sleep: Callable[[float], None]) -> T:
    """`call()`, again after a wait while it raises Throttled; then ProviderError."""
    for attempt in range(backoff.attempts):
        try:
            return call()
        except Throttled as throttled:
            if attempt == backoff.attempts - 1:
                raise ProviderError(f"{provider} throttled the message {backoff.attempts} "
                                    f"times ({throttled.code}); the outbox retries it "
                                    "later") from throttled
            wait = (throttled.retry_after if throttled.retry_after is not None
                    else backoff.base * 2 ** attempt)
            if wait > backoff.longest:
                raise ProviderError(f"{provider} throttled the message ({throttled.code}) "
                                    f"and asks to wait {wait:.0f} s; the outbox retries it "
                                    "later") from throttled
            sleep(wait)
    raise AssertionError("unreachable")  # attempts >= 1


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date), if it has one."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def brief(text: str) -> str:
    """A provider's message as an error may carry it: its first sentence, short. Some
    echo the request (Aliyun's SignatureDoesNotMatch gives its string to sign, phone
    number and status link included), and errors end up in the outbox's last_error."""
    first = re.split(r"(?<=[.。!！])\s", " ".join(text.split()), maxsplit=1)[0]
    return clip(first, 120)


def answer_json(response: httpx.Response, provider: str) -> dict:
    """The JSON object of an answer; a 5xx or a body that is not JSON is an ordinary,
    retried failure (a proxy's error page, a gateway timeout)."""
    if response.status_code >= 500:
        raise ProviderError(f"{provider} answered {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        raise ProviderError(f"{provider} answered {response.status_code} without "
                            "JSON") from None
    if not isinstance(body, dict):
        raise ProviderError(f"{provider} answered {response.status_code} with "
                            f"{type(body).__name__} JSON")
    return body


# --- Template mappings ---------------------------------------------------------------

# Values every message has, beside the variables its template's texts use
# (activities/notifications.py builds them; recipient_name is the message's to_name).
ALWAYS = frozenset({"case_id", "customer_url", "desk_url", "public_url", "recipient_name"})


class TemplateConfigError(ValueError):
    """A template mapping file that cannot be used: raised when the sender is built."""


@dataclass(frozen=True)
class Param:
    """One parameter of a provider's template and the value of ours that fills it."""

    name: str  # the provider's name for it (Aliyun ${name}, WeChat field key); Tencent: ""
    source: str  # one of the template's values, or recipient_name
    # A link is never cut. Providers refuse a whole URL as a parameter, so the template
    # registers the link's fixed start (`prefix`) and the parameter carries the rest.
    link: bool = False
    prefix: str = ""
    limit: int | None = None  # a tighter limit than the provider's, in characters


@dataclass(frozen=True)
class Template:
    """Our template `name` as the provider knows it."""

    name: str
    ids: Mapping[str, str]  # locale -> the provider's template id ("*": every locale)
    params: tuple[Param, ...]
    page: str = ""  # WeChat: the value whose link the notification opens

    def id_for(self, locale: str, default_locale: str) -> str:
        return (self.ids.get("*") or self.ids.get(locale) or self.ids[default_locale])


@dataclass(frozen=True)
class Rules:
    """What one provider allows in its templates' parameters."""

    provider: str
    named: bool  # parameters by name (Aliyun, WeChat) or by position (Tencent)
    limit: Callable[[str, str], int | None]  # (parameter name, value) -> characters
    cuttable: Callable[[str], bool] = lambda name: True  # text that may be shortened
    total: int | None = None  # all the values together, in characters
    links: bool = True  # a link may fill a parameter (WeChat: no, it has `page`)
    check_name: Callable[[str], str | None] = lambda name: None  # why a name is wrong


def load_templates(path: str, setting: str, rules: Rules, *, public_url: str,
                   default_locale: str) -> dict[str, Template]:
    """The mapping in the TOML file at `path` (docs/notifications.md#template-mappings),
    checked against our templates and the provider's rules."""
    where = f"{setting}={path}"
    if not path:
        raise TemplateConfigError(f"{rules.provider} needs {setting} (a TOML file mapping "
                                  "our templates to the provider's)")
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise TemplateConfigError(f"{where}: {err.strerror or err}") from err
    except tomllib.TOMLDecodeError as err:
        raise TemplateConfigError(f"{where}: not TOML: {err}") from err
    known = set().union(*(template_names(locale) for locale in LOCALES))
    templates = {}
    for name, entry in data.items():
        if name not in known:
            raise TemplateConfigError(f"{where}: [{name}]: no notification of that name "
                                      f"(known: {', '.join(sorted(known))})")
        if not isinstance(entry, dict):
            raise TemplateConfigError(f"{where}: [{name}] must be a table")
        templates[name] = _template(name, entry, rules, f"{where}: [{name}]",
                                    public_url, default_locale)
    return templates


def _template(name: str, entry: dict, rules: Rules, where: str, public_url: str,
              default_locale: str) -> Template:
    unknown = set(entry) - {"template", "params", "page"}
    if unknown:
        raise TemplateConfigError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    ids = entry.get("template")
    if isinstance(ids, str) and ids:
        ids = {"*": ids}
    elif isinstance(ids, dict) and ids and all(isinstance(v, str) and v for v in ids.values()):
        if set(ids) - set(LOCALES) or default_locale not in ids:
            raise TemplateConfigError(
                f"{where}: template by language takes {' and '.join(LOCALES)} and needs "
                f"{default_locale} (AFTERSALES_DEFAULT_LOCALE) for the others")
    else:
        raise TemplateConfigError(f"{where}: template must be the provider's template id, "
                                  "or a table of ids by language")
    values = template_variables(name) | ALWAYS
    page = entry.get("page", "")
    if page and (rules.links or page not in values):
        raise TemplateConfigError(f"{where}: page " + (
            f"is for WeChat only; {rules.provider} takes links as params" if rules.links
            else f"takes one of {', '.join(sorted(values))}"))
    raw = entry.get("params", [])
    if not isinstance(raw, list) or not all(isinstance(p, dict) for p in raw):
        raise TemplateConfigError(f"{where}: params must be a list of tables")
    params = tuple(_param(p, n, rules, where, values, public_url) for n, p in enumerate(raw))
    names = [p.name for p in params if p.name]
    if len(names) != len(set(names)):
        raise TemplateConfigError(f"{where}: a parameter name appears twice")
    return Template(name=name, ids=ids, params=params, page=page)


def _param(raw: dict, n: int, rules: Rules, where: str, values: set[str],
           public_url: str) -> Param:
    here = f"{where} params[{n}]"
    unknown = set(raw) - {"name", "from", "link", "prefix", "max"}
    if unknown:
        raise TemplateConfigError(f"{here}: unknown keys {', '.join(sorted(unknown))}")
    name, source = raw.get("name", ""), raw.get("from", "")
    if rules.named and not (isinstance(name, str) and name):
        raise TemplateConfigError(f"{here}: {rules.provider} parameters need a name")
    if not rules.named and name:
        raise TemplateConfigError(f"{here}: {rules.provider} parameters go by position; "
                                  "leave out name")
    wrong = rules.check_name(name) if name else None
    if wrong:
        raise TemplateConfigError(f"{here}: {wrong}")
    if source not in values:
        raise TemplateConfigError(f"{here}: from must be one of {', '.join(sorted(values))}"
                                  f" (got {source!r})")
    link, prefix, limit = bool(raw.get("link", False)), raw.get("prefix", ""), raw.get("max")
    if limit is not None and not (isinstance(limit, int) and limit > 0):
        raise TemplateConfigError(f"{here}: max must be a positive number of characters")
    if link and not rules.links:
        raise TemplateConfigError(f"{here}: {rules.provider} takes no link in a parameter: "
                                  "set page instead")
    if link and not (isinstance(prefix, str) and prefix.startswith(public_url + "/")):
        # Both SMS providers refuse a URL as a parameter's value (Aliyun
        # isv.PARAM_NOT_SUPPORT_URL, Tencent ProhibitedUseUrlInTemplateParameter): the
        # registered template holds the link's start, the parameter only the rest.
        raise TemplateConfigError(
            f"{here}: a link needs prefix, the start of the link written into the "
            f"registered template (e.g. \"{public_url}/s/\"; our links start with "
            "AFTERSALES_PUBLIC_URL): providers refuse a whole URL as a parameter")
    if prefix and not link:
        raise TemplateConfigError(f"{here}: prefix is for links (link = true)")
    return Param(name=name, source=source, link=link, prefix=prefix, limit=limit)


def clip(text: str, limit: int | None) -> str:
    """`text` on one line, shortened to `limit` characters with an ellipsis: parameters
    may hold no line breaks, and a provider refuses one that is too long."""
    flat = " ".join(text.split())
    if limit is None or len(flat) <= limit:
        return flat
    return flat[:limit - 1].rstrip() + "…"


def fill(template: Template, message: OutgoingMessage, rules: Rules,
         fixed: int = 0) -> list[tuple[Param, str]]:
    """Each parameter with its value from the message, within the provider's limits;
    `fixed` characters of the message are the provider's own (the signature)."""
    values = {**message.params, "recipient_name": message.to_name}
    filled = []
    for param in template.params:
        value = str(values.get(param.source, "") or "")
        limit = _tighter(param.limit, rules.limit(param.name, value))
        if param.link:
            value = _link_part(template.name, param, value, limit, rules.provider)
        elif limit is not None and len(" ".join(value.split())) > limit \
                and not rules.cuttable(param.name):
            raise PermanentDeliveryError(
                f"{rules.provider}: {template.name}: {param.source} is over the {limit} "
                f"characters {param.name} allows, and it is not text that can be cut")
        else:
            value = clip(value, limit)
        filled.append((param, value))
    return _within_total(filled, rules, fixed, template.name)


def _tighter(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _link_part(template: str, param: Param, link: str, limit: int | None,
               provider: str) -> str:
    """What a link parameter carries: the link after its registered start, whole."""
    if not link.startswith(param.prefix):
        raise PermanentDeliveryError(
            f"{provider}: {template}: the {param.source} does not start with the prefix "
            f"{param.prefix!r} registered in the template")
    rest = link[len(param.prefix):]
    if not rest or (limit is not None and len(rest) > limit):
        raise PermanentDeliveryError(
            f"{provider}: {template}: the {param.source} after {param.prefix!r} is "
            f"{len(rest)} characters, and {param.name or 'the parameter'} takes 1 to "
            f"{limit}: a link is never cut; register a longer prefix")
    return rest


def _within_total(filled: list[tuple[Param, str]], rules: Rules, fixed: int,
                  template: str) -> list[tuple[Param, str]]:
    """Shorten the longest text until every value fits the message's total."""
    if rules.total is None:
        return filled
    budget = rules.total - fixed
    while sum(len(v) for _, v in filled) > budget:
        texts = [i for i, (p, v) in enumerate(filled) if not p.link and len(v) > 1]
        if not texts:
            raise PermanentDeliveryError(f"{rules.provider}: {template}: the values do "
                                         f"not fit in {budget} characters")
        i = max(texts, key=lambda i: len(filled[i][1]))
        over = sum(len(v) for _, v in filled) - budget
        filled[i] = (filled[i][0], clip(filled[i][1], max(1, len(filled[i][1]) - over)))
    return filled


def template_for(templates: Mapping[str, Template], message: OutgoingMessage,
                 kind: str) -> Template:
    """The mapping of this message's template; a message without one is refused for
    good, never dropped unnoticed (delivery records it on the case)."""
    template = templates.get(message.template)
    if template is None:
        raise PermanentDeliveryError(f"no {kind} template for {message.template!r}: add it "
                                     "to the template mapping (docs/notifications.md"
                                     "#template-mappings)")
    return template


# --- Phone numbers -------------------------------------------------------------------


def e164(phone: str) -> str:
    """+<country code><number>. A bare 11-digit number starting with 1 is a mainland
    China mobile (+86); anything else is passed as given and the provider judges it."""
    compact = re.sub(r"[\s\-().]", "", phone)
    if compact.startswith("00"):
        return "+" + compact[2:]
    if re.fullmatch(r"1\d{10}", compact):
        return "+86" + compact
    return compact


def aliyun_number(phone: str) -> str:
    """Aliyun's form: mainland numbers bare, others with their country code, no +."""
    number = e164(phone)
    if number.startswith("+86"):
        return number[3:]
    return number.removeprefix("+")


# --- Alibaba Cloud SMS ---------------------------------------------------------------

ALIYUN_VERSION = "2017-05-25"
# Aliyun's template rules: a variable of a notification template holds up to 35
# characters; the whole SMS (template text and variables) up to 500.
ALIYUN_PARAM_CHARS = 35
SMS_TOTAL_CHARS = 500
ALIYUN_THROTTLED = frozenset({"isv.BUSINESS_LIMIT_CONTROL"})  # and Throttling*
# Refused for this number or this message's values: sending again cannot help.
ALIYUN_PERMANENT = frozenset({
    "isv.MOBILE_NUMBER_ILLEGAL", "isv.DOMESTIC_NUMBER_NOT_SUPPORTED",
    "isv.BLACK_KEY_CONTROL_LIMIT", "isv.PARAM_LENGTH_LIMIT", "isv.PARAM_NOT_SUPPORT_URL",
    "isv.SMS_CONTENT_ILLEGAL", "isv.INVALID_JSON_PARAM",
})
ALIYUN_RULES = Rules(provider="Aliyun SMS", named=True,
                     limit=lambda name, value: ALIYUN_PARAM_CHARS, total=SMS_TOTAL_CHARS)


def aliyun_encode(text: str) -> str:
    """Aliyun's percent-encoding: RFC 3986, every byte but A-Z a-z 0-9 - _ . ~ escaped
    (so a space is %20 and * is %2A, unlike form encoding)."""
    return quote(text, safe="-_.~")


def aliyun_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """`POST&%2F&` + the encoded canonical query: every parameter but Signature, sorted
    by name, each name and value encoded, joined with & (signature version 1.0)."""
    canonical = "&".join(f"{aliyun_encode(k)}={aliyun_encode(v)}"
                         for k, v in sorted(params.items()))
    return f"{method}&{aliyun_encode('/')}&{aliyun_encode(canonical)}"


def aliyun_signature(secret: str, string_to_sign: str) -> str:
    """Base64 of HMAC-SHA1 keyed with the AccessKey secret followed by &."""
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def sms_templates(settings: ProviderSettings, rules: Rules):
    """The SMS template mapping (AFTERSALES_SMS_TEMPLATES), checked against a provider's
    length rules."""
    return load_templates(settings.sms_templates, "AFTERSALES_SMS_TEMPLATES", rules,
                          public_url=settings.public_url,
                          default_locale=settings.default_locale)


class AliyunSmsSender:
    """SMS through Alibaba Cloud's SendSms (dysmsapi, RPC style, signature 1.0)."""

    def __init__(self, settings: ProviderSettings, *, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 backoff: Backoff = Backoff()) -> None:
        require(settings, "AFTERSALES_MESSAGE_SENDER=aliyun", "aliyun_access_key_id",
                "aliyun_access_key_secret", "aliyun_sign_name", "sms_templates")
        self._settings = settings
        self._templates = sms_templates(settings, ALIYUN_RULES)
        self._http = client or httpx.Client(timeout=TIMEOUT)
        self._sleep, self._clock, self._backoff = sleep, clock, backoff

    def send(self, message: OutgoingMessage) -> None:
        s = self._settings
        template = template_for(self._templates, message, "SMS")
        values = fill(template, message, ALIYUN_RULES, fixed=len(s.aliyun_sign_name) + 2)
        business = {
            "Action": "SendSms", "Version": ALIYUN_VERSION, "RegionId": "cn-hangzhou",
            "PhoneNumbers": aliyun_number(message.to), "SignName": s.aliyun_sign_name,
            "TemplateCode": template.id_for(message.locale, s.default_locale),
            "TemplateParam": json.dumps({p.name: v for p, v in values}, ensure_ascii=False,
                                        separators=(",", ":")),
            # Comes back on the delivery receipt: which outbox row this SMS was.
            "OutId": message.key,
        }
        with_backoff(lambda: self._call(business, message), "Aliyun SMS", self._backoff,
                     self._sleep)
        log.info("notification %s (%s) sent by Aliyun SMS to %s", message.key,
                 message.template, mask(message.to))

    def signed(self, business: Mapping[str, str]) -> dict[str, str]:
        """The request's parameters with the common ones and the Signature: a new nonce
        and timestamp for each attempt, as Aliyun refuses a nonce it has seen."""
        s = self._settings
        params = {**business, "AccessKeyId": s.aliyun_access_key_id, "Format": "JSON",
                  "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
                  "SignatureNonce": str(uuid.uuid4()),
                  "Timestamp": self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        params["Signature"] = aliyun_signature(s.aliyun_access_key_secret,
                                               aliyun_string_to_sign("POST", params))
        return params

    def _call(self, business: Mapping[str, str], message: OutgoingMessage) -> None:
        response = self._http.post(self._settings.aliyun_endpoint.rstrip("/") + "/",
                                   data=self.signed(business))
        body = answer_json(response, "Aliyun SMS")
        code, text = str(body.get("Code", "")), brief(str(body.get("Message", "")))
        if code == "OK":
            return
        if code in ALIYUN_THROTTLED or code.startswith("Throttling"):
            raise Throttled(code, retry_after(response.headers))
        if code in ALIYUN_PERMANENT:
            raise PermanentDeliveryError(f"Aliyun SMS refused {mask(message.to)}: {code} "
                                         f"({text})")
        raise ProviderError(f"Aliyun SMS answered {response.status_code} {code}: {text}")


# --- Tencent Cloud SMS ---------------------------------------------------------------

TENCENT_VERSION = "2021-01-11"
TC3 = "TC3-HMAC-SHA256"
JSON_TYPE = "application/json; charset=utf-8"
# Refused for this number or this message's values; LimitExceeded.* and
# RequestLimitExceeded* are throttling, anything else is retried by the outbox.
TENCENT_PERMANENT = frozenset({
    "InvalidParameterValue.IncorrectPhoneNumber",
    "FailedOperation.PhoneNumberInBlacklist",  # unsubscribed, or on a do-not-disturb list
    "FailedOperation.PhoneNumberParseFail",
    "FailedOperation.ContainSensitiveWord",
    "InvalidParameterValue.ContentLengthLimit",
    "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter",
})
# Tencent limits only the whole SMS (500 characters with the signature); accounts
# verified as a person, not a company, hold each variable to 12: set max = 12 then.
TENCENT_RULES = Rules(provider="Tencent SMS", named=False, limit=lambda name, value: None,
                      total=SMS_TOTAL_CHARS)


def tc3_signature(secret_key: str, date: str, service: str, string_to_sign: str) -> str:
    """Hex HMAC-SHA256 of the string to sign with the key derived from the secret,
    the UTC date and the service (TC3 + key -> date -> service -> tc3_request)."""
    key = ("TC3" + secret_key).encode()
    for part in (date, service, "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def tc3_authorization(secret_id: str, secret_key: str, *, host: str, payload: bytes,
                      timestamp: int, service: str = "sms",
                      content_type: str = JSON_TYPE) -> str:
    """The Authorization header of a TC3-HMAC-SHA256 POST to `/` that signs the
    content-type and host headers and the payload's SHA-256."""
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    canonical = "\n".join(["POST", "/", "", f"content-type:{content_type}\nhost:{host}\n",
                           "content-type;host", hashlib.sha256(payload).hexdigest()])
    scope = f"{date}/{service}/tc3_request"
    string_to_sign = "\n".join([TC3, str(timestamp), scope,
                                hashlib.sha256(canonical.encode()).hexdigest()])
    signature = tc3_signature(secret_key, date, service, string_to_sign)
    return (f"{TC3} Credential={secret_id}/{scope}, SignedHeaders=content-type;host, "
            f"Signature={signature}")


class TencentSmsSender:
    """SMS through Tencent Cloud's SendSms (API 3.0, TC3-HMAC-SHA256)."""

    def __init__(self, settings: ProviderSettings, *, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time, backoff: Backoff = Backoff()) -> None:
        require(settings, "AFTERSALES_MESSAGE_SENDER=tencent", "tencent_secret_id",
                "tencent_secret_key", "tencent_sdk_app_id", "tencent_sign_name",
                "tencent_region", "sms_templates")
        self._settings = settings
        self._templates = sms_templates(settings, TENCENT_RULES)
        self._http = client or httpx.Client(timeout=TIMEOUT)
        self._sleep, self._clock, self._backoff = sleep, clock, backoff

    def send(self, message: OutgoingMessage) -> None:
        s = self._settings
        template = template_for(self._templates, message, "SMS")
        values = fill(template, message, TENCENT_RULES, fixed=len(s.tencent_sign_name) + 2)
        payload = json.dumps({
            "PhoneNumberSet": [e164(message.to)], "SmsSdkAppId": s.tencent_sdk_app_id,
            "SignName": s.tencent_sign_name,
            "TemplateId": template.id_for(message.locale, s.default_locale),
            "TemplateParamSet": [v for _, v in values],
            "SessionContext": message.key,  # comes back on the status callback
        }, ensure_ascii=False, separators=(",", ":")).encode()
        with_backoff(lambda: self._call(payload, message), "Tencent SMS", self._backoff,
                     self._sleep)
        log.info("notification %s (%s) sent by Tencent SMS to %s", message.key,
                 message.template, mask(message.to))

    def headers(self, payload: bytes) -> dict[str, str]:
        """The signed headers of one attempt (its own timestamp: Tencent refuses a
        signature more than 5 minutes old)."""
        s = self._settings
        host = urlsplit(s.tencent_endpoint).netloc
        timestamp = int(self._clock())
        return {"Content-Type": JSON_TYPE, "Host": host, "X-TC-Action": "SendSms",
                "X-TC-Version": TENCENT_VERSION, "X-TC-Region": s.tencent_region,
                "X-TC-Timestamp": str(timestamp),
                "Authorization": tc3_authorization(s.tencent_secret_id, s.tencent_secret_key,
                                                   host=host, payload=payload,
                                                   timestamp=timestamp)}

    def _call(self, payload: bytes, message: OutgoingMessage) -> None:
        response = self._http.post(self._settings.tencent_endpoint.rstrip("/") + "/",
                                   content=payload, headers=self.headers(payload))
        answer = answer_json(response, "Tencent SMS").get("Response") or {}
        error = answer.get("Error")
        if error:
            self._refused(str(error.get("Code", "")), brief(str(error.get("Message", ""))),
                          response, message)
        # A 200 without Error can still refuse the number: its SendStatusSet entry says.
        status = (answer.get("SendStatusSet") or [{}])[0]
        code = str(status.get("Code", ""))
        if code != "Ok":
            self._refused(code or "no SendStatusSet", brief(str(status.get("Message", ""))),
                          response, message)

    @staticmethod
    def _refused(code: str, text: str, response: httpx.Response,
                 message: OutgoingMessage) -> None:
        if code.startswith(("RequestLimitExceeded", "LimitExceeded.")):
            raise Throttled(code, retry_after(response.headers))
        if code in TENCENT_PERMANENT:
            raise PermanentDeliveryError(f"Tencent SMS refused {mask(message.to)}: {code} "
                                         f"({text})")
        raise ProviderError(f"Tencent SMS answered {code}: {text}")


# --- WeChat Official Account subscription notifications ------------------------------

# Field types of a subscription template (the key's letters: thing2 is a `thing`) and
# the characters each holds; only free text may be shortened, the rest is refused.
WECHAT_FIELD_CHARS: dict[str, int | None] = {
    "thing": 20, "character_string": 32, "number": 32, "letter": 32, "symbol": 5,
    "phone_number": 17, "car_number": 8, "name": 20, "phrase": 5, "amount": 14,
    "time": None, "date": None,
}
WECHAT_TEXT_FIELDS = frozenset({"thing", "name", "phrase"})
WECHAT_TOKEN_REJECTED = frozenset({40001, 40014, 42001})  # invalid, malformed, expired
WECHAT_PERMANENT = frozenset({
    43101,  # the user refused, or cancelled the subscription
    40003,  # not an openid of this account
    47003,  # a value breaks the field's rules
})
WECHAT_THROTTLED = frozenset({-1, 45009, 45011})  # system busy, daily / minute quota


def wechat_field_type(name: str) -> str:
    return name.rstrip("0123456789")


def _wechat_limit(name: str, value: str) -> int | None:
    kind = wechat_field_type(name)
    if kind == "name" and not value.isascii():
        return 10  # 10 Chinese characters, or 20 letters
    return WECHAT_FIELD_CHARS.get(kind)


def _wechat_name(name: str) -> str | None:
    kind = wechat_field_type(name)
    if kind == name or kind not in WECHAT_FIELD_CHARS:
        return (f"{name!r} is not a subscription template field (a type and a number, "
                f"like thing2; types: {', '.join(WECHAT_FIELD_CHARS)})")
    return None


WECHAT_RULES = Rules(provider="WeChat", named=True, limit=_wechat_limit,
                     cuttable=lambda name: wechat_field_type(name) in WECHAT_TEXT_FIELDS,
                     links=False, check_name=_wechat_name)


class AccessToken:
    """The Official Account's access token, shared by every thread of the process:
    fetched once, kept until `expires_in` less a margin, and fetched again once when
    the API says the token in hand was rejected. Threads that find it missing or
    rejected together wait for one fetch."""

    MARGIN = 300.0  # seconds: WeChat renews a stable token 5 minutes before it expires

    def __init__(self, fetch: Callable[[bool], tuple[str, float]],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch  # (force a new one) -> (token, expires_in seconds)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._token = ""
        self._until = 0.0

    def get(self) -> str:
        with self._lock:
            if not self._token or self._monotonic() >= self._until:
                self._take(force=False)
            return self._token

    def refresh(self, rejected: str) -> str:
        """A new token in place of `rejected`, unless another thread got one already. A
        stable token is the same for every caller until WeChat renews it: if it comes
        back unchanged, force a new one."""
        with self._lock:
            if self._token == rejected:
                self._take(force=False)
                if self._token == rejected:
                    self._take(force=True)
            return self._token

    def _take(self, force: bool) -> None:
        token, expires_in = self._fetch(force)
        margin = min(self.MARGIN, expires_in / 2)
        self._token, self._until = token, self._monotonic() + expires_in - margin


class WeChatSender:
    """Subscription notifications of a WeChat Official Account
    (`/cgi-bin/message/subscribe/bizsend`) to customers who have an openid.

    Subscription notifications, not template messages (`/message/template/send`): they
    go only to users who subscribed to that notification and say so when they did not
    (43101, refused for good), WeChat is moving accounts off template messages, and
    each field's type and length are documented, so a value can be fitted before it is
    sent. The status link goes in `page` (the page the notification opens), so it is
    never cut. The access token comes from `/cgi-bin/stable_token`: several worker
    processes share one account, and each `/cgi-bin/token` call would end the token
    the other processes hold, while a stable token is the same for all of them."""

    def __init__(self, settings: ProviderSettings, *, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic,
                 backoff: Backoff = Backoff()) -> None:
        require(settings, "WeChat", "wechat_app_id", "wechat_app_secret", "wechat_templates")
        self._settings = settings
        self._templates = load_templates(settings.wechat_templates,
                                         "AFTERSALES_WECHAT_TEMPLATES", WECHAT_RULES,
                                         public_url=settings.public_url,
                                         default_locale=settings.default_locale)
        self._http = client or httpx.Client(timeout=TIMEOUT)
        self._sleep, self._backoff = sleep, backoff
        self._token = AccessToken(self._fetch_token, monotonic)
        self._base = settings.wechat_endpoint.rstrip("/")

    def send(self, message: OutgoingMessage) -> None:
        s = self._settings
        template = template_for(self._templates, message, "WeChat")
        body: dict[str, Any] = {
            "touser": message.to,
            "template_id": template.id_for(message.locale, s.default_locale),
            "data": {p.name: {"value": v} for p, v in fill(template, message, WECHAT_RULES)},
        }
        if template.page and message.params.get(template.page):
            body["page"] = str(message.params[template.page])
        with_backoff(lambda: self._deliver(body, message), "WeChat", self._backoff,
                     self._sleep)
        log.info("notification %s (%s) sent by WeChat to %s", message.key, message.template,
                 mask(message.to))

    def _deliver(self, body: dict, message: OutgoingMessage) -> None:
        """One attempt; a rejected token is replaced once and the send tried once more."""
        token = self._token.get()
        code, text = self._post_send(token, body)
        if code in WECHAT_TOKEN_REJECTED:
            code, text = self._post_send(self._token.refresh(token), body)
            if code in WECHAT_TOKEN_REJECTED:
                raise ProviderError(f"WeChat rejected a fresh access token too: {code} {text}")
        if code == 0:
            return
        if code in WECHAT_THROTTLED:
            raise Throttled(str(code))
        if code in WECHAT_PERMANENT:
            raise PermanentDeliveryError(f"WeChat refused {mask(message.to)}: errcode "
                                         f"{code} ({text})")
        raise ProviderError(f"WeChat answered errcode {code}: {text}")

    def _post_send(self, token: str, body: dict) -> tuple[int, str]:
        response = self._http.post(f"{self._base}/cgi-bin/message/subscribe/bizsend",
                                   params={"access_token": token}, json=body)
        answer = answer_json(response, "WeChat")
        return int(answer.get("errcode", -1)), brief(str(answer.get("errmsg", "")))

    def _fetch_token(self, force: bool) -> tuple[str, float]:
        s = self._settings
        response = self._http.post(f"{self._base}/cgi-bin/stable_token", json={
            "grant_type": "client_credential", "appid": s.wechat_app_id,
            "secret": s.wechat_app_secret, "force_refresh": force})
        answer = answer_json(response, "WeChat")
        if answer.get("access_token"):
            return str(answer["access_token"]), float(answer.get("expires_in") or 7200)
        code = int(answer.get("errcode", -1))
        if code in WECHAT_THROTTLED:
            raise Throttled(str(code))
        raise ProviderError(f"WeChat gave no access token: errcode {code} "
                            f"{answer.get('errmsg', '')} (check AFTERSALES_WECHAT_APP_ID "
                            "and AFTERSALES_WECHAT_APP_SECRET)")


# --- A signed webhook, for any other gateway -----------------------------------------

WEBHOOK_SIGNATURE = "X-Aftersales-Signature"
WEBHOOK_TIMESTAMP = "X-Aftersales-Timestamp"
# Refusals that a mended configuration turns into a success: retried, not permanent.
WEBHOOK_RETRIED_4XX = frozenset({401, 403, 404, 408})


class WebhookSender:
    """Each message as a signed JSON POST to `AFTERSALES_SMS_WEBHOOK_URL`, for a gateway
    of the retailer's own: signed like the courier's webhooks (activities/signing.py),
    with `X-Aftersales-Timestamp` and `X-Aftersales-Signature: sha256=<hex>`.

    2xx: accepted. 429, or 503 with Retry-After: throttled. Other 5xx: retried by the
    outbox. 401/403/404/408 (a wrong secret or URL, a timeout): retried too, as mending
    the configuration makes them succeed. Any other 4xx (400, 410, 422, ...): the
    gateway refused this message for good."""

    def __init__(self, settings: ProviderSettings, *, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time, backoff: Backoff = Backoff()) -> None:
        require(settings, "AFTERSALES_MESSAGE_SENDER=webhook", "sms_webhook_url",
                "sms_webhook_secret")
        self._settings = settings
        self._http = client or httpx.Client(timeout=TIMEOUT)
        self._sleep, self._clock, self._backoff = sleep, clock, backoff

    def send(self, message: OutgoingMessage) -> None:
        body = json.dumps({
            "to": message.to, "template": message.template, "locale": message.locale,
            "subject": message.subject, "body": message.body, "params": message.params,
            "case_id": message.case_id, "message_id": message.message_id,
        }, ensure_ascii=False, separators=(",", ":")).encode()
        with_backoff(lambda: self._post(body, message), "the SMS webhook", self._backoff,
                     self._sleep)
        log.info("notification %s (%s) posted to the SMS webhook for %s", message.key,
                 message.template, mask(message.to))

    def _post(self, body: bytes, message: OutgoingMessage) -> None:
        stamp = str(int(self._clock()))  # signed anew for each attempt: replay windows
        response = self._http.post(self._settings.sms_webhook_url, content=body, headers={
            "Content-Type": "application/json",
            WEBHOOK_TIMESTAMP: stamp,
            WEBHOOK_SIGNATURE: webhook_signature(body, self._settings.sms_webhook_secret,
                                                 stamp)})
        status = response.status_code
        if 200 <= status < 300:
            return
        wait = retry_after(response.headers)
        if status == 429 or (status == 503 and wait is not None):
            raise Throttled(str(status), wait)
        if status >= 500 or status in WEBHOOK_RETRIED_4XX:
            raise ProviderError(f"the SMS webhook answered {status}")
        raise PermanentDeliveryError(f"the SMS webhook refused {mask(message.to)}: HTTP "
                                     f"{status} {brief(response.text)}")
