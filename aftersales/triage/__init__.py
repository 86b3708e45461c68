"""Triage: suggested kind, root cause, priority, sentiment and escalation risk from the
customer's words (docs/triage.md). This module stays light: scikit-learn and jieba are
imported by `aftersales.triage.model` only when a model is trained or loaded."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
DATASET = HERE / "data" / "descriptions.jsonl"
SHIPPED_MODEL = HERE / "model" / "triage.joblib"


def model_path(configured: str = "") -> Path:
    """The model file in use: AFTERSALES_TRIAGE_MODEL, or the one the project ships."""
    return Path(configured).expanduser().resolve() if configured else SHIPPED_MODEL
