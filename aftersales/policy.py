"""Reads the SLA policy file: the shipped one inside the package, or one the operator names.

The structure is validated by `workflows.sla.sla_policy_from_dict`; this module does the
I/O and turns TOML syntax errors into the same `PolicyError`, naming file and line.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

from workflows.sla import PolicyError, SlaPolicy, sla_policy_from_dict

__all__ = ["SHIPPED_POLICY", "PolicyError", "load_policy", "parse_policy"]

SHIPPED_POLICY = "sla_policy.toml"

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def load_policy(path: str | None = None) -> SlaPolicy:
    """The SLA policy in the file at `path`, or the shipped policy when `path` is None.

    Raises `PolicyError` if the file cannot be read, is not valid TOML, or does not
    describe a valid policy; the message names the file and, where known, the line.
    """
    if path is None:
        source = f"aftersales/{SHIPPED_POLICY}"
        text = resources.files("aftersales").joinpath(SHIPPED_POLICY).read_text(encoding="utf-8")
    else:
        source = path
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(
                f"{source}: cannot read the SLA policy file: {exc.strerror or exc}", source=source
            ) from None
        except UnicodeDecodeError:
            raise PolicyError(
                f"{source}: the SLA policy file is not UTF-8 text", source=source
            ) from None
    return parse_policy(text, source)


def parse_policy(text: str, source: str = "<policy>") -> SlaPolicy:
    """The SLA policy written in TOML `text`; `source` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _TOML_POSITION.search(message)
        if position is not None:
            line = int(position.group(1))
            detail = f"{message[: position.start()]} (column {position.group(2)})"
        else:
            line = max(1, len(text.splitlines()))
            detail = message.removesuffix(" (at end of document)")
        raise PolicyError(
            f"{source} line {line}: not valid TOML: {detail}", source=source, line=line
        ) from None
    return sla_policy_from_dict(data, source=source, text=text)
