"""Open-i chest X-ray benchmark: report-level 14-label scores of full mode, rules mode and medspaCy.

Reference: ``labels14.csv`` of ``openi_dev`` (the NegBio labels published with ChestX-ray14), one
row per report. The map from lexicon concepts to the labels is data
(``benchmarks/resources/openi_labels.json``, a line of rationale per label).

Decision rule, identical for every system: a report carries a label when a finding whose concept
maps to the label is asserted ``present`` (and, under the "possible as positive" policy, also
``possible``), is neither historical nor hypothetical, and starts in the findings or impression
(at or after ``body_start``: the indication and comparison are the reason for the exam and its
priors). Hernia has no positive in the development half and is not scored; the other 13 are.

Every false positive and negative of our two modes goes to ``--errors`` (TSV) with its cause and
the sentence behind it, so tuning follows evidence.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import RunOutcome, System, finding_concept_id, run_system
from pipelines.corpora import DEFAULT_DATA_DIR, OPENI_DIR, OpenIReport, read_openi
from pipelines.evaluation import PRF
from pipelines.pipeline import ReportInput
from pipelines.schema import FindingOut, ReportAnalysis
from terminology import load_lexicon

LABEL_MAP_FILE = Path(__file__).parent / "resources" / "openi_labels.json"
POLICIES = {"possible as negative": ("present",), "possible as positive": ("present", "possible")}
PRIMARY_POLICY = "possible as negative"


@dataclass(frozen=True)
class LabelMapping:
    label: str
    concepts: tuple[str, ...]
    rationale: str


def load_label_map(path: str | Path = LABEL_MAP_FILE) -> dict[str, LabelMapping]:
    """The label map, checked: every concept must be a finding of the shipped lexicon."""
    data = json.loads(Path(path).read_text())
    lexicon = load_lexicon()
    mappings = {}
    for label, entry in data["labels"].items():
        if not entry.get("rationale"):
            raise ValueError(f"{path}: label {label!r} has no rationale")
        for concept_id in entry["concepts"]:
            try:
                kind = lexicon.get(concept_id).kind
            except KeyError:
                raise ValueError(f"{path}: label {label!r} names unknown concept "
                                 f"{concept_id!r}") from None
            if kind != "finding":
                raise ValueError(f"{path}: {concept_id!r} is a {kind}, not a finding")
        mappings[label] = LabelMapping(label, tuple(entry["concepts"]), entry["rationale"])
    return mappings


def labels_of(finding: FindingOut, mappings: dict[str, LabelMapping]) -> set[str]:
    concept_id = finding_concept_id(finding)
    if concept_id is None:
        return set()
    return {m.label for m in mappings.values() if concept_id in m.concepts}


def counts(finding: FindingOut, body_start: int, assertions: Sequence[str]) -> bool:
    """The decision rule (see the module docstring)."""
    return (finding.assertion in assertions and not finding.historical
            and not finding.hypothetical and finding.start >= body_start)


def predicted_labels(analysis: ReportAnalysis, report: OpenIReport,
                     mappings: dict[str, LabelMapping], assertions: Sequence[str]) -> set[str]:
    labels: set[str] = set()
    for finding in analysis.findings:
        if counts(finding, report.body_start, assertions):
            labels |= labels_of(finding, mappings)
    return labels


def scored_labels(reports: Sequence[OpenIReport], mappings: dict[str, LabelMapping]) -> list[str]:
    """The labels with at least one positive in ``reports``, in the map's order."""
    positive = {label for report in reports for label in report.labels}
    return [label for label in mappings if label in positive]


@dataclass
class LabelScores:
    per_label: dict[str, PRF]

    @property
    def micro(self) -> PRF:
        return PRF(sum(p.tp for p in self.per_label.values()),
                   sum(p.fp for p in self.per_label.values()),
                   sum(p.fn for p in self.per_label.values()))

    @property
    def macro_f1(self) -> float:
        return sum(p.f1 for p in self.per_label.values()) / len(self.per_label)


def score(reports: Sequence[OpenIReport], outcome: RunOutcome, mappings: dict[str, LabelMapping],
          labels: Sequence[str], assertions: Sequence[str]) -> LabelScores:
    """Per-label P/R/F1 over (report, label) pairs; a failed report predicts nothing."""
    per_label = {label: PRF() for label in labels}
    for report in reports:
        result = outcome.results.get(report.id)
        predicted = (predicted_labels(result, report, mappings, assertions)
                     if isinstance(result, ReportAnalysis) else set())
        for label in labels:
            gold, pred = label in report.labels, label in predicted
            per_label[label].tp += gold and pred
            per_label[label].fp += pred and not gold
            per_label[label].fn += gold and not pred
    return LabelScores(per_label)


