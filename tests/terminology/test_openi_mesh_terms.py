"""The MeSH term map covers every frequent Open-i development term with lexicon concepts.

The terms are recomputed here from ``openi_dev/reports.csv`` (skipped where the folder is absent):
every finding heading, and every qualifier of an anatomy heading, that occurs in 5 or more reports
must be listed with lexicon finding concepts or an out-of-scope reason; an anatomy qualifier may
instead be one of the map's non-finding words (laterality, modifier, location, lung region).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.openi_mesh import MESH_TERMS_FILE, load_mesh_terms
from terminology import load_lexicon

OPENI_DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "openi_dev"
MIN_REPORTS = 5


@pytest.fixture(scope="module")
def mapping() -> dict:
    return json.loads(MESH_TERMS_FILE.read_text())


def key_counts(anatomy_headings: set[str]) -> Counter[str]:
    """Reports per key: a finding heading, or ``Heading/qualifier`` of an anatomy heading."""
    per_report: Counter[str] = Counter()
    with open(OPENI_DEV / "reports.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            keys: set[str] = set()
            for term in (t.strip() for t in (row["MeSH"] or "").split(";") if t.strip()):
                heading, *qualifiers = (part.strip() for part in term.split("/"))
                if heading in anatomy_headings:
                    keys |= {f"{heading}/{q}" for q in qualifiers}
                else:
                    keys.add(heading)
            per_report.update(keys)
    return per_report


@pytest.mark.skipif(not (OPENI_DEV / "reports.csv").is_file(), reason="no openi_dev data")
def test_every_frequent_term_is_mapped_or_out_of_scope(mapping: dict) -> None:
    terms = load_mesh_terms()
    entries = {t["mesh"]: t for t in mapping["terms"]}
    frequent = [k for k, n in key_counts(set(mapping["anatomy_headings"])).items()
                if n >= MIN_REPORTS]
    assert len(frequent) > 60
    missing = []
    for key in frequent:
        _, _, qualifier = key.partition("/")
        if key in entries:
            continue
        if qualifier and qualifier in terms.non_finding_qualifiers:
            continue
        missing.append(key)
    assert not missing
    # The finding sub-terms the brief names are keyed as such, not waved through as qualifiers.
    for key in ("Lung/hypoinflation", "Lung/hyperdistention", "Aorta/tortuous",
                "Thoracic Vertebrae/degenerative", "Diaphragm/elevated",
                "Costophrenic Angle/blunted", "Markings/bronchovascular"):
        assert entries[key].get("concepts"), key


@pytest.mark.skipif(not (OPENI_DEV / "reports.csv").is_file(), reason="no openi_dev data")
def test_report_counts_are_those_of_the_data(mapping: dict) -> None:
    counts = key_counts(set(mapping["anatomy_headings"]))
    for entry in mapping["terms"]:
        assert entry["reports"] == counts[entry["mesh"]], entry["mesh"]


def test_entries_name_lexicon_findings_or_a_reason(mapping: dict) -> None:
    lexicon = load_lexicon()
    for entry in mapping["terms"]:
        if "out_of_scope" in entry:
            assert entry["out_of_scope"].strip() and "concepts" not in entry, entry["mesh"]
            continue
        assert entry["concepts"], entry["mesh"]
        for concept_id in entry["concepts"]:
            assert lexicon.get(concept_id).kind == "finding", (entry["mesh"], concept_id)
    assert len({e["mesh"] for e in mapping["terms"]}) == len(mapping["terms"])
    load_mesh_terms()  # the loader's own checks


def test_lexicon_has_the_general_terms_the_index_uses() -> None:
    lexicon = load_lexicon()
    forms = {term.lower(): concept.id for term, concept in lexicon.terms("finding")}
    assert forms["tortuous aorta"] == "tortuous_aorta"
    assert forms["blunting of the costophrenic angle"] == "costophrenic_angle_blunting"
    assert forms["hypoinflation"] == "low_lung_volumes"
    assert forms["granulomatous disease"] == "granulomatous_disease"
    assert forms["bronchovascular crowding"] == "bronchovascular_crowding"
