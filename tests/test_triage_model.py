"""The triage model: rebuilt from the shipped data set, scored on the held-out split it
never saw, and retrained with handlers' decisions only when that is not worse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from activities.triage import DATASET, SHIPPED_MODEL
from activities.triage.model import TriageModel, data_hash, load_dataset, split
from activities.triage.rules import escalation_signals
from activities.triage.training import train
from db.triage import FeedbackPair
from workflows.case.vocabulary import KINDS, ROOT_CAUSES


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> tuple[Path, TriageModel]:
    """`aftersales triage train --out` into a temporary file, as the command does it."""
    out = tmp_path_factory.mktemp("triage") / "model.joblib"
    report = train(out)
    assert report.switched and out.exists()
    return out, TriageModel.load(out)


def test_the_data_set_covers_every_kind_root_cause_and_both_languages():
    rows = [json.loads(line) for line in DATASET.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 400
    assert {r["kind"] for r in rows} == set(KINDS)
    assert {r["root_cause"] for r in rows} == set(ROOT_CAUSES)
    assert {r["lang"] for r in rows} == {"zh", "en"}
    assert {r["domain"] for r in rows} == {"grocery", "fresh", "o2o", "electronics",
                                           "apparel", "sweets"}
    assert {r["sentiment"] for r in rows} == {"negative", "neutral", "positive"}
    assert sum(r["escalation"] for r in rows) >= 40
    assert len({r["text"] for r in rows}) == len(rows), "duplicate descriptions"


def test_the_split_is_fixed_and_held_out_data_is_never_trained_on():
    examples = load_dataset()
    train_a, held_a = split(examples)
    _, held_b = split(list(reversed(examples)))
    assert {e.text for e in held_a} == {e.text for e in held_b}
    assert not {e.text for e in train_a} & {e.text for e in held_a}
    # Adding data never moves an old example: a part of the data splits the same way.
    _, held_part = split(examples[::3])
    assert {e.text for e in held_part} == {e.text for e in held_a} & {
        e.text for e in examples[::3]}
    assert 0.2 <= len(held_a) / len(examples) <= 0.3
    # Every root cause and both outcomes of escalation are in the held-out split.
    assert {e.root_cause for e in held_a} == set(ROOT_CAUSES)
    assert sum(bool(e.escalation) for e in held_a) >= 10


@pytest.mark.slow  # the rebuilt fixture trains the model: 5-13 s of CPU
def test_held_out_scores_meet_the_goals(rebuilt):
    _, model = rebuilt
    metrics = model.meta["metrics"]
    assert metrics["rows"] == len(split(load_dataset())[1])
    assert metrics["root_cause_accuracy"] >= 0.75
    assert metrics["escalation"]["recall"] >= 0.90
    assert metrics["escalation"]["precision"] >= 0.80
    # Scoring the loaded file again gives the figures stored in it.
    again = model.evaluate(split(load_dataset())[1])
    assert again["root_cause_accuracy"] == metrics["root_cause_accuracy"]
    confusion = metrics["confusion"]["root_cause"]
    assert confusion["labels"] == list(ROOT_CAUSES)
    assert sum(map(sum, confusion["matrix"])) == metrics["rows"]


@pytest.mark.slow  # the rebuilt fixture trains the model: 5-13 s of CPU
def test_the_model_file_is_versioned_with_its_data_and_figures(rebuilt):
    _, model = rebuilt
    train_split, _ = split(load_dataset())
    assert model.meta["data_hash"] == data_hash(train_split)
    assert model.version.endswith(model.meta["data_hash"][:8])
    assert model.meta["feedback_rows"] == 0
    assert set(model.meta["latency_ms"]) == {"p50", "p95", "max", "n"}


def test_the_shipped_model_is_built_from_the_shipped_data():
    shipped = TriageModel.load(SHIPPED_MODEL)
    train_split, _ = split(load_dataset())
    assert shipped.meta["data_hash"] == data_hash(train_split), \
        "data set changed: run `aftersales triage train` and commit the model file"
    assert shipped.meta["metrics"]["root_cause_accuracy"] >= 0.75


@pytest.mark.slow  # the rebuilt fixture trains the model: 5-13 s of CPU
def test_prediction_takes_less_than_20_ms(rebuilt):
    _, model = rebuilt
    texts = [e.text for e in split(load_dataset())[1]]
    latency = model.latency_ms(texts, rounds=1)
    # The median is the figure that holds on a busy shared machine; docs/triage.md
    # records p95 and max from a quiet run.
    assert latency["p50"] < 20, latency


@pytest.mark.parametrize("text,expected", [
    ("吃了你们的蛋糕拉肚子，我要打12315投诉", "12315"),
    ("再不处理我就去消协", "consumer association"),
    ("我已经联系了律师", "lawyer"),
    ("I'm filing a chargeback with my bank", "chargeback"),
    ("I will report you to trading standards", "regulator"),
    ("你们不解决我就发到抖音上曝光", "media exposure"),
    ("This is the FOURTH time I write. Unacceptable!!", "writing again in anger"),
])
def test_escalation_rules_fire_on_threats(text, expected):
    assert expected in escalation_signals(text)


@pytest.mark.parametrize("text", [
    "我不会去打12315的，只是希望尽快处理",
    "我朋友是律师，推荐我来你们家买的",
    "想买一个媒体播放器",
    "收货地址是律师事务所前台",
    "Writing again to say thank you, the mouse works perfectly.",
    "I saw your shop on social media. Do you deliver on Sundays?",
    "订单号是SO-123150，发错了口味",
])
def test_escalation_rules_ignore_near_misses(text):
    assert escalation_signals(text) == []


@pytest.mark.slow  # the rebuilt fixture trains the model: 5-13 s of CPU
def test_suggestions_carry_confidence_and_reasons(rebuilt):
    _, model = rebuilt
    found = model.suggest("快递箱子被压扁了，里面的鸡蛋全碎了", "app")
    assert found.root_cause.value == "damaged_in_transit"
    assert 0.5 < found.root_cause.confidence <= 1
    assert found.root_cause.reasons and found.reasons
    assert not found.escalation_risk.value and not found.low_confidence
    angry = model.suggest("Third time I'm writing about the missing charger. Nobody answers. "
                          "I'm filing a chargeback.")
    assert angry.escalation_risk.value and angry.escalation_risk.confidence >= 0.9
    assert "rule: chargeback" in angry.escalation_risk.reasons
    assert angry.priority.value in ("P1", "P2")


@pytest.mark.slow  # the rebuilt fixture trains the model: 5-13 s of CPU
@pytest.mark.parametrize("text", ["Привет, мне не нравится этот товар совсем", "🙂🙂🙂 ???",
                                  "ｑｚｘ ｗｖｊ ｋｐｆ"])
def test_text_the_model_cannot_read_gets_a_low_confidence_answer(rebuilt, text):
    _, model = rebuilt
    found = model.suggest(text)
    assert found.low_confidence and found.notes
    assert found.root_cause.confidence < 0.3


@pytest.mark.slow  # trains the model again (besides the rebuilt fixture)
def test_handler_feedback_is_trained_in_and_compared_before_switching(rebuilt, tmp_path):
    current_path, current = rebuilt
    out = tmp_path / "model.joblib"
    out.write_bytes(current_path.read_bytes())
    probe = "The zorblax coupon was not applied at checkout"
    pairs = [FeedbackPair(f"C{n}", text, "refund", "pricing", "complaint", "other")
             for n, text in enumerate([
                 "zorblax discount missing from my bill", "zorblax code did nothing",
                 "I paid full price, the zorblax offer was ignored",
                 "zorblax voucher rejected", "checkout ignored zorblax",
                 "zorblax deal not honoured"])]
    # A decision on a held-out text is not trained in: the figures stay honest.
    held_text = split(load_dataset())[1][0].text
    pairs.append(FeedbackPair("C-held", held_text, "return", "other", None, None))
    report = train(out, pairs)
    assert report.feedback_used == 6 and report.feedback_skipped == 1
    assert report.previous is not None and report.previous_version == current.version
    assert report.switched, report.worse
    retrained = TriageModel.load(out)
    assert retrained.meta["feedback_rows"] == 6
    assert retrained.version != current.version
    assert retrained.suggest(probe).root_cause.value == "pricing"
    assert "“zorblax”" in retrained.suggest(probe).root_cause.reasons


@pytest.mark.slow  # trains the model again (besides the rebuilt fixture)
def test_a_worse_model_is_not_switched_in(rebuilt, tmp_path):
    current_path, _ = rebuilt
    out = tmp_path / "model.joblib"
    out.write_bytes(current_path.read_bytes())
    before = out.read_bytes()
    # Handlers who label everything "other" teach the model badly.
    train_split, _ = split(load_dataset())
    pairs = [FeedbackPair(f"C{n}", e.text + " ", "complaint", "other", None, None)
             for n, e in enumerate(train_split) for _ in range(3)]
    report = train(out, pairs)
    assert not report.switched and "root_cause_accuracy" in report.worse
    assert out.read_bytes() == before
    assert report.candidate_path is not None and report.candidate_path.exists()
    forced = train(out, pairs, force=True)
    assert forced.switched and out.read_bytes() != before


@pytest.mark.slow  # trains the model again (besides the rebuilt fixture)
def test_a_model_file_of_another_format_is_not_trusted(rebuilt, tmp_path, caplog):
    _, model = rebuilt
    old = TriageModel(model.features, model.heads, {**model.meta, "format": 0})
    path = tmp_path / "old.joblib"
    old.save(path)
    loaded = TriageModel.load(path)
    assert "training the shipped data set again in memory" in caplog.text
    assert loaded.meta["format"] == 1
    assert loaded.meta["data_hash"] == data_hash(split(load_dataset())[0])
    assert loaded.suggest("快递箱子被压扁了").root_cause.value == "damaged_in_transit"