def _cells(prf: PRF) -> str:
    return f"{prf.tp:>5}{prf.fp:>5}{prf.fn:>5}{prf.precision:>7.3f}{prf.recall:>7.3f}{prf.f1:>7.3f}"


def format_table(names: Sequence[str], scores: Sequence[LabelScores], labels: Sequence[str],
                 support: dict[str, int]) -> str:
    width = 5 * 3 + 7 * 3
    lines = [f"{'':<20}{'':>8}" + "".join(f"  {n:^{width}}" for n in names),
             f"{'label':<20}{'support':>8}"
             + f"  {'TP':>5}{'FP':>5}{'FN':>5}{'P':>7}{'R':>7}{'F1':>7}" * len(names)]
    for label in labels:
        lines.append(f"{label:<20}{support[label]:>8}"
                     + "".join(f"  {_cells(s.per_label[label])}" for s in scores))
    lines.append(f"{'micro':<20}{sum(support.values()):>8}"
                 + "".join(f"  {_cells(s.micro)}" for s in scores))
    lines.append(f"{'macro F1':<20}{'':>8}"
                 + "".join(f"  {'':>{width - 7}}{s.macro_f1:>7.3f}" for s in scores))
    return "\n".join(lines)


def _sentence(text: str, start: int, end: int) -> str:
    """The sentence around a span (split on '.' and line breaks), on one line."""
    left = max(text.rfind(". ", 0, start), text.rfind("\n", 0, start))
    right_candidates = [i for i in (text.find(". ", end), text.find("\n", end)) if i != -1]
    right = min(right_candidates) + 1 if right_candidates else len(text)
    return " ".join(text[left + 1:right].split())


def error_rows(reports: Sequence[OpenIReport], outcome: RunOutcome,
               mappings: dict[str, LabelMapping], labels: Sequence[str],
               assertions: Sequence[str]) -> list[tuple[str, str, str, str, str, str]]:
    """(kind, cause, label, report id, mention, sentence) for every false positive/negative."""
    rows = []
    for report in reports:
        result = outcome.results.get(report.id)
        if not isinstance(result, ReportAnalysis):
            for label in sorted(report.labels & set(labels)):
                rows.append(("FN", "not analysed", label, report.id, "", ""))
            continue
        predicted = predicted_labels(result, report, mappings, assertions)
        for label in labels:
            gold, pred = label in report.labels, label in predicted
            if gold == pred:
                continue
            mentions = [f for f in result.findings if label in labels_of(f, mappings)]
            if pred:
                for f in mentions:
                    if counts(f, report.body_start, assertions):
                        rows.append(("FP", f"asserted {f.assertion}", label, report.id, f.text,
                                     _sentence(report.text, f.start, f.end)))
                continue
            body = [f for f in mentions if f.start >= report.body_start]
            if not mentions:
                cause, shown = "no mapped mention", None
            elif not body:
                cause, shown = "only before the findings", mentions[0]
            else:
                shown = next((f for f in body if f.assertion == "possible"), None)
                cause = "asserted possible"
                if shown is None:
                    shown = next((f for f in body if f.assertion == "absent"), None)
                    cause = "asserted absent"
                if shown is None:
                    shown, cause = body[0], "historical/hypothetical"
            text = report.text[report.body_start:] if shown is None else _sentence(
                report.text, shown.start, shown.end)
            rows.append(("FN", cause, label, report.id, shown.text if shown else "",
                         " ".join(text.split())))
    return rows


def format_causes(names: Sequence[str], rows: Sequence[Sequence[tuple]]) -> str:
    counters = [Counter((r[0], r[1]) for r in system_rows) for system_rows in rows]
    keys = sorted({k for c in counters for k in c})
    lines = [f"{'errors by cause':<36}" + "".join(f"{n:>22}" for n in names)]
    for key in keys:
        lines.append(f"{key[0] + ' ' + key[1]:<36}" + "".join(f"{c[key]:>22}" for c in counters))
    return "\n".join(lines)


