"""Notification texts: one Jinja2 template per message and language.

`activities/templates/notifications/<locale>/<template>.txt` holds a `subject` and a
`body` block. The template name is the one the workflow wrote to the outbox
(`case_opened`, `sla_warning`, ...); the context is the outbox payload plus the case
id, the customer's status link and the recipient's name.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, meta

from workflows.case.vocabulary import CLOCKS, LOCALES, STAGES

TEMPLATES = Path(__file__).parent / "templates" / "notifications"

_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=False,
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                   keep_trailing_newline=False)


# What staff mail calls the SLA clocks (vocabulary.CLOCKS) and the stages, in the mail's
# own language: one table per language beside that language's texts
# (`<locale>/names.toml`), given to every text as `clock_names` and `stage_names`, so a
# message says "确认阶段" or "待处理", never the key `confirm` or `resolve`.
def _names(locale: str) -> dict[str, dict[str, str]]:
    with (TEMPLATES / locale / "names.toml").open("rb") as file:
        names = tomllib.load(file)
    if set(names.get("clocks", ())) != set(CLOCKS) or set(names.get("stages", ())) != set(
            STAGES):
        raise ValueError(f"{locale}/names.toml must name every clock and every stage")
    return names


NAMES = {locale: _names(locale) for locale in LOCALES}


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    body: str


class UnknownTemplate(LookupError):
    """No text for this template in this language."""


def render(template: str, locale: str, context: dict) -> RenderedMessage:
    """Subject and body of `template` in `locale` (zh-CN or en)."""
    if locale not in LOCALES:
        locale = LOCALES[0]
    try:
        tmpl = _env.get_template(f"{locale}/{template}.txt")
    except TemplateNotFound as err:
        raise UnknownTemplate(f"no {locale} text for notification '{template}'") from err
    ctx = tmpl.new_context({"clock_names": NAMES[locale]["clocks"],
                            "stage_names": NAMES[locale]["stages"], **context})
    subject = " ".join("".join(tmpl.blocks["subject"](ctx)).split())
    body = "".join(tmpl.blocks["body"](ctx)).strip() + "\n"
    return RenderedMessage(subject=subject, body=body)


def template_names(locale: str) -> set[str]:
    """Every notification that has a text in `locale`."""
    return {p.stem for p in (TEMPLATES / locale).glob("*.txt")}


def template_variables(template: str) -> set[str]:
    """The values `template`'s texts use, in any language: what a provider's registered
    template may be filled with (activities/providers.py checks its mapping with it)."""
    found: set[str] = set()
    for locale in LOCALES:
        path = TEMPLATES / locale / f"{template}.txt"
        if path.exists():
            found |= meta.find_undeclared_variables(_env.parse(path.read_text(encoding="utf-8")))
    return found
