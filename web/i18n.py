"""Languages of the pages: Simplified Chinese and English.

The language is, in order: `?lang=` on any page (a switch, remembered in a cookie for
a year), the `lang` cookie, the browser's Accept-Language, English. Dates, durations
and money are formatted for that locale by Babel; times are shown in the store's time
zone (the SLA calendar's), and the customer's page rewrites them into the browser's
own zone with a small script of ours.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from babel.dates import format_skeleton
from babel.lists import format_list
from flask import Flask, current_app, g, request
from flask_babel import Babel, format_currency, format_datetime, format_timedelta, get_locale
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from db.cases import as_utc

LANGUAGES = {"en": "English", "zh_CN": "简体中文"}
HTML_LANG = {"en": "en", "zh_CN": "zh-CN"}
LANG_COOKIE = "lang"
# The language switch every page takes in its query string (not one of the page's own
# parameters: a page that checks its query string leaves it out).
LANG_PARAM = "lang"
TRANSLATIONS = Path(__file__).parent / "translations"

babel = Babel()


def select_locale() -> str:
    asked = request.args.get(LANG_PARAM)
    if asked in LANGUAGES:
        g.lang_switched = asked
        return asked
    remembered = request.cookies.get(LANG_COOKIE)
    if remembered in LANGUAGES:
        return remembered
    return request.accept_languages.best_match(list(LANGUAGES), default="en") or "en"


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale, timezone_selector=store_zone_name,
                   default_translation_directories=str(TRANSLATIONS))
    app.after_request(_remember_language)
    app.jinja_env.globals.update(LANGUAGES=LANGUAGES, current_lang=current_lang,
                                 html_lang=html_lang, lang_url=lang_url)
    app.jinja_env.filters.update(when=when, local_when=local_when, due_in=due_in,
                                 since=since, money=money, duration=duration,
                                 listing=listing)


def _remember_language(response):
    lang = g.get("lang_switched")
    if lang:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="Lax",
                            httponly=True, secure=request.is_secure)
    return response


def current_lang() -> str:
    locale = get_locale()
    return "zh_CN" if locale is not None and locale.language == "zh" else "en"


def html_lang() -> str:
    return HTML_LANG[current_lang()]


def lang_url(lang: str) -> str:
    """This page in another language (keeps the query string). A form's page shown again
    after a refused submit answers a POST address, which is no page: the view names the
    page it redisplays in `g.page_path`."""
    if request.method != "GET":
        return f"{g.get('page_path', request.path)}?{urlencode({LANG_PARAM: lang})}"
    args = request.args.to_dict()
    args[LANG_PARAM] = lang
    return f"{request.path}?{urlencode(args)}"  # Jinja escapes it once, in the href


def store_zone_name() -> str:
    """Dates on the pages are in the store's zone: the SLA calendar's."""
    return current_app.extensions["aftersales"].policy.calendar.timezone


def when(value: datetime | str | None, with_zone: bool = False) -> Markup | str:
    """A `<time>` element: machine-readable UTC, text in the store's zone and locale
    (the customer's page turns it into the browser's zone)."""
    if value is None or value == "":
        return ""
    moment = as_utc(datetime.fromisoformat(value.replace("Z", "+00:00"))
                    if isinstance(value, str) else value)
    text = format_datetime(moment, "medium")  # in the store's zone (timezone_selector)
    if with_zone:
        text += " " + format_datetime(moment, "zzzz")
    iso = moment.isoformat().replace("+00:00", "Z")
    return Markup('<time datetime="{}">{}</time>').format(iso, text)


# Time zones in the words their people use for them; other zones take the locale's name.
ZONE_WORDS = {"Asia/Shanghai": _l("Beijing time")}


def local_when(value: datetime | str | None) -> Markup | str:
    """A time promised to a customer, in plain words and the store's zone, named: "12月8日
    周二 18:00（北京时间）". The customer's page keeps it for a reader in that zone and
    rewrites it into any other reader's own zone (static/localtime.js)."""
    if value is None or value == "":
        return ""
    moment = as_utc(datetime.fromisoformat(value.replace("Z", "+00:00"))
                    if isinstance(value, str) else value)
    zone = store_zone_name()
    locale = get_locale()
    local = moment.astimezone(ZoneInfo(zone))
    words = ZONE_WORDS.get(zone) or format_datetime(moment, "zzzz")
    # The locale's own joining of a date and a time ("{1} {0}", "{1}, {0}").
    joined = str(locale.datetime_formats["short"]).replace(
        "{1}", format_skeleton("MMMEd" if local.year == datetime.now(local.tzinfo).year
                               else "yMMMEd", local, locale=locale)).replace(
        "{0}", format_skeleton("Hm", local, locale=locale))
    text = _l("%(time)s (%(zone)s)", time=joined, zone=words)
    iso = moment.isoformat().replace("+00:00", "Z")
    return Markup('<time datetime="{}" data-zone="{}">{}</time>').format(iso, zone, text)


def due_in(value: datetime | None, now: datetime) -> str:
    """'in 3 hours' / 'overdue by 2 days', in the page's language."""
    if value is None:
        return ""
    left = as_utc(value) - now
    if left >= timedelta(0):
        return str(_l("in %(time)s", time=format_timedelta(left, threshold=1.0)))
    return str(_l("overdue by %(time)s", time=format_timedelta(-left, threshold=1.0)))


def since(value: datetime | str | None, now: datetime) -> str:
    """How long ago, in the page's language ('2 hours'): how long someone has waited."""
    if value in (None, ""):
        return ""
    moment = as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)
    return format_timedelta(max(now - moment, timedelta(0)), threshold=1.0)


def duration(seconds: float | int | None) -> str:
    if seconds is None:
        return ""
    return format_timedelta(timedelta(seconds=float(seconds)), threshold=1.0)


def listing(items, names: dict | None = None) -> str:
    """Words as a list in the page's language: "A, B and C", "A、B和C"; each item by
    its name in `names` when given."""
    words = [str((names or {}).get(item, item)) for item in items]
    return format_list(words, locale=get_locale()) if words else ""


def money(amount: str | Decimal | None, currency: str = "CNY") -> str:
    if amount in (None, ""):
        return ""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    return format_currency(value, currency or "CNY")
