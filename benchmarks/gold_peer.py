"""Gold-set comparison, side by side in one run: our rules mode, our full mode (transformer
models, fp32 and dynamic int8; and its assertion step as ConText alone or the classifier alone,
against their combination) and medspaCy's default pipeline with our lexicon.

All are scored with ``pipelines.evaluation.evaluate`` and timed over the same reports.
medspaCy returns findings only, so its ANATOMY, MEASUREMENT and RECOMMENDATION rows are zero by
construction; compare FINDING and the assertion scores.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import System, run_system
from pipelines.evaluation import ASSERTIONS, EvaluationResult, evaluate, format_report, load_gold
from pipelines.pipeline import RadiologyPipeline, ReportInput
from pipelines.schema import ReportAnalysis

DEFAULT_GOLD = Path(__file__).resolve().parents[1] / "annotations" / "gold" / "gold.jsonl"


def summary_table(names: Sequence[str], results: Sequence[EvaluationResult],
                  seconds: Sequence[float] | None = None) -> str:
    """The FINDING and assertion numbers (and speed) of several systems side by side."""
    rows: list[tuple[str, list[str]]] = [] if seconds is None else [
        ("reports/s (end to end)", [f"{r.reports / s:.1f}" for r, s in zip(results, seconds,
                                                                           strict=True)])]
    rows += [
        ("FINDING exact F1", [f"{r.exact['FINDING'].f1:.3f}" for r in results]),
        ("FINDING overlap P", [f"{r.overlap['FINDING'].precision:.3f}" for r in results]),
        ("FINDING overlap R", [f"{r.overlap['FINDING'].recall:.3f}" for r in results]),
        ("FINDING overlap F1", [f"{r.overlap['FINDING'].f1:.3f}" for r in results]),
        ("assertion matched findings",
         [str(sum(r.assertion_confusion.values())) for r in results]),
        ("assertion accuracy", [f"{r.assertion_accuracy:.3f}" for r in results]),
        ("assertion macro F1", [f"{r.assertion_macro_f1:.3f}" for r in results]),
    ]
    for label in ASSERTIONS:
        rows.append((f"  {label} F1 (matched)",
                     [f"{r.assertion_class_prf()[label].f1:.3f}" for r in results]))
        rows.append((f"  {label} F1 (end to end)",
                     [f"{r.assertion_end_to_end[label].f1:.3f}" for r in results]))
    lines = [f"{'':<30}" + "".join(f"{n:>24}" for n in names)]
    lines += [f"{label:<30}" + "".join(f"{v:>24}" for v in values) for label, values in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("gold", nargs="?", type=Path, default=DEFAULT_GOLD,
                        help="gold JSON Lines file")
    parser.add_argument("--split", default=None, help="score only this split (e.g. test)")
    parser.add_argument("--rules-only", action="store_true",
                        help="leave out the full (transformer) mode")
    args = parser.parse_args(argv)
    if not args.gold.is_file():
        parser.error(f"{args.gold}: no such gold file")
    gold = load_gold(args.gold, split=args.split)
    if not gold:
        parser.error(f"{args.gold}: no reports" + (f" in split {args.split!r}" if args.split
                                                  else ""))

    from benchmarks.peers import MedspacyPeer

    systems: dict[str, System] = {"ours (rules)": RadiologyPipeline.load("rules")}
    if not args.rules_only:
        systems["ours (full, fp32)"] = RadiologyPipeline.load("full")
        systems["ours (full, int8)"] = RadiologyPipeline.load("full", config={
            "radnlp_transformer_ner": {"precision": "int8"},
            "radnlp_assertion_model": {"precision": "int8"}})
        for policy, label in (("context", "ConText only"), ("model", "classifier only")):
            systems[f"full, {label}"] = RadiologyPipeline.load("full", config={
                "radnlp_assertion_model": {"policy": policy}})
    systems["medspaCy default"] = MedspacyPeer()
    inputs = [ReportInput(g.id, g.text) for g in gold]
    results, seconds = [], []
    for name, system in systems.items():
        run_system(system, inputs[:2])  # warm-up: model loading is not timed
        started = time.perf_counter()
        outcome = run_system(system, inputs)
        seconds.append(time.perf_counter() - started)
        predictions = {i: r for i, r in outcome.results.items() if isinstance(r, ReportAnalysis)}
        results.append(evaluate(gold, predictions))
        print(format_report(results[-1], title=f"== {name} ({args.gold.name}"
                            f"{', split ' + args.split if args.split else ''}; "
                            f"errors {outcome.errors}) =="))
        print()
    print(summary_table(list(systems), results, seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
