"""Active-learning learning curve: how good a model do k annotated reports buy, chosen by model
uncertainty or at random?

Pool: the gold dev split (the reports an annotator would label); evaluation: the gold test split,
in full mode. Each k trains a fresh small model with ``train_from_annotations`` on the k chosen
reports alone (no gold dev reports beyond them, no silver data). Both strategies start from the
same seeded random seed set (the first size). The uncertainty strategy then grows its set
round by round: the model trained on the current set analyses the rest of the pool, and the
most uncertain reports (``annotations.active_learning``) are added. The random strategy adds
the next reports of one seeded shuffle. Identical sets (the seed set, the whole pool) are
trained once.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from annotations.active_learning import order_by_uncertainty
from annotations.training import TEST_SPLIT, TRAIN_SPLIT, train_from_annotations
from pipelines.pipeline import RadiologyPipeline, ReportInput
from pipelines.schema import ReportAnalysis

DEFAULT_GOLD = Path(__file__).resolve().parents[1] / "annotations" / "gold" / "gold.jsonl"
STRATEGIES = ("random", "uncertainty")


def _sizes(value: str) -> list[int]:
    sizes = sorted({int(part) for part in value.split(",") if part.strip()})
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive integers, got {value!r}")
    return sizes


class Curve:
    """Trains (once per distinct report set) and scores the models of a learning curve."""

    def __init__(self, lines: dict[str, str], work: Path, heldout: Path, config: Any,
                 weight: int) -> None:
        self.lines, self.work, self.heldout = lines, work, heldout
        self.config, self.weight = config, weight
        self.trained: dict[frozenset[str], tuple[Path, dict[str, Any]]] = {}

    def train(self, ids: Sequence[str]) -> tuple[Path, dict[str, Any]]:
        key = frozenset(ids)
        if key not in self.trained:
            number = len(self.trained) + 1
            annotations = self.work / f"annotated-{number}.jsonl"
            annotations.write_text("".join(self.lines[i] + "\n" for i in ids))
            folder = self.work / f"model-{number}"
            started = time.perf_counter()
            card = train_from_annotations(
                annotations_path=annotations, gold_path=self.heldout, out_dir=folder,
                version=f"al-{number}", parent=None, config=self.config,
                gold_weight=self.weight)
            print(f"  trained on {len(ids)} reports in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)
            self.trained[key] = (folder, card)
        return self.trained[key]

    def most_uncertain(self, folder: Path, candidates: list[str], count: int,
                       texts: dict[str, str]) -> list[str]:
        pipeline = RadiologyPipeline.load("full", model=str(folder))
        analyses = [a for a in pipeline.analyze_stream(ReportInput(i, texts[i])
                                                       for i in candidates)
                    if isinstance(a, ReportAnalysis)]
        return order_by_uncertainty(analyses)[:count]


def run(gold: Path, sizes: list[int], config: Any, seed: int, weight: int,
        work: Path) -> dict[str, list[dict[str, Any]]]:
    """The learning curve rows of each strategy: size, FINDING overlap F1, assertion accuracy."""
    raw = [line for line in gold.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in raw]
    lines = {r["id"]: line for r, line in zip(records, raw, strict=True)}
    pool = [r["id"] for r in records if r.get("split") == TRAIN_SPLIT]
    texts = {r["id"]: r["text"] for r in records}
    sizes = [k for k in sizes if k <= len(pool)]
    if not sizes:
        raise ValueError(f"every size exceeds the pool of {len(pool)} reports")
    heldout = work / "heldout.jsonl"
    heldout.write_text("".join(line + "\n" for r, line in zip(records, raw, strict=True)
                               if r.get("split") == TEST_SPLIT))
    shuffled = pool[:]
    random.Random(seed).shuffle(shuffled)
    curve = Curve(lines, work, heldout, config, weight)
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in STRATEGIES}
    chosen = shuffled[:sizes[0]]
    for k in sizes:
        random_ids = shuffled[:k]
        if len(chosen) < k:
            folder, _ = curve.train(chosen)
            rest = [i for i in shuffled if i not in set(chosen)]
            chosen = chosen + curve.most_uncertain(folder, rest, k - len(chosen), texts)
        for strategy, ids in (("random", random_ids), ("uncertainty", chosen)):
            _, card = curve.train(ids)
            summary = card["test_metrics"]
            rows[strategy].append({
                "k": k, "finding_f1": summary["full"]["finding_f1_overlap"],
                "assertion_accuracy": summary["full"]["assertion_accuracy"],
                "rules_finding_f1": summary["rules"]["finding_f1_overlap"],
                "rules_assertion_accuracy": summary["rules"]["assertion_accuracy"],
                "trained_findings": card["data"]["snapshot"]["annotations"]["spans_by_label"]
                .get("FINDING", 0)})
    return rows


def format_table(rows: dict[str, list[dict[str, Any]]]) -> str:
    """Both strategies side by side, one line per size."""
    header = (f"{'k':>4} | {'FINDING overlap F1':^23} | {'assertion accuracy':^23} | "
              f"{'findings trained on':^21}")
    sub = f"{'':>4} | {'random':>11} {'uncertain':>11} | {'random':>11} {'uncertain':>11} | " \
          f"{'random':>10} {'uncertain':>10}"
    lines = [header, sub, "-" * len(sub)]
    for rnd, unc in zip(rows["random"], rows["uncertainty"], strict=True):
        lines.append(f"{rnd['k']:>4} | {rnd['finding_f1']:>11.3f} {unc['finding_f1']:>11.3f} | "
                     f"{rnd['assertion_accuracy']:>11.3f} {unc['assertion_accuracy']:>11.3f} | "
                     f"{rnd['trained_findings']:>10} {unc['trained_findings']:>10}")
    first = rows["random"][0]
    lines.append(f"rules mode alone: FINDING overlap F1 {first['rules_finding_f1']:.3f}, "
                 f"assertion accuracy {first['rules_assertion_accuracy']:.3f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from pipelines.training import TrainConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("gold", nargs="?", type=Path, default=DEFAULT_GOLD,
                        help="gold JSON Lines file (dev split = pool, test split = evaluation)")
    parser.add_argument("--sizes", type=_sizes, default=[10, 20, 40, 80],
                        help="comma-separated numbers of annotated reports (default 10,20,40,80)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--trainable-layers", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--weight", type=int, default=1,
                        help="times each annotated report is repeated per epoch")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the trained models in this folder (default: a temporary one)")
    args = parser.parse_args(argv)
    if not args.gold.is_file():
        print(f"error: no gold file at {args.gold}", file=sys.stderr)
        return 2
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size,
                         trainable_layers=args.trainable_layers, max_length=args.max_length,
                         seed=args.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="radnlp-al-") as temporary:
        work = args.keep or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        rows = run(args.gold, args.sizes, config, args.seed, args.weight, work)
    print(f"Active learning on {args.gold.name}: pool split {TRAIN_SPLIT}, evaluated on split "
          f"{TEST_SPLIT} (full mode); epochs {args.epochs}, trainable layers "
          f"{args.trainable_layers}, max length {args.max_length}, batch {args.batch_size}, "
          f"weight {args.weight}, seed {args.seed}")
    print(format_table(rows))
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
