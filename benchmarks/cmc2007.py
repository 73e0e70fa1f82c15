"""CMC 2007 benchmark: ICD-9-CM finding codes from our findings vs medspaCy's, same lexicon.

Gold: the ``CMC_MAJORITY`` codes of ``cmc2007_train.xml`` (978 pediatric radiology reports).
Each report's text is ``CLINICAL HISTORY: <history>\\n\\nIMPRESSION: <impression>``.

Decision rule, identical for both systems: a report carries a code when a finding whose concept
maps to the code (``CODE_MAP``) is asserted ``present``, is neither historical nor hypothetical,
and starts at or after the IMPRESSION header. Findings in the clinical history are the reason for
the exam, and ICD-9-CM outpatient coding does not code uncertain diagnoses ("possible pneumonia"
is not 486), so ``possible`` never yields a code. Only codes in ``CODE_MAP`` are scored.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import RunOutcome, System, finding_concept_id, run_system
from pipelines.corpora import CMC_TEST_FILE as TEST_FILE
from pipelines.corpora import CMC_TRAIN_FILE as TRAIN_FILE
from pipelines.corpora import DEFAULT_DATA_DIR, CmcReport, read_cmc
from pipelines.evaluation import PRF
from pipelines.pipeline import RadiologyPipeline, ReportInput
from pipelines.schema import FindingOut, ReportAnalysis
from terminology import load_lexicon


@dataclass(frozen=True)
class CodeMapping:
    code: str
    description: str
    concepts: tuple[str, ...]  # lexicon finding concept ids


# ICD-9-CM codes of the CMC 2007 code set that denote imaging findings, with the lexicon concepts
# that name them. CMC_MAJORITY counts in cmc2007_train.xml are in the comments.
CODE_MAP: tuple[CodeMapping, ...] = (
    CodeMapping("486", "pneumonia, organism unspecified",  # 70
                ("pneumonia", "lobar_pneumonia", "bronchopneumonia", "round_pneumonia")),
    CodeMapping("493.90", "asthma, unspecified",  # 23
                ("asthma", "reactive_airway_disease")),
    CodeMapping("511.9", "pleural effusion, unspecified",  # 1
                ("pleural_effusion", "loculated_pleural_effusion", "subpulmonic_effusion")),
    CodeMapping("518.0", "pulmonary collapse (atelectasis)",  # 16
                ("atelectasis", "subsegmental_atelectasis", "lobar_collapse",
                 "rounded_atelectasis")),
    CodeMapping("591", "hydronephrosis",  # 79
                ("hydronephrosis", "hydroureteronephrosis")),
    CodeMapping("592.0", "calculus of kidney",  # 8
                ("nephrolithiasis",)),
    CodeMapping("593.5", "hydroureter",  # 10
                ("hydroureter", "hydroureteronephrosis")),
    CodeMapping("593.70", "vesicoureteral reflux, unspecified",  # 103
                ("vesicoureteral_reflux",)),
    CodeMapping("753.21", "congenital ureteropelvic junction obstruction",  # 4
                ("ureteropelvic_junction_obstruction",)),
    CodeMapping("753.3", "other specified anomalies of kidney",  # 16
                ("duplex_collecting_system", "horseshoe_kidney")),
    CodeMapping("785.6", "enlargement of lymph nodes",  # 1
                ("lymphadenopathy", "hilar_lymphadenopathy", "mediastinal_lymphadenopathy")),
)
# Left out: symptoms and history (786.x, 780.6, 788.30, 789.x, 599.0, 599.7, 791.0, V-codes),
# diagnoses taken from the history (277.00 cystic fibrosis, 741.90 spina bifida, 596.54
# neurogenic bladder, 758.6, 279.12), and finding codes with no lexicon concept: 593.89
# (pyelectasis, 43), 593.1 (renal hypertrophy, 2), 596.8 (other bladder, 2), 753.0 (renal
# agenesis, 1), 759.89, 795.5, 079.99, 462. 466.x and 793.x do not occur in the CMC code set.

CODES_OF_CONCEPT: dict[str, frozenset[str]] = {}
for _mapping in CODE_MAP:
    for _concept in _mapping.concepts:
        CODES_OF_CONCEPT[_concept] = CODES_OF_CONCEPT.get(_concept, frozenset()) | {_mapping.code}
SCORED_CODES = tuple(m.code for m in CODE_MAP)


def check_code_map() -> None:
    """Raise ``ValueError`` if a mapped concept is not a finding in the shipped lexicon."""
    lexicon = load_lexicon()
    for concept_id in CODES_OF_CONCEPT:
        try:
            kind = lexicon.get(concept_id).kind
        except KeyError:
            raise ValueError(f"CODE_MAP names unknown concept {concept_id!r}") from None
        if kind != "finding":
            raise ValueError(f"CODE_MAP concept {concept_id!r} is a {kind}, not a finding")


def _codes_of(finding: FindingOut) -> frozenset[str]:
    concept_id = finding_concept_id(finding)
    return CODES_OF_CONCEPT.get(concept_id, frozenset()) if concept_id else frozenset()


def counts_for_code(finding: FindingOut, impression_start: int) -> bool:
    """The decision rule (see the module docstring)."""
    return (finding.assertion == "present" and not finding.historical
            and not finding.hypothetical and finding.start >= impression_start)


def predicted_codes(analysis: ReportAnalysis, impression_start: int) -> frozenset[str]:
    codes: set[str] = set()
    for finding in analysis.findings:
        if counts_for_code(finding, impression_start):
            codes |= _codes_of(finding)
    return frozenset(codes)


@dataclass
class CodeScores:
    per_code: dict[str, PRF]
    micro: PRF


def score(reports: Sequence[CmcReport], outcome: RunOutcome) -> CodeScores:
    """Per-code and micro P/R/F1 over (report, code) pairs; a failed report predicts nothing."""
    per_code = {code: PRF() for code in SCORED_CODES}
    for report in reports:
        result = outcome.results.get(report.id)
        predicted = (predicted_codes(result, report.impression_start)
                     if isinstance(result, ReportAnalysis) else frozenset())
        for code in SCORED_CODES:
            gold, pred = code in report.codes, code in predicted
            per_code[code].tp += gold and pred
            per_code[code].fp += pred and not gold
            per_code[code].fn += gold and not pred
    micro = PRF(sum(p.tp for p in per_code.values()), sum(p.fp for p in per_code.values()),
                sum(p.fn for p in per_code.values()))
    return CodeScores(per_code, micro)


def _prf_cells(prf: PRF) -> str:
    return (f"{prf.tp:>5}{prf.fp:>5}{prf.fn:>5}"
            f"{prf.precision:>7.3f}{prf.recall:>7.3f}{prf.f1:>7.3f}")


def format_table(names: Sequence[str], scores: Sequence[CodeScores]) -> str:
    """Per-code and micro scores of several systems side by side."""
    cell_width = 5 * 3 + 7 * 3
    head1 = f"{'':<8}{'':<34}{'':>8}" + "".join(f"  {n:^{cell_width}}" for n in names)
    head2 = (f"{'code':<8}{'description':<34}{'support':>8}"
             + f"  {'TP':>5}{'FP':>5}{'FN':>5}{'P':>7}{'R':>7}{'F1':>7}" * len(names))
    lines = [head1, head2]
    for mapping in CODE_MAP:
        prfs = [s.per_code[mapping.code] for s in scores]
        support = prfs[0].tp + prfs[0].fn
        lines.append(f"{mapping.code:<8}{mapping.description[:33]:<34}{support:>8}"
                     + "".join(f"  {_prf_cells(p)}" for p in prfs))
    support = scores[0].micro.tp + scores[0].micro.fn
    lines.append(f"{'micro':<8}{'(report, code) pairs':<34}{support:>8}"
                 + "".join(f"  {_prf_cells(s.micro)}" for s in scores))
    return "\n".join(lines)


def explain_errors(reports: Sequence[CmcReport], outcome: RunOutcome, limit: int) -> list[str]:
    """Up to ``limit`` false positives and negatives, each with the mention(s) behind it."""
    lines: list[str] = []
    for report in reports:
        result = outcome.results.get(report.id)
        if not isinstance(result, ReportAnalysis):
            continue
        predicted = predicted_codes(result, report.impression_start)
        for code in SCORED_CODES:
            gold, pred = code in report.codes, code in predicted
            if gold == pred:
                continue
            mentions = [f for f in result.findings if code in _codes_of(f)]
            if pred:
                mentions = [f for f in mentions if counts_for_code(f, report.impression_start)]
            described = "; ".join(
                f"{f.text!r} {f.assertion}{' hist' if f.historical else ''}"
                f"{' hyp' if f.hypothetical else ''}"
                f"{' in-history' if f.start < report.impression_start else ''}"
                f" in {report.text[max(0, f.start - 30):f.end + 30]!r}"
                for f in mentions) or "no mapped mention"
            lines.append(f"{'FP' if pred else 'FN'} {report.id} {code}: {described}")
            if len(lines) >= limit:
                return lines
    return lines


FN_CAUSES = ("no mapped mention", "only in clinical history", "possible", "absent",
             "historical/hypothetical")


def fn_causes(reports: Sequence[CmcReport], outcome: RunOutcome) -> Counter[str]:
    """Why gold (report, code) pairs were missed: the strongest mention in the impression."""
    causes: Counter[str] = Counter()
    for report in reports:
        result = outcome.results.get(report.id)
        if not isinstance(result, ReportAnalysis):
            causes["not analysed"] += sum(code in report.codes for code in SCORED_CODES)
            continue
        predicted = predicted_codes(result, report.impression_start)
        for code in (c for c in SCORED_CODES if c in report.codes and c not in predicted):
            mentions = [f for f in result.findings if code in _codes_of(f)]
            in_impression = [f for f in mentions if f.start >= report.impression_start]
            if not mentions:
                causes["no mapped mention"] += 1
            elif not in_impression:
                causes["only in clinical history"] += 1
            elif any(f.assertion == "possible" for f in in_impression):
                causes["possible"] += 1
            elif any(f.assertion == "absent" for f in in_impression):
                causes["absent"] += 1
            else:
                causes["historical/hypothetical"] += 1
    return causes


def format_causes(names: Sequence[str], causes: Sequence[Counter[str]]) -> str:
    lines = [f"{'false negatives by cause':<34}" + "".join(f"{n:>20}" for n in names)]
    for cause in [*FN_CAUSES, *sorted({c for cs in causes for c in cs} - set(FN_CAUSES))]:
        lines.append(f"{cause:<34}" + "".join(f"{cs[cause]:>20}" for cs in causes))
    return "\n".join(lines)


def _inputs(reports: Sequence[CmcReport]) -> list[ReportInput]:
    return [ReportInput(r.id, r.text) for r in reports]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("data_dir", nargs="?", type=Path, default=DEFAULT_DATA_DIR,
                        help=f"folder with {TRAIN_FILE} and {TEST_FILE}")
    parser.add_argument("--examples", type=int, default=0,
                        help="print this many false positives/negatives of each system")
    args = parser.parse_args(argv)
    if not (args.data_dir / TRAIN_FILE).is_file():
        parser.error(f"{args.data_dir / TRAIN_FILE}: no such file")
    check_code_map()

    from benchmarks.peers import MedspacyPeer

    systems: dict[str, System] = {"ours (rules)": RadiologyPipeline.load("rules"),
                                  "medspaCy default": MedspacyPeer()}
    train = read_cmc(args.data_dir / TRAIN_FILE)
    gold_pairs = sum(len(r.codes) for r in train)
    scored_pairs = sum(len(r.codes & set(SCORED_CODES)) for r in train)
    print(f"CMC 2007 train: {len(train)} reports, {gold_pairs} CMC_MAJORITY codes, "
          f"{scored_pairs} of them in the {len(SCORED_CODES)} mapped finding codes")
    for mapping in CODE_MAP:
        print(f"  {mapping.code:<8}<- {', '.join(mapping.concepts)}")
    print("rule: mapped finding asserted present, not historical/hypothetical, "
          "at or after the IMPRESSION header\n")
    outcomes = {name: run_system(system, _inputs(train)) for name, system in systems.items()}
    print(format_table(list(systems), [score(train, o) for o in outcomes.values()]))
    print()
    print(format_causes(list(systems), [fn_causes(train, o) for o in outcomes.values()]))
    print()
    for name, outcome in outcomes.items():
        print(f"{name:<18} analysed without error: {outcome.analysed}/{len(train)} "
              f"(errors {outcome.errors}, crashes {outcome.crashes})")

    test_path = args.data_dir / TEST_FILE
    if test_path.is_file():
        test = read_cmc(test_path)
        print(f"\nrobustness, {TEST_FILE}: {len(test)} reports")
        for name, system in systems.items():
            outcome = run_system(system, _inputs(test))
            print(f"{name:<18} analysed without error: {outcome.analysed}/{len(test)} "
                  f"(errors {outcome.errors}, crashes {outcome.crashes})")
            for result in list(outcome.results.values()):
                if not isinstance(result, ReportAnalysis):
                    print(f"  {result.id}: {result.error[:120]}")

    for name, outcome in outcomes.items() if args.examples else ():
        print(f"\nfalse positives/negatives of {name} (first {args.examples}):")
        print("\n".join(explain_errors(train, outcome, args.examples)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
