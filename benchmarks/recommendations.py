"""Recommendation extraction on real reports, beside a keyword baseline, in one run.

    python -m benchmarks.recommendations [--split test|dev|all] [--systems rules,keyword,full]

Gold: the recommendations of the real gold set (``annotations/gold/real.jsonl``) and of the
real reports annotated for recommendations only (``annotations/gold/real_recommendations.jsonl``),
split by report (``split``). Per system it prints detection P/R/F1 over every kind and over the
tracked kinds (imaging, consultation), and on the matched recommendations: kind accuracy,
modality accuracy (the set of acceptable modalities) and body region accuracy on imaging ones,
interval exact match where the gold states one, conditional accuracy and next-step match.
Misses, false hits and attribute errors go to ``--errors`` (TSV) for tuning.

The keyword baseline is what a first attempt looks like: a sentence with "recommend",
"suggest", "advise", "consider" or "follow-up" is a recommendation; its modality is the first
modality word, its interval the first "N days/weeks/months/years".
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.evaluation import GoldRecommendation, GoldReport, load_gold, match_overlapping
from pipelines.pipeline import RadiologyPipeline
from pipelines.recommendations import parse_interval
from pipelines.schema import RecommendationOut

GOLD_DIR = Path(__file__).resolve().parent.parent / "annotations" / "gold"
GOLD_FILES = (GOLD_DIR / "real.jsonl", GOLD_DIR / "real_recommendations.jsonl")
TRACKED_KINDS = frozenset({"imaging", "consultation"})

KEYWORD = re.compile(r"(?i)\b(recommend\w*|suggest\w*|advis\w*|consider|follow[- ]?up)\b")
KEYWORD_MODALITIES = (("CT", r"\bCT\b"), ("MR", r"\bMRI?\b"), ("US", r"ultrasound|\bUS\b"),
                      ("XR", r"x-?ray|radiograph"), ("PT", r"\bPET\b"), ("MG", r"mammogra"))
KEYWORD_REGIONS = ("chest", "abdomen", "pelvis", "head", "neck", "breast")
SENTENCE = re.compile(r"[^.\n]+(?:\.|$)")


def keyword_baseline(text: str) -> list[RecommendationOut]:
    """The keyword-regex baseline's recommendations of one report."""
    found = []
    for match in SENTENCE.finditer(text):
        sentence = match.group(0)
        if not KEYWORD.search(sentence):
            continue
        stripped = sentence.lstrip()
        start = match.start() + len(sentence) - len(stripped)
        modality = next((code for code, pattern in KEYWORD_MODALITIES
                         if re.search(pattern, sentence, re.I)), None)
        region = next((name for name in KEYWORD_REGIONS if name in sentence.lower()), None)
        low, high = parse_interval(sentence)
        found.append(RecommendationOut(
            text=stripped, start=start, end=match.end(), modality=modality,
            body_region=region, interval_min_days=low, interval_max_days=high,
            conditional=bool(re.search(r"(?i)\bif\b", sentence))))
    return found


@dataclass
class Scores:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tracked_tp: int = 0
    tracked_fp: int = 0
    tracked_fn: int = 0
    correct: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    errors: list[tuple[str, str, str, str, str]] = field(default_factory=list)

    def count(self, attribute: str, ok: bool) -> None:
        self.total[attribute] = self.total.get(attribute, 0) + 1
        self.correct[attribute] = self.correct.get(attribute, 0) + ok

    def accuracy(self, attribute: str) -> str:
        total = self.total.get(attribute, 0)
        return f"{self.correct.get(attribute, 0) / total:.3f} ({total})" if total else "n/a"


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


ATTRIBUTES = ("kind", "modality (imaging)", "body region (imaging)", "interval (stated)",
              "conditional", "next step")


def score(reports: Sequence[GoldReport],
          predictions: dict[str, list[RecommendationOut]]) -> Scores:
    scores = Scores()
    for report in reports:
        gold = list(report.recommendations)
        predicted = predictions.get(report.id, [])
        pairs = match_overlapping(gold, predicted)
        scores.tp += len(pairs)
        scores.fn += len(gold) - len(pairs)
        scores.fp += len(predicted) - len(pairs)
        matched_gold = {g for g, _ in pairs}
        matched_pred = {p for _, p in pairs}
        for g, rec in enumerate(gold):
            if g not in matched_gold:
                scores.errors.append((report.id, "missed", rec.kind, "", _text(report, rec)))
        for p, out in enumerate(predicted):
            if p not in matched_pred:
                scores.errors.append((report.id, "false hit", out.kind, "", out.text))
        tracked_gold = [r for r in gold if r.kind in TRACKED_KINDS]
        tracked_pred = [r for r in predicted if r.kind in TRACKED_KINDS]
        tracked_pairs = match_overlapping(tracked_gold, tracked_pred)
        scores.tracked_tp += len(tracked_pairs)
        scores.tracked_fn += len(tracked_gold) - len(tracked_pairs)
        scores.tracked_fp += len(tracked_pred) - len(tracked_pairs)
        for g, p in pairs:
            _score_pair(scores, report, gold[g], predicted[p])
    return scores


