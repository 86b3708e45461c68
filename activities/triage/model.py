"""The triage model: word and character n-grams into one linear classifier per question
(kind, root cause, sentiment, priority, escalation risk), with the escalation rules on top.

Training is deterministic: the same data gives the same split and the same model. The
held-out split is about a quarter of the data, chosen by a hash of each text, so adding
data never moves an old example between training and held-out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from activities.triage import DATASET, SHIPPED_MODEL
from activities.triage.rules import escalation_signals
from activities.triage.text import check_script, normalise, word_features
from workflows.case.contracts import EscalationRisk, Suggestion, Triage
from workflows.case.vocabulary import KINDS, PRIORITIES, ROOT_CAUSES, raise_priority

log = logging.getLogger("aftersales.triage")

FORMAT = 1
SPLIT_SEED = "aftersales-triage-split-1"
HELD_OUT_EVERY = 4  # about one in four is held out
SENTIMENTS = ("negative", "neutral", "positive")
HEADS = ("kind", "root_cause", "sentiment", "priority", "escalation")
MAX_REASONS = 4
# Below this root-cause confidence the answer is flagged low_confidence.
LOW_CONFIDENCE = 0.3
# Less than this share of the letters in Han or Latin script: not a text we can read.
MIN_SUPPORTED_SHARE = 0.6


@dataclass(frozen=True)
class Example:
    """One labelled description. Feedback pairs from handlers carry only kind and root
    cause; the other labels are None and those heads do not learn from them."""

    text: str
    kind: str | None
    root_cause: str | None
    sentiment: str | None = None
    priority: str | None = None
    escalation: bool | None = None
    source: str = "dataset"

    def label(self, head: str) -> Any:
        return getattr(self, head)


def load_dataset(path: Path = DATASET) -> list[Example]:
    """The shipped, hand-labelled data set (docs/triage.md describes it)."""
    examples = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            example = Example(text=row["text"], kind=row["kind"], root_cause=row["root_cause"],
                              sentiment=row["sentiment"], priority=row["priority"],
                              escalation=bool(row["escalation"]))
            _check_labels(example, f"{path.name}:{number}")
            examples.append(example)
    return examples


def _check_labels(ex: Example, where: str) -> None:
    for head, allowed in (("kind", KINDS), ("root_cause", ROOT_CAUSES),
                          ("sentiment", (*SENTIMENTS, None)), ("priority", (*PRIORITIES, None))):
        if ex.label(head) not in allowed:
            raise ValueError(f"{where}: {head} {ex.label(head)!r} is not one of {allowed}")


def split(examples: Sequence[Example]) -> tuple[list[Example], list[Example]]:
    """(training, held-out). An example is held out when the hash of its text says so
    (one in four), so the split never depends on the order or on the other examples:
    adding data never moves an old example between training and held-out."""
    train: list[Example] = []
    held: list[Example] = []
    for ex in examples:
        (held if is_held_out(ex.text) else train).append(ex)
    return train, held


def is_held_out(text: str) -> bool:
    return int(_digest(SPLIT_SEED + text.strip()), 16) % HELD_OUT_EVERY == 0


def data_hash(examples: Iterable[Example]) -> str:
    """sha256 of the training examples, in order: which data a model file was built from."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(json.dumps(asdict(ex), ensure_ascii=False, sort_keys=True).encode())
    return digest.hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _features() -> FeatureUnion:
    # Words and cue concepts carry the meaning (压扁, refund, @crushed, 12315); character
    # n-grams, weighted down, catch what the segmenter splits oddly and English
    # inflections. The weights were chosen by 5-fold cross-validation on the training
    # split only (docs/triage.md).
    return FeatureUnion([
        ("w", TfidfVectorizer(analyzer=word_features, sublinear_tf=True)),
        ("c", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True,
                              max_features=40000)),
    ], transformer_weights={"w": 1.0, "c": 0.3})


def _classifier(head: str) -> LogisticRegression:
    balanced = head in ("escalation", "priority", "sentiment")
    return LogisticRegression(C=20.0, max_iter=5000,
                              class_weight="balanced" if balanced else None)


