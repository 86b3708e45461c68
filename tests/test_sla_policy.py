"""The SLA policy file: shipped defaults, per-kind overrides, and refusals that name the line."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from textwrap import dedent

import pytest
from temporalio.converter import DataConverter

from aftersales.policy import PolicyError, load_policy, sla_policy_from_dict
from workflows.case.vocabulary import KINDS, PRIORITIES
from workflows.sla import (
    DAY,
    HOUR,
    MINUTE,
    CalendarSpec,
    InstantRefundRule,
    SlaPolicy,
    StageTargets,
    parse_duration,
)


def write_policy(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sla.toml"
    path.write_text(dedent(text).lstrip(), encoding="utf-8")
    return str(path)


def refusal(tmp_path: Path, text: str) -> PolicyError:
    path = write_policy(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    return caught.value


# --- durations ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("4h", 14400), ("3d", 259200), ("1d12h", 129600), ("0s", 0)],
)
def test_durations_are_read_in_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "4", "h", "4 hours", "1.5h", "-1h", "12h1d", "4H"])
def test_malformed_durations_are_refused_with_an_example(text):
    with pytest.raises(ValueError, match=r"invalid duration .*e\.g\. '90s', '30m', '4h', '3d'"):
        parse_duration(text)


# --- the shipped file -----------------------------------------------------------------------------


def test_shipped_policy_has_the_default_targets():
    policy = load_policy()
    for kind in KINDS:
        assert policy.targets_for(kind, "P1") == StageTargets(
            confirm=30 * MINUTE, analyze=4 * HOUR, resolution=24 * HOUR, revisit_after=1 * DAY,
            reply=15 * MINUTE)
        assert [policy.targets_for(kind, p).reply for p in ("P2", "P3", "P4")] == [
            HOUR, 4 * HOUR, 8 * HOUR]
        assert policy.targets_for(kind, "P4").resolution == 7 * DAY
        assert policy.targets_for(kind, "P4").revisit_after == 7 * DAY
    assert policy.targets_for("return", "P2").confirm == 2 * HOUR
    assert policy.targets_for("refund", "P3").analyze == 24 * HOUR
    assert policy.feedback_window == 72 * HOUR
    assert policy.warn_at == [0.5, 0.75, 0.9]
    assert policy.refund_after_goods_received == 7 * DAY
    assert policy.approval_limit == "500.00"
    assert policy.calendar == CalendarSpec(timezone="UTC", hours="24x7")


def test_shipped_file_and_built_in_defaults_agree():
    shipped = load_policy()
    # The shipped file adds an amount rule to the built-in defaults and turns instant
    # refunds on (built in they are off: a case opened under a policy without the rule
    # never pays at pickup); the rest agrees.
    assert shipped.priority.amount_boost == {"2000.00": 1}
    assert shipped.instant_refund == InstantRefundRule(["vip", "gold"], "300.00", 3)
    assert SlaPolicy().instant_refund.tiers == []
    built_in = replace(SlaPolicy(), priority=replace(SlaPolicy().priority,
                                                     amount_boost={"2000.00": 1}),
                       instant_refund=shipped.instant_refund)
    assert replace(shipped, source="", version="") == replace(built_in, source="", version="")
    assert replace(sla_policy_from_dict({}), source="", version="") == replace(
        SlaPolicy(), source="", version="")


def test_policy_version_follows_the_text(tmp_path):
    one = tmp_path / "one.toml"
    one.write_text('[rules]\nfeedback_window = "48h"\n')
    two = tmp_path / "two.toml"
    two.write_text('[rules]\nfeedback_window = "24h"\n')
    assert load_policy(str(one)).version != load_policy(str(two)).version
    assert load_policy(str(one)).version == load_policy(str(one)).version
    assert load_policy(str(one)).source == str(one)


def test_priority_rules_parse_and_refuse_bad_values(tmp_path):
    good = tmp_path / "p.toml"
    good.write_text('[priority]\ndefault = "P4"\ntier_boost = { vip = 2, gold = 1 }\n'
                    'amount_boost = { "500.00" = 1 }\nescalation_words = ["曝光"]\n')
    rules = load_policy(str(good)).priority
    assert rules.default == "P4" and rules.tier_boost == {"vip": 2, "gold": 1}
    assert rules.amount_boost == {"500.00": 1} and rules.escalation_words == ["曝光"]
    for body, needle in (('default = "P9"', "default"), ("repeat_boost = 7", "repeat_boost"),
                         ('amount_boost = { "lots" = 1 }', "amount_boost"),
                         ("colour = 1", "colour")):
        bad = tmp_path / "bad.toml"
        bad.write_text(f"[priority]\n{body}\n")
        with pytest.raises(PolicyError, match=f"line 2.*{needle}"):
            load_policy(str(bad))


def test_policy_survives_temporals_json_converter():
    policy = load_policy()
    converter = DataConverter.default.payload_converter
    payloads = converter.to_payloads([policy])
    assert converter.from_payloads(payloads, [SlaPolicy]) == [policy]


def test_unknown_kind_or_priority_has_no_targets():
    with pytest.raises(ValueError, match="no SLA targets for kind 'warranty'"):
        load_policy().targets_for("warranty", "P1")


# --- overrides ------------------------------------------------------------------------------------


def test_kind_table_overrides_only_the_keys_it_gives(tmp_path):
    policy = load_policy(
        write_policy(
            tmp_path,
            """
            [targets.return]
            P3 = { confirm = "4h" }         # only what differs
            """,
        )
    )
    assert policy.targets_for("return", "P3") == StageTargets(
        confirm=4 * HOUR, analyze=24 * HOUR, resolution=72 * HOUR, revisit_after=3 * DAY,
        reply=4 * HOUR)
    assert policy.targets_for("complaint", "P3").confirm == 8 * HOUR
    assert policy.targets_for("return", "P2").confirm == 2 * HOUR


def test_kind_overrides_default_which_overrides_the_shipped_numbers(tmp_path):
    policy = load_policy(
        write_policy(
            tmp_path,
            """
            [targets.default]
            P1 = { confirm = "15m", analyze = "2h" }

            [targets.refund.P1]
            confirm = "10m"
            """,
        )
    )
    assert policy.targets_for("refund", "P1") == StageTargets(
        confirm=10 * MINUTE, analyze=2 * HOUR, resolution=24 * HOUR, revisit_after=1 * DAY,
        reply=15 * MINUTE)
    assert policy.targets_for("exchange", "P1").confirm == 15 * MINUTE
    assert sorted(policy.targets) == sorted(KINDS)
    assert all(sorted(by_priority) == list(PRIORITIES) for by_priority in policy.targets.values())


def test_calendar_and_rules_are_read(tmp_path):
    policy = load_policy(
        write_policy(
            tmp_path,
            """
            [calendar]
            timezone = "Asia/Shanghai"
            hours = "09:00-18:00"
            workdays = ["mon", "tue", "wed", "thu", "fri", "sat"]
            holidays = ["2026-10-01", "2026-10-02"]

            [rules]
            feedback_window = "48h"
            warn_at = [0.8]
            refund_after_goods_received = "14d"   # EU preset
            approval_limit = "1000.50"
            """,
        )
    )
    assert policy.calendar == CalendarSpec(
        timezone="Asia/Shanghai",
        hours="09:00-18:00",
        workdays=["mon", "tue", "wed", "thu", "fri", "sat"],
        holidays=["2026-10-01", "2026-10-02"],
    )
    assert policy.feedback_window == 48 * HOUR
    assert policy.warn_at == [0.8]
    assert policy.refund_after_goods_received == 14 * DAY
    assert policy.approval_limit == "1000.50"


# --- refusals -------------------------------------------------------------------------------------


def test_unknown_priority_is_refused_naming_file_and_line(tmp_path):
    error = refusal(
        tmp_path,
        """
        [targets.default]
        P1 = { confirm = "30m" }

        [targets.return]
        P3 = { confirm = "4h" }
        P5 = { confirm = "1h" }
        """,
    )
    assert str(error).startswith(
        f"{tmp_path / 'sla.toml'} line 6: unknown priority 'P5' in [targets.return]"
    )
    assert error.line == 6


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            """
            [targets.default]
            P1 = { confirm = "30m" }
            P2 = { confirm = "2h", fix = "4h" }
            """,
            3,
            "unknown stage key 'fix' in [targets.default.P2]",
        ),
        (
            """
            [targets.warranty]
            P1 = { confirm = "30m" }
            """,
            1,
            "unknown kind 'warranty' in [targets]",
        ),
        (
            """
            [rules]
            feedback_window = "72h"
            refund_window = "7d"
            """,
            3,
            "unknown rules key 'refund_window' in [rules]",
        ),
        (
            """
            [calendar]
            timezone = "UTC"
            open = "09:00"
            """,
            3,
            "unknown calendar key 'open' in [calendar]",
        ),
        (
            """
            [rules]
            warn_at = [0.5]

            [escalation]
            levels = 2
            """,
            4,
            "unknown table 'escalation' in the top level",
        ),
    ],
)
def test_unknown_keys_are_refused_naming_the_line(tmp_path, text, line, message):
    error = refusal(tmp_path, text)
    assert f"sla.toml line {line}: {message}" in str(error)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            """
            [targets.default]
            P1 = { confirm = "30m" }
            P4 = { resolution = "7 days" }
            """,
            3,
            "resolution in [targets.default.P4]: invalid duration '7 days'",
        ),
        (
            """
            [targets.repair.P2]
            analyze = "12h"
            confirm = "0m"
            """,
            3,
            "confirm in [targets.repair.P2] must be longer than 0",
        ),
        ("[rules]\nfeedback_window = 72\n", 2, "feedback_window in [rules]: duration must be"),
        ('[calendar]\nhours = "9-18"\n', 2, "hours in [calendar]: invalid hours '9-18'"),
        (
            '[calendar]\nworkdays = ["mon", "Tues"]\n',
            2,
            "workdays in [calendar]: unknown weekday 'Tues'",
        ),
        (
            '[calendar]\nholidays = ["2026-13-01"]\n',
            2,
            "holidays in [calendar]: invalid holiday '2026-13-01'",
        ),
        (
            '[calendar]\ntimezone = "China"\n',
            2,
            "timezone in [calendar]: unknown time zone 'China'",
        ),
        ("[calendar]\nworkdays = []\n", 2, "workdays in [calendar]: calendar has no working days"),
        ('[rules]\napproval_limit = "five hundred"\n', 2, "approval_limit in [rules] must be"),
        ("[rules]\napproval_limit = 500.5\n", 2, "approval_limit in [rules] must be"),
        ("[rules]\nwarn_at = [0.9, 0.5]\n", 2, "warn_at in [rules] must be in increasing order"),
        ("[rules]\nwarn_at = [50, 75]\n", 2, "warn_at in [rules] must be a list of fractions"),
    ],
)
def test_bad_values_are_refused_naming_the_line(tmp_path, text, line, message):
    error = refusal(tmp_path, text)
    assert f"sla.toml line {line}: {message}" in str(error)


def test_toml_syntax_error_is_refused_naming_the_line(tmp_path):
    error = refusal(
        tmp_path,
        """
        [targets.default]
        P1 = { confirm = "30m" }
        P2 = { confirm = "2h"
        """,
    )
    assert re.match(
        rf"{re.escape(str(tmp_path / 'sla.toml'))} line 3: not valid TOML: ", str(error)
    )
    assert error.line == 3


def test_a_missing_file_is_refused_naming_it(tmp_path):
    missing = str(tmp_path / "nowhere.toml")
    with pytest.raises(PolicyError, match=re.escape(f"{missing}: cannot read the SLA policy file")):
        load_policy(missing)


def test_without_the_text_the_message_names_only_the_source():
    with pytest.raises(PolicyError) as caught:
        sla_policy_from_dict({"targets": {"return": {"P5": {}}}}, source="policy.toml")
    assert str(caught.value).startswith("policy.toml: unknown priority 'P5' in [targets.return]")
    assert caught.value.line is None