def _score_pair(scores: Scores, report: GoldReport, gold: GoldRecommendation,
                pred: RecommendationOut) -> None:
    checks: list[tuple[str, bool, str, str]] = [
        ("kind", gold.kind == pred.kind, gold.kind, pred.kind),
        ("conditional", gold.conditional == pred.conditional, str(gold.conditional),
         str(pred.conditional))]
    if gold.kind == "imaging":
        checks.append(("modality (imaging)", set(gold.modalities) == set(pred.modalities),
                       "/".join(gold.modalities), "/".join(pred.modalities)))
        checks.append(("body region (imaging)", gold.body_region == pred.body_region,
                       str(gold.body_region), str(pred.body_region)))
    if gold.interval_min_days is not None:
        stated = (gold.interval_min_days, gold.interval_max_days)
        found = (pred.interval_min_days, pred.interval_max_days)
        checks.append(("interval (stated)", stated == found, str(stated), str(found)))
    if gold.next_step is not None:
        step = pred.next_step
        got_step: tuple[tuple[str, ...], int | None, int | None] | None = (
            (tuple(step.modalities), step.interval_min_days, step.interval_max_days)
            if step else None)
        checks.append(("next step", got_step == gold.next_step, str(gold.next_step),
                       str(got_step)))
    for attribute, ok, expected, got in checks:
        scores.count(attribute, ok)
        if not ok:
            scores.errors.append((report.id, attribute, expected, got, _text(report, gold)))


def _text(report: GoldReport, rec: GoldRecommendation) -> str:
    return report.text[rec.start:rec.end].replace("\n", " ")


def load_reports(split: str) -> list[GoldReport]:
    reports = []
    for path in GOLD_FILES:
        if path.exists():
            reports += load_gold(path, None if split == "all" else split)
    return reports


def pipeline_system(mode: str) -> Callable[[Sequence[GoldReport]], dict[str, list]]:
    def run(reports: Sequence[GoldReport]) -> dict[str, list]:
        pipeline = RadiologyPipeline.load(mode)
        return {r.id: pipeline.analyze(r.text, r.id).recommendations for r in reports}
    return run


SYSTEMS: dict[str, Callable[[Sequence[GoldReport]], dict[str, list]]] = {
    "rules": pipeline_system("rules"),
    "full": pipeline_system("full"),
    "keyword": lambda reports: {r.id: keyword_baseline(r.text) for r in reports},
}


def format_table(results: dict[str, Scores], reports: int, recommendations: int) -> str:
    names = list(results)
    width = 24
    lines = [f"reports: {reports}, gold recommendations: {recommendations}",
             f"{'':<28}" + "".join(f"{name:>{width}}" for name in names)]

    def row(label: str, cell: Callable[[Scores], str]) -> None:
        lines.append(f"{label:<28}" + "".join(f"{cell(results[n]):>{width}}" for n in names))

    def detection(scores: Scores, key: str) -> tuple[float, float, float]:
        return prf(getattr(scores, key + "tp"), getattr(scores, key + "fp"),
                   getattr(scores, key + "fn"))

    def detection_cell(key: str, index: int) -> Callable[[Scores], str]:
        return lambda scores: f"{detection(scores, key)[index]:.3f}"

    def accuracy_cell(attribute: str) -> Callable[[Scores], str]:
        return lambda scores: scores.accuracy(attribute)

    for label, key in (("detection (all kinds)", ""), ("detection (tracked kinds)", "tracked_")):
        for index, part in enumerate(("P", "R", "F1")):
            row(f"{label} {part}", detection_cell(key, index))
    row("matched", lambda scores: str(scores.tp))
    for attribute in ATTRIBUTES:
        row(attribute, accuracy_cell(attribute))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--split", choices=("test", "dev", "all"), default="test")
    parser.add_argument("--systems", default="rules,keyword",
                        help=f"comma-separated, of {', '.join(SYSTEMS)}")
    parser.add_argument("--errors", type=Path, default=Path("recommendation_errors.tsv"))
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.systems.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown systems {unknown}; choose from {sorted(SYSTEMS)}")
    reports = load_reports(args.split)
    if not reports:
        parser.error(f"no gold reports in {', '.join(map(str, GOLD_FILES))}")
    results = {name: score(reports, SYSTEMS[name](reports)) for name in names}
    print(f"Recommendations, real gold ({args.split} split)")
    print(format_table(results, len(reports), sum(len(r.recommendations) for r in reports)))
    with args.errors.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(("system", "report", "error", "expected", "got", "sentence"))
        for name, result in results.items():
            writer.writerows((name, *error) for error in result.errors)
    print(f"errors: {args.errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
