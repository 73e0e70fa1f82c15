"""Retraining from accepted annotations: a new model version with its lineage and data snapshot.

Training data: every report of the annotations export (the gold JSON Lines form, any split) plus
the gold ``dev`` split, and silver labels when ``data_dir`` holds the CMC files. The gold
``test`` split is held out: it is only evaluated on, and an export that contains one of its
reports is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotations.registry import metrics_summary
from pipelines.evaluation import GoldReport, load_gold

if TYPE_CHECKING:
    from pipelines.training import TrainConfig

TRAIN_SPLIT, TEST_SPLIT = "dev", "test"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _counts(reports: list[GoldReport]) -> dict[str, Any]:
    spans: dict[str, int] = {}
    for report in reports:
        for span in report.spans:
            spans[span.label] = spans.get(span.label, 0) + 1
    return {"reports": len(reports), "spans": sum(spans.values()), "spans_by_label": spans,
            "recommendations": sum(len(r.recommendations) for r in reports)}


def data_snapshot(annotations_path: Path, gold_path: Path) -> dict[str, Any]:
    """What a version was trained and tested on: file hashes and report/span counts."""
    return {
        "annotations": {"path": str(annotations_path), "sha256": file_sha256(annotations_path),
                        **_counts(load_gold(annotations_path))},
        "gold": {"path": str(gold_path), "sha256": file_sha256(gold_path),
                 "train_split": TRAIN_SPLIT,
                 "train": _counts(load_gold(gold_path, split=TRAIN_SPLIT)),
                 "test_split": TEST_SPLIT,
                 "test": _counts(load_gold(gold_path, split=TEST_SPLIT))},
    }


def _check_held_out(annotated: list[GoldReport], test: list[GoldReport]) -> None:
    test_ids = {r.id for r in test}
    test_texts = {r.text.strip() for r in test}
    leaked = [r.id for r in annotated if r.id in test_ids or r.text.strip() in test_texts]
    if leaked:
        raise ValueError(f"{len(leaked)} annotated report(s) are in the gold {TEST_SPLIT} split, "
                         f"which is never trained on: {leaked[:5]}")


def train_from_annotations(*, annotations_path: Path, gold_path: Path, out_dir: Path,
                           version: str, parent: str | None, config: TrainConfig,
                           data_dir: Path | None = None, gold_weight: int = 3) -> dict[str, Any]:
    """Train a model version from the accepted annotations plus the gold dev split, evaluate it
    on the gold test split, and write its folder (overlays, ``card.json``, ``MODEL_CARD.md``).
    Returns the card."""
    from pipelines.models import CARD_JSON
    from pipelines.training import model_card_markdown, train_model_version

    annotated = load_gold(annotations_path)  # checks every span's offsets
    if not annotated:
        raise ValueError(f"No annotated reports in {annotations_path}")
    test = load_gold(gold_path, split=TEST_SPLIT)
    if not test:
        raise ValueError(f"No {TEST_SPLIT} split in {gold_path}: nothing to evaluate on")
    _check_held_out(annotated, test)
    # Hashed before training, so the card names the bytes that were read.
    snapshot = data_snapshot(annotations_path, gold_path)
    card = train_model_version(gold_path=gold_path, data_dir=data_dir, out_dir=out_dir,
                               version=version, config=config, gold_weight=gold_weight,
                               extra_gold_paths=[annotations_path])
    card["parent"] = parent
    card["data"]["snapshot"] = snapshot
    card["settings"] = {**asdict(config), "gold_weight": gold_weight,
                        "silver": card["data"]["silver_reports"] > 0}
    card["test_metrics"] = {"split": TEST_SPLIT,
                            "full": metrics_summary(card["metrics"].get("full")),
                            "rules": metrics_summary(card["metrics"].get("rules"))}
    (out_dir / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n")
    (out_dir / "MODEL_CARD.md").write_text(model_card_markdown(card) + lineage_markdown(card))
    return card


def lineage_markdown(card: dict[str, Any]) -> str:
    """The card's parent and data snapshot, as a Markdown section."""
    snapshot = card["data"]["snapshot"]
    annotations, gold = snapshot["annotations"], snapshot["gold"]
    return "\n".join([
        "", "## Lineage", f"- Parent version: {card.get('parent') or 'none'}",
        f"- Annotations: {annotations['path']} (sha256 {annotations['sha256']}), "
        f"{annotations['reports']} reports, {annotations['spans']} spans",
        f"- Gold: {gold['path']} (sha256 {gold['sha256']}), split {gold['train_split']}: "
        f"{gold['train']['reports']} reports, {gold['train']['spans']} spans trained on; split "
        f"{gold['test_split']}: {gold['test']['reports']} reports held out", "",
    ])
