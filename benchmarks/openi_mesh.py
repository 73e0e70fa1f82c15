"""Open-i MeSH agreement: the collection's own MeSH indexing as a second, coarser reference.

Each report of ``openi_dev`` is indexed with ``;``-separated MeSH terms
``Heading/qualifier/...`` (``Opacity/lung/base/left``, ``Diaphragm/right/elevated``). The map from
terms to lexicon finding concepts is data (``benchmarks/resources/openi_mesh_terms.json``): finding
headings are keyed by the heading, anatomy headings (``Lung``, ``Aorta``) by ``Heading/qualifier``
for their finding qualifier (``Lung/hypoinflation``, ``Aorta/tortuous``); laterality, modifier,
location and lung-region qualifiers are not findings.

Agreement, per (report, MeSH term) whose term maps to concepts (duplicate terms of a report once):

- finding: the system has a counting finding of one of the mapped concepts (the 14-label rule of
  ``benchmarks.openi.counts``, with ``possible`` counting: present or possible, neither historical
  nor hypothetical, at or after ``body_start``);
- laterality (over terms stating left/right/bilateral): one of those findings has the term's
  laterality (bilateral also agrees with a left and a right finding);
- anatomy (over terms naming a lung region: base, apex, hilum, a lobe, lingula...): the anatomy
  name or text of one of those findings contains a word of that region (``bibasilar`` for base);
- anatomy and laterality (over terms with both): one finding agrees on both.

The reverse direction, for precision: every (report, concept) that a system counts, for the
concepts the map uses, is *supported* when a MeSH term of the report maps to that concept.
A failed report has no findings.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import RunOutcome, System, finding_concept_id, run_system
from benchmarks.openi import counts
from pipelines.corpora import DEFAULT_DATA_DIR, OPENI_DIR, OpenIReport, read_openi
from pipelines.pipeline import ReportInput
from pipelines.schema import FindingOut, ReportAnalysis
from terminology import load_lexicon

MESH_TERMS_FILE = Path(__file__).parent / "resources" / "openi_mesh_terms.json"
COUNTING = ("present", "possible")
LATERALITIES = ("left", "right", "bilateral")


@dataclass(frozen=True)
class MeshTermMap:
    """The term map: concepts (or an out-of-scope reason) by key, and the qualifier vocabulary."""

    concepts: dict[str, tuple[str, ...]]
    out_of_scope: dict[str, str]
    anatomy_headings: frozenset[str]
    non_finding_qualifiers: frozenset[str]
    lung_regions: dict[str, tuple[str, ...]]  # region qualifier -> words its anatomy contains

    def keys_of(self, term: str) -> tuple[str, ...]:
        """The map keys of a MeSH term: its heading, or ``Heading/qualifier`` per qualifier."""
        heading, *qualifiers = [part.strip() for part in term.split("/")]
        if heading not in self.anatomy_headings:
            return (heading,)
        return tuple(f"{heading}/{q}" for q in qualifiers)

    def concepts_of(self, term: str) -> frozenset[str]:
        return frozenset(c for key in self.keys_of(term) for c in self.concepts.get(key, ()))

    def is_out_of_scope(self, term: str) -> bool:
        return any(key in self.out_of_scope for key in self.keys_of(term))

    @property
    def all_concepts(self) -> frozenset[str]:
        return frozenset(c for concepts in self.concepts.values() for c in concepts)


def load_mesh_terms(path: str | Path = MESH_TERMS_FILE) -> MeshTermMap:
    """The term map, checked: every concept must be a finding of the shipped lexicon, and every
    term must name concepts or give an out-of-scope reason."""
    data = json.loads(Path(path).read_text())
    lexicon = load_lexicon()
    concepts: dict[str, tuple[str, ...]] = {}
    out_of_scope: dict[str, str] = {}
    for entry in data["terms"]:
        key = entry["mesh"]
        if key in concepts or key in out_of_scope:
            raise ValueError(f"{path}: term {key!r} is listed twice")
        if entry.get("out_of_scope"):
            out_of_scope[key] = entry["out_of_scope"]
            continue
        if not entry.get("concepts"):
            raise ValueError(f"{path}: term {key!r} has neither concepts nor out_of_scope")
        for concept_id in entry["concepts"]:
            try:
                kind = lexicon.get(concept_id).kind
            except KeyError:
                raise ValueError(f"{path}: term {key!r} names unknown concept "
                                 f"{concept_id!r}") from None
            if kind != "finding":
                raise ValueError(f"{path}: {concept_id!r} is a {kind}, not a finding")
        concepts[key] = tuple(entry["concepts"])
    qualifiers = data["qualifiers"]
    regions = {region: tuple(w.lower() for w in words)
               for region, words in qualifiers["lung_regions"].items()}
    non_finding = {*qualifiers["laterality"], *qualifiers["modifiers"], *qualifiers["locations"],
                   *regions}
    return MeshTermMap(concepts=concepts, out_of_scope=out_of_scope,
                       anatomy_headings=frozenset(data["anatomy_headings"]),
                       non_finding_qualifiers=frozenset(non_finding), lung_regions=regions)


@functools.cache
def default_mesh_terms() -> MeshTermMap:
    return load_mesh_terms()


def term_laterality(term: str) -> str | None:
    """The laterality a MeSH term states (left and right together are bilateral)."""
    stated = {part.strip() for part in term.split("/")[1:]} & set(LATERALITIES)
    if "bilateral" in stated or {"left", "right"} <= stated:
        return "bilateral"
    return next(iter(stated), None)


def term_regions(term: str, terms: MeshTermMap) -> tuple[str, ...]:
    """The lung regions a MeSH term names, in its order."""
    return tuple(part.strip() for part in term.split("/")[1:]
                 if part.strip() in terms.lung_regions)


@dataclass
class Rate:
    agreed: int = 0
    total: int = 0

    def add(self, agreed: bool) -> None:
        self.agreed += agreed
        self.total += 1

    @property
    def rate(self) -> float:
        return self.agreed / self.total if self.total else 0.0


@dataclass
class MeshAgreement:
    """Agreement of one system with the MeSH indexing (see the module docstring)."""

    finding: Rate = field(default_factory=Rate)
    laterality: Rate = field(default_factory=Rate)
    anatomy: Rate = field(default_factory=Rate)
    anatomy_laterality: Rate = field(default_factory=Rate)
    supported: Rate = field(default_factory=Rate)  # reverse: counted (report, concept) pairs
    by_key: dict[str, Rate] = field(default_factory=lambda: defaultdict(Rate))
    out_of_scope_terms: int = 0
    unmapped_terms: int = 0  # terms whose keys the map does not list (rare ones)


def _has_region(finding: FindingOut, words: Sequence[str]) -> bool:
    if finding.anatomy is None:
        return False
    where = f"{finding.anatomy.name} {finding.anatomy.text or ''}".lower()
    return any(word in where for word in words)


def _lateral(findings: Sequence[FindingOut], laterality: str) -> bool:
    stated = {f.laterality for f in findings}
    return laterality in stated or (laterality == "bilateral" and {"left", "right"} <= stated)


def mesh_agreement(reports: Sequence[OpenIReport], outcome: RunOutcome,
                   terms: MeshTermMap | None = None) -> MeshAgreement:
    """Agreement of a system's findings with the MeSH terms of ``reports``."""
    terms = terms or default_mesh_terms()
    scored_concepts = terms.all_concepts
    agreement = MeshAgreement()
    for report in reports:
        result = outcome.results.get(report.id)
        findings = [f for f in result.findings if counts(f, report.body_start, COUNTING)] \
            if isinstance(result, ReportAnalysis) else []
        by_concept: dict[str, list[FindingOut]] = defaultdict(list)
        for finding in findings:
            concept_id = finding_concept_id(finding)
            if concept_id is not None:
                by_concept[concept_id].append(finding)
        indexed: set[str] = set()
        for term in dict.fromkeys(report.mesh):
            concepts = terms.concepts_of(term)
            indexed |= concepts
            if not concepts:
                if terms.is_out_of_scope(term):
                    agreement.out_of_scope_terms += 1
                else:
                    agreement.unmapped_terms += 1
                continue
            matched = [f for c in concepts for f in by_concept.get(c, [])]
            agreement.finding.add(bool(matched))
            for key in terms.keys_of(term):
                if key in terms.concepts:
                    agreement.by_key[key].add(bool(matched))
            laterality = term_laterality(term)
            words = [w for region in term_regions(term, terms) for w in terms.lung_regions[region]]
            if laterality:
                agreement.laterality.add(_lateral(matched, laterality))
            if words:
                in_region = [f for f in matched if _has_region(f, words)]
                agreement.anatomy.add(bool(in_region))
                if laterality:
                    agreement.anatomy_laterality.add(_lateral(in_region, laterality))
        for concept_id in by_concept.keys() & scored_concepts:
            agreement.supported.add(concept_id in indexed)
    return agreement