def _medspacy_context_rules() -> System:
    from pipelines.medspacy_context import build_medspacy_context_nlp
    from pipelines.pipeline import RULES_MODEL_VERSION, RadiologyPipeline

    return RadiologyPipeline(build_medspacy_context_nlp(),
                             model_version=f"{RULES_MODEL_VERSION}+medspacy-context")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("data_dir", nargs="?", type=Path, default=DEFAULT_DATA_DIR,
                        help=f"folder holding {OPENI_DIR}/")
    parser.add_argument("--systems", default="full,rules,medspacy-context,medspacy",
                        help="comma-separated: full, rules, medspacy-context (our rules "
                             "pipeline with our ConText rules run by medspaCy's ConText), "
                             "medspacy (medspaCy's default pipeline, our lexicon), "
                             "full:combined|context|model (full mode, one assertion policy)")
    parser.add_argument("--errors", type=Path, default=Path("openi_errors.tsv"),
                        help="where to write the false positives and negatives of our modes")
    parser.add_argument("--limit", type=int, default=0, help="only the first N reports")
    parser.add_argument("--model", default="default",
                        help="model version of the full-mode systems (default: the active one)")
    args = parser.parse_args(argv)
    folder = args.data_dir / OPENI_DIR
    if not (folder / "reports.csv").is_file():
        parser.error(f"{folder / 'reports.csv'}: no such file")
    mappings = load_label_map()
    reports = read_openi(folder)
    if args.limit:
        reports = reports[:args.limit]
    labels = scored_labels(reports, mappings)
    support = {label: sum(label in r.labels for r in reports) for label in labels}
    print(f"Open-i dev: {len(reports)} reports, {sum(support.values())} positive (report, label) "
          f"pairs over {len(labels)} labels")

    from benchmarks.peers import MedspacyPeer
    from pipelines.pipeline import RadiologyPipeline

    factories: dict[str, Callable[[], System]] = {
                 "full": lambda: RadiologyPipeline.load("full", model=args.model),
                 "rules": lambda: RadiologyPipeline.load("rules"),
                 "medspacy-context": _medspacy_context_rules,
                 "medspacy": MedspacyPeer}
    names = {"full": "ours (full)", "rules": "ours (rules)",
             "medspacy-context": "rules, medspaCy ConText", "medspacy": "medspaCy default"}
    for policy in ("combined", "context", "model"):
        # full mode with the assertion model's merge policy named (the ablation)
        factories[f"full:{policy}"] = functools.partial(
            RadiologyPipeline.load, "full", model=args.model,
            config={"radnlp_assertion_model": {"policy": policy}})
        names[f"full:{policy}"] = f"full, {policy}"
    chosen = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(chosen) - set(factories)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    inputs = [ReportInput(r.id, r.text) for r in reports]
    outcomes: dict[str, RunOutcome] = {}
    for key in chosen:
        system: System = factories[key]()
        began = time.perf_counter()
        outcomes[key] = run_system(system, inputs)
        seconds = time.perf_counter() - began
        outcome = outcomes[key]
        print(f"{names[key]:<18} {outcome.analysed}/{len(inputs)} analysed (errors "
              f"{outcome.errors}, crashes {outcome.crashes}) in {seconds:.1f} s")
    for policy, assertions in POLICIES.items():
        print(f"\n{policy}" + (" (primary)" if policy == PRIMARY_POLICY else ""))
        print(format_table([names[k] for k in chosen],
                           [score(reports, outcomes[k], mappings, labels, assertions)
                            for k in chosen], labels, support))
    from benchmarks.openi_mesh import format_mesh_agreement, mesh_agreement

    print("\nagreement with the collection's MeSH indexing (finding/anatomy/laterality), "
          "present or possible findings in the findings and impression")
    print(format_mesh_agreement([names[k] for k in chosen],
                                [mesh_agreement(reports, outcomes[k]) for k in chosen]))
    ours = [k for k in chosen if k.startswith("full") or k == "rules"] or chosen
    rows = {k: error_rows(reports, outcomes[k], mappings, labels, POLICIES[PRIMARY_POLICY])
            for k in chosen}
    print("\n" + format_causes([names[k] for k in chosen], list(rows.values())))
    with open(args.errors, "w") as handle:
        handle.write("system\tkind\tcause\tlabel\treport\tmention\tsentence\n")
        for key in ours:
            for row in sorted(rows[key], key=lambda r: (r[0], r[1], r[2], r[3])):
                handle.write("\t".join((key, *row)) + "\n")
    print(f"\nfalse positives and negatives of {', '.join(ours)}: {args.errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
