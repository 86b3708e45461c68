"""`aftersales triage train`: build a model file from the shipped data set, optionally
with the handlers' decisions, score it on the held-out split, and switch it in only if
it is not worse than the model it replaces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from activities.triage.model import (
    Example,
    TriageModel,
    load_dataset,
    split,
)
from workflows.case.vocabulary import KINDS, ROOT_CAUSES

# What "not worse" means when handlers' decisions are trained in: none of these fall.
GUARDED = (("root_cause_accuracy",), ("kind_accuracy",), ("escalation", "recall"),
           ("escalation", "precision"))


@dataclass
class TrainingReport:
    model: TriageModel
    path: Path
    switched: bool
    dataset_rows: int
    train_rows: int
    held_out_rows: int
    feedback_used: int = 0
    feedback_skipped: int = 0
    latency: dict = field(default_factory=dict)
    # The model that was in place, scored on the same held-out split now.
    previous: dict | None = None
    previous_version: str | None = None
    candidate_path: Path | None = None
    worse: list[str] = field(default_factory=list)


def feedback_examples(pairs: Sequence, held_out: Sequence[Example]) -> tuple[list[Example], int]:
    """Handlers' decisions as training examples. A pair whose text is in the held-out split
    is skipped: the figures must stay on data the model never saw."""
    held = {e.text.strip() for e in held_out}
    out: list[Example] = []
    skipped = 0
    for pair in pairs:
        text = (pair.description or "").strip()
        kind = pair.kind if pair.kind in KINDS else None
        cause = pair.root_cause if pair.root_cause in ROOT_CAUSES else None
        if not text or text in held or not (kind or cause):
            skipped += 1
            continue
        out.append(Example(text=text, kind=kind, root_cause=cause, source="feedback"))
    return out, skipped


def train(out: Path, feedback_pairs: Sequence | None = None, current: Path | None = None,
          force: bool = False) -> TrainingReport:
    """Train, score and write the model. With `feedback_pairs` the new model replaces the
    one at `current` (default: `out`) only if it is not worse on any guarded figure, or
    with `force`; otherwise it is written beside it as a candidate."""
    dataset = load_dataset()
    train_split, held_out = split(dataset)
    extra, skipped = feedback_examples(feedback_pairs or [], held_out)
    model = TriageModel.train([*train_split, *extra], held_out, feedback_rows=len(extra))
    report = TrainingReport(
        model=model, path=out, switched=True, dataset_rows=len(dataset),
        train_rows=len(train_split), held_out_rows=len(held_out), feedback_used=len(extra),
        feedback_skipped=skipped,
        latency=model.latency_ms([e.text for e in held_out]),
    )
    model.meta["latency_ms"] = report.latency
    current = current or out
    if current.exists():
        previous = TriageModel.load(current)
        report.previous = previous.evaluate(held_out)
        report.previous_version = previous.version
        if feedback_pairs is not None:
            report.worse = _worse(model.meta["metrics"], report.previous)
    if report.worse and not force:
        report.switched = False
        report.candidate_path = out.with_name(out.stem + ".candidate" + out.suffix)
        model.save(report.candidate_path)
    else:
        model.save(out)
    return report


def _metric(metrics: dict, path: tuple[str, ...]) -> float:
    value: object = metrics
    for key in path:
        value = value[key]  # type: ignore[index]
    return float(value)  # type: ignore[arg-type]


def _worse(new: dict, old: dict) -> list[str]:
    return [".".join(path) for path in GUARDED if _metric(new, path) < _metric(old, path)]


def describe(report: TrainingReport) -> str:
    """The report printed by the command: figures, confusion matrix, comparison, outcome."""
    m = report.model.meta["metrics"]
    esc, rules = m["escalation"], m["escalation_rules_only"]
    lines = [
        f"data set: {report.dataset_rows} descriptions; training {report.train_rows}, "
        f"held out {report.held_out_rows} (split {report.model.meta['split_seed']})",
    ]
    if report.feedback_used or report.feedback_skipped:
        lines.append(f"handler feedback: {report.feedback_used} pairs trained in, "
                     f"{report.feedback_skipped} skipped (empty, unknown labels, or text in "
                     "the held-out split)")
    lines += [
        f"model {report.model.version} (data sha256 {report.model.meta['data_hash'][:16]}…)",
        "held-out figures:",
        f"  kind accuracy            {m['kind_accuracy']:.1%}",
        f"  root cause top-1         {m['root_cause_accuracy']:.1%}   "
        f"top-2 {m['root_cause_top2']:.1%}",
        f"  sentiment accuracy       {m['sentiment_accuracy']:.1%}",
        f"  priority accuracy        {m['priority_accuracy']:.1%}",
        f"  escalation risk          precision {esc['precision']:.1%}  recall "
        f"{esc['recall']:.1%}  ({esc['tp']} of {esc['positives']} found, {esc['fp']} false)",
        f"  escalation, rules alone  precision {rules['precision']:.1%}  recall "
        f"{rules['recall']:.1%}",
        f"  prediction latency       p50 {report.latency['p50']} ms  p95 "
        f"{report.latency['p95']} ms  max {report.latency['max']} ms "
        f"({report.latency['n']} predictions)",
        "root-cause confusion (rows: handler's label, columns: model):",
        *confusion_lines(m["confusion"]["root_cause"]),
        "kind confusion (rows: handler's label, columns: model):",
        *confusion_lines(m["confusion"]["kind"]),
    ]
    if report.previous is not None:
        p = report.previous
        lines.append(f"compared with the model in place ({report.previous_version}) on the "
                     "same held-out split:")
        for path in GUARDED:
            name = ".".join(path)
            lines.append(f"  {name:<24} {_metric(p, path):.1%} → "
                         f"{_metric(m, path):.1%}")
    if report.switched:
        lines.append(f"wrote {report.path}")
    else:
        lines.append(f"NOT switched in: worse on {', '.join(report.worse)}; the model in place "
                     f"stays. The candidate is at {report.candidate_path} (--force to switch "
                     "anyway).")
    return "\n".join(lines)


def confusion_lines(confusion: dict) -> list[str]:
    labels = confusion["labels"]
    short = [label[:6] for label in labels]
    lines = ["  " + " " * 22 + " ".join(f"{s:>6}" for s in short)]
    for label, row in zip(labels, confusion["matrix"], strict=True):
        lines.append(f"  {label:<22}" + " ".join(f"{n:>6}" for n in row))
    return lines