def _cell(rate: Rate) -> str:
    return f"{rate.agreed:>6}/{rate.total:<6}{rate.rate:>6.3f}"


def format_mesh_agreement(names: Sequence[str], agreements: Sequence[MeshAgreement],
                          by_key: bool = False) -> str:
    """One column per system: agreed/total and the rate, per kind of agreement."""
    width = 19
    rows = [("finding", "finding"), ("finding+laterality", "laterality"),
            ("finding+anatomy", "anatomy"), ("finding+anatomy+lat.", "anatomy_laterality"),
            ("reverse: supported", "supported")]
    lines = [f"{'MeSH agreement':<28}" + "".join(f"  {n:>{width}}" for n in names)]
    for label, attribute in rows:
        lines.append(f"{label:<28}"
                     + "".join(f"  {_cell(getattr(a, attribute)):>{width}}" for a in agreements))
    first = agreements[0] if agreements else MeshAgreement()
    lines.append(f"(terms out of scope: {first.out_of_scope_terms}, not in the map: "
                 f"{first.unmapped_terms}; reverse = counted (report, concept) pairs of mapped "
                 "concepts that a MeSH term of the report names)")
    if by_key:
        keys = sorted({k for a in agreements for k in a.by_key},
                      key=lambda k: (-max(a.by_key[k].total if k in a.by_key else 0
                                          for a in agreements), k))
        lines.append("")
        lines.append(f"{'finding agreement by term':<36}" + "".join(f"  {n:>{width}}"
                                                                    for n in names))
        for key in keys:
            lines.append(f"{key[:36]:<36}" + "".join(
                f"  {_cell(a.by_key.get(key, Rate())):>{width}}" for a in agreements))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("data_dir", nargs="?", type=Path, default=DEFAULT_DATA_DIR,
                        help=f"folder holding {OPENI_DIR}/")
    parser.add_argument("--systems", default="rules,full", help="comma-separated: rules, full")
    parser.add_argument("--limit", type=int, default=0, help="only the first N reports")
    parser.add_argument("--by-term", action="store_true",
                        help="also print the finding agreement of every mapped term")
    args = parser.parse_args(argv)
    folder = args.data_dir / OPENI_DIR
    if not (folder / "reports.csv").is_file():
        parser.error(f"{folder / 'reports.csv'}: no such file")
    terms = load_mesh_terms()
    reports = read_openi(folder)
    if args.limit:
        reports = reports[:args.limit]

    from pipelines.pipeline import RadiologyPipeline

    factories: dict[str, Callable[[], System]] = {
        "rules": lambda: RadiologyPipeline.load("rules"),
        "full": lambda: RadiologyPipeline.load("full")}
    names = {"rules": "ours (rules)", "full": "ours (full)"}
    chosen = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(chosen) - set(factories)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    print(f"Open-i dev: {len(reports)} reports, "
          f"{sum(len(set(r.mesh)) for r in reports)} MeSH terms")
    inputs = [ReportInput(r.id, r.text) for r in reports]
    agreements = []
    for key in chosen:
        system = factories[key]()
        began = time.perf_counter()
        outcome = run_system(system, inputs)
        print(f"{names[key]:<14} {outcome.analysed}/{len(inputs)} analysed (errors "
              f"{outcome.errors}, crashes {outcome.crashes}) in "
              f"{time.perf_counter() - began:.1f} s")
        agreements.append(mesh_agreement(reports, outcome, terms))
    print()
    print(format_mesh_agreement([names[k] for k in chosen], agreements, by_key=args.by_term))
    return 0


if __name__ == "__main__":
    sys.exit(main())