class TriageModel:
    """A trained model: the features, one classifier per head, and what it was built from."""

    def __init__(self, features: FeatureUnion, heads: dict[str, LogisticRegression],
                 meta: dict) -> None:
        self.features = features
        self.heads = heads
        self.meta = meta
        names = features.get_feature_names_out()
        self._names = [_readable(str(n)) for n in names]

    @property
    def version(self) -> str:
        return str(self.meta.get("version", ""))

    # ------------------------------------------------------------ training

    @classmethod
    def train(cls, examples: Sequence[Example], held_out: Sequence[Example] = (),
              feedback_rows: int = 0) -> TriageModel:
        """Fit on `examples`; `held_out` (never seen in fitting) gives the metrics."""
        texts = [normalise(e.text) for e in examples]
        features = _features()
        matrix = features.fit_transform(texts)
        heads: dict[str, LogisticRegression] = {}
        for head in HEADS:
            rows = [i for i, e in enumerate(examples) if e.label(head) is not None]
            labels = [_as_label(examples[i].label(head)) for i in rows]
            heads[head] = _classifier(head).fit(matrix[rows], labels)
        hashed = data_hash(examples)
        trained_at = datetime.now(UTC).replace(microsecond=0)
        meta = {
            "format": FORMAT,
            "version": f"{trained_at:%Y%m%d}-{hashed[:8]}",
            "trained_at": trained_at.isoformat().replace("+00:00", "Z"),
            "data_hash": hashed,
            "train_rows": len(examples),
            "feedback_rows": feedback_rows,
            "held_out_rows": len(held_out),
            "split_seed": SPLIT_SEED,
            "sklearn": sklearn.__version__,
        }
        model = cls(features, heads, meta)
        if held_out:
            model.meta["metrics"] = model.evaluate(held_out)
        return model

    # ------------------------------------------------------------ prediction

    def suggest(self, description: str, channel: str = "") -> Triage:
        """Suggestions for one description; never raises on odd text (low confidence).
        `channel` is accepted for a later model; this one reads only the text."""
        started = time.perf_counter()
        text = normalise(description)
        script = check_script(text)
        notes: list[str] = []
        damp = 1.0
        if script.letters == 0:
            notes.append("no words to read: only digits, symbols or emoji")
            damp = 0.0
        elif script.supported_share < MIN_SUPPORTED_SHARE:
            notes.append(f"mostly in a script the model was not trained on "
                         f"({script.supported_share:.0%} Chinese or Latin letters)")
            damp = script.supported_share
        row = self.features.transform([text])
        if row.nnz == 0:
            notes.append("no word the model knows")
            damp = 0.0
        picks = {head: self._pick(head, row) for head in ("kind", "root_cause", "sentiment",
                                                          "priority")}
        suggestions = {head: Suggestion(value, round(conf * damp, 3), reasons)
                       for head, (value, conf, reasons) in picks.items()}
        escalation = self._escalation(description, row, damp)
        if escalation.value and PRIORITIES.index(suggestions["priority"].value) > 1:
            raised = suggestions["priority"]
            suggestions["priority"] = Suggestion(
                raise_priority(raised.value, PRIORITIES.index(raised.value) - 1),
                raised.confidence, [*raised.reasons, "escalation risk: at least P2"])
        low = bool(notes) or suggestions["root_cause"].confidence < LOW_CONFIDENCE
        if suggestions["root_cause"].confidence < LOW_CONFIDENCE and not notes:
            notes.append("the model is unsure: a handler should choose")
        reasons: list[str] = []
        for reason in [*escalation.reasons, *suggestions["root_cause"].reasons,
                       *suggestions["kind"].reasons]:
            if reason not in reasons:
                reasons.append(reason)
        return Triage(
            kind=suggestions["kind"], root_cause=suggestions["root_cause"],
            priority=suggestions["priority"], sentiment=suggestions["sentiment"],
            escalation_risk=escalation, reasons=reasons[:6], low_confidence=low, notes=notes,
            model_version=self.version,
            elapsed_ms=round((time.perf_counter() - started) * 1000, 2),
        )

    def _pick(self, head: str, row) -> tuple[str, float, list[str]]:
        clf = self.heads[head]
        proba = clf.predict_proba(row)[0]
        best = int(np.argmax(proba))
        return str(clf.classes_[best]), float(proba[best]), self._reasons(clf, row, best)

    def _escalation(self, description: str, row, damp: float) -> EscalationRisk:
        clf = self.heads["escalation"]
        classes = list(clf.classes_)
        p = float(clf.predict_proba(row)[0][classes.index("true")])
        fired = escalation_signals(description)
        reasons = [f"rule: {name}" for name in fired]
        if fired:
            # A threat is a threat in any text around it.
            return EscalationRisk(True, round(max(p * damp, 0.95), 3),
                                  reasons + self._reasons(clf, row, classes.index("true"))[:2])
        if p * damp >= 0.5:
            return EscalationRisk(True, round(p * damp, 3),
                                  self._reasons(clf, row, classes.index("true")))
        return EscalationRisk(False, round((1 - p) * damp, 3), [])

    def _reasons(self, clf: LogisticRegression, row, class_index: int) -> list[str]:
        """The features of this text that pushed hardest towards the chosen class."""
        coef = clf.coef_[0] if clf.coef_.shape[0] == 1 else clf.coef_[class_index]
        sign = -1.0 if clf.coef_.shape[0] == 1 and class_index == 0 else 1.0
        contributions = [(sign * coef[j] * v, j) for j, v in zip(row.indices, row.data,
                                                                   strict=True)]
        contributions.sort(reverse=True)
        out: list[str] = []
        for weight, j in contributions:
            if weight <= 0 or len(out) == MAX_REASONS:
                break
            name = self._names[j]
            if name is None or any(name in seen or seen in name for seen in out):
                continue
            out.append(name)
        return out

    # ------------------------------------------------------------ evaluation

    def evaluate(self, held_out: Sequence[Example]) -> dict:
        """Scores on examples the model never saw; the figures of docs/triage.md."""
        results = [self.suggest(e.text) for e in held_out]
        metrics: dict[str, Any] = {"rows": len(held_out)}
        for head in ("kind", "root_cause", "sentiment", "priority"):
            pairs = [(e.label(head), getattr(r, head).value)
                     for e, r in zip(held_out, results, strict=True) if e.label(head)]
            metrics[f"{head}_accuracy"] = _ratio(sum(a == b for a, b in pairs), len(pairs))
        metrics["root_cause_top2"] = self._top_k(held_out, "root_cause", 2)
        truth = [bool(e.escalation) for e in held_out if e.escalation is not None]
        combined = [r.escalation_risk.value
                    for e, r in zip(held_out, results, strict=True) if e.escalation is not None]
        rules = [bool(escalation_signals(e.text)) for e in held_out if e.escalation is not None]
        metrics["escalation"] = _binary(truth, combined)
        metrics["escalation_rules_only"] = _binary(truth, rules)
        metrics["confusion"] = {
            head: _confusion([e.label(head) for e in held_out],
                             [getattr(r, head).value for r in results], labels)
            for head, labels in (("kind", KINDS), ("root_cause", ROOT_CAUSES))
        }
        return metrics

    def _top_k(self, held_out: Sequence[Example], head: str, k: int) -> float:
        clf = self.heads[head]
        proba = clf.predict_proba(self.features.transform([normalise(e.text)
                                                           for e in held_out]))
        hits = 0
        for e, p in zip(held_out, proba, strict=True):
            top = [clf.classes_[i] for i in np.argsort(p)[::-1][:k]]
            hits += e.label(head) in top
        return _ratio(hits, len(held_out))

    def latency_ms(self, texts: Sequence[str], rounds: int = 3) -> dict:
        """Wall time of `suggest` per description: p50, p95 and max in milliseconds."""
        self.suggest(texts[0])  # warm: jieba's dictionary, numpy's first calls
        times = []
        for _ in range(rounds):
            for text in texts:
                started = time.perf_counter()
                self.suggest(text)
                times.append((time.perf_counter() - started) * 1000)
        times.sort()
        return {"p50": round(times[len(times) // 2], 2),
                "p95": round(times[int(len(times) * 0.95) - 1], 2),
                "max": round(times[-1], 2), "n": len(times)}

    # ------------------------------------------------------------ files

    def save(self, path: Path) -> None:
        """Write the model file (written aside, then moved into place)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        joblib.dump({"meta": self.meta, "features": self.features, "heads": self.heads},
                    partial, compress=3)
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> TriageModel:
        """Read a model file. One built by another scikit-learn version is not trusted:
        the shipped data set is trained again in memory instead, and a warning logged."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                stored = joblib.load(path)
            except ModuleNotFoundError as err:
                # A file written when this package lived elsewhere (aftersales.triage).
                log.warning("triage model %s names a module that has moved (%s)", path, err)
                stored = {}
        mismatch = [w for w in caught if w.category.__name__ == "InconsistentVersionWarning"]
        meta = stored.get("meta", {}) if isinstance(stored, dict) else {}
        if mismatch or meta.get("format") != FORMAT:
            log.warning("triage model %s was built with scikit-learn %s (format %s); this is "
                        "%s: training the shipped data set again in memory. Run `aftersales "
                        "triage train` to write a new file.", path, meta.get("sklearn"),
                        meta.get("format"), sklearn.__version__)
            train, held = split(load_dataset())
            return cls.train(train, held)
        return cls(stored["features"], stored["heads"], meta)


def _as_label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# Words too common to explain anything to a handler.
FUNCTION_WORDS = frozenset(
    "a an the this that is are was i i'm m my me it its and or but to of in on at for with "
    "be been have has had just so s t you your we our".split()
    + "你们 我们 他们 已经 时候 一下 这个 那个 什么 因为 所以 但是 就是 还是 可以 现在".split()
    + list("了的被是我想不就都也在吗呢吧啊你们他她它这那有和很还要再去把给让从对向"))


def _readable(feature: str) -> str | None:
    """How a feature reads as a reason: 'w__压扁' → '“压扁”', 'w__@crushed' → 'cue:
    crushed'; None for character fragments and function words, which explain nothing."""
    source, _, name = feature.partition("__")
    name = name.strip()
    if source != "w" or not name:
        return None
    if name.startswith("@"):
        return f"cue: {name[1:].replace('_', ' ')}"
    if all(part in FUNCTION_WORDS for part in name.split()):
        return None
    return f"“{name}”"


def _ratio(part: float, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _binary(truth: Sequence[bool], predicted: Sequence[bool]) -> dict:
    tp = sum(t and p for t, p in zip(truth, predicted, strict=True))
    fp = sum(p and not t for t, p in zip(truth, predicted, strict=True))
    fn = sum(t and not p for t, p in zip(truth, predicted, strict=True))
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    return {"precision": precision, "recall": recall, "tp": tp, "fp": fp, "fn": fn,
            "positives": tp + fn}


def _confusion(truth: Sequence[str], predicted: Sequence[str],
               labels: Sequence[str]) -> dict:
    """{"labels": [...], "matrix": rows = truth, columns = prediction}."""
    index = {label: n for n, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for t, p in zip(truth, predicted, strict=True):
        matrix[index[t]][index[p]] += 1
    return {"labels": list(labels), "matrix": matrix}


_loaded: dict[Path, TriageModel] = {}
_loading = threading.Lock()


def shared_model(path: Path = SHIPPED_MODEL) -> TriageModel:
    """This process's model for `path`, loaded (and jieba's dictionary read) once."""
    with _loading:
        model = _loaded.get(path)
        if model is None:
            model = _loaded[path] = TriageModel.load(path)
            model.suggest("warm up 预热")
        return model
