"""The shipped lexicon: counts, uniqueness, references, RadLex codes, loading errors."""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from terminology import Concept, Lexicon, load_lexicon
from terminology.lexicon import RESOURCES
from terminology.normalizer import preprocess

RADLEX_CSV = Path(__file__).resolve().parents[3] / "shared/data/radlex_terms.csv"
# Organ names are both anatomy and a body region ("kidney"); they never share a span group.
MAY_SHARE_FORMS = {"anatomy", "body_region"}


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return load_lexicon()


def test_counts(lexicon: Lexicon) -> None:
    assert len(lexicon.of_kind("finding")) >= 300
    assert len(lexicon.of_kind("anatomy")) >= 150
    codes = {concept.code for concept in lexicon.of_kind("modality")}
    assert {"CT", "MR", "US", "XR", "MG", "NM", "PT", "RF"} <= codes
    regions = {concept.id for concept in lexicon.of_kind("body_region")}
    assert {"chest", "abdomen", "pelvis", "abdomen_pelvis", "head", "neck", "spine", "breast",
            "extremity", "thyroid"} <= regions


def test_load_lexicon_is_cached(lexicon: Lexicon) -> None:
    assert load_lexicon() is lexicon


def test_unique_ids(lexicon: Lexicon) -> None:
    ids = [concept.id for concept in lexicon.concepts]
    assert len(ids) == len(set(ids))


def test_surface_form_belongs_to_one_concept(lexicon: Lexicon) -> None:
    owners: dict[str, set[Concept]] = defaultdict(set)
    for term, concept in lexicon.terms():
        owners[term.lower()].add(concept)
    shared = {
        term: sorted(c.id for c in concepts)
        for term, concepts in owners.items()
        if len(concepts) > 1
        and not ({c.kind for c in concepts} == MAY_SHARE_FORMS and len(concepts) == 2)
    }
    assert not shared


def test_normalized_forms_unique_within_kind(lexicon: Lexicon) -> None:
    owners: dict[tuple[str, str], set[str]] = defaultdict(set)
    for term, concept in lexicon.terms():
        owners[concept.kind, preprocess(term)].add(concept.id)
    assert not {key: ids for key, ids in owners.items() if len(ids) > 1}


def test_references_and_fields(lexicon: Lexicon) -> None:
    region_ids = {concept.id for concept in lexicon.of_kind("body_region")}
    for concept in lexicon.of_kind("anatomy"):
        assert concept.region in region_ids, concept.id
    for lobe in ("right_upper_lobe", "right_middle_lobe", "right_lower_lobe"):
        assert lexicon.get(lobe).laterality == "right"
    for lobe in ("left_upper_lobe", "lingula", "left_lower_lobe"):
        assert lexicon.get(lobe).laterality == "left"
    assert lexicon.get("right_upper_lobe").parent == "lung"


def test_snomed_codes_come_from_the_verified_list(lexicon: Lexicon) -> None:
    verified = {}
    with (RESOURCES / "snomed_verified.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            verified.setdefault(row["snomed_code"], set()).add(row["snomed_display"])
    coded = [c for c in lexicon.concepts if c.snomed is not None]
    assert len(coded) >= 60
    for concept in coded:
        assert concept.snomed_display in verified.get(concept.snomed, set()), concept.id
        assert concept.snomed_source and "ehealth.fgov.be" not in concept.snomed_source
    assert lexicon.get("pneumothorax").snomed == "36118008"
    assert lexicon.get("right_upper_lobe").snomed_display == "Structure of upper lobe of right lung"


def test_get_unknown_id_raises(lexicon: Lexicon) -> None:
    with pytest.raises(KeyError):
        lexicon.get("no_such_concept")


@pytest.mark.parametrize(
    ("abbreviation", "concept_id"),
    [("PTX", "pneumothorax"), ("RUL", "right_upper_lobe"), ("LLL", "left_lower_lobe"),
     ("CHF", "congestive_heart_failure"), ("GGO", "ground_glass_opacity"),
     ("COPD", "chronic_obstructive_pulmonary_disease"), ("DVT", "deep_vein_thrombosis"),
     ("PE", "pulmonary_embolism"), ("AAA", "abdominal_aortic_aneurysm"),
     ("SAH", "subarachnoid_hemorrhage"), ("ICH", "intracranial_hemorrhage"),
     ("CT", "ct"), ("MRI", "mr")],
)
def test_abbreviations(lexicon: Lexicon, abbreviation: str, concept_id: str) -> None:
    assert {concept.id for term, concept in lexicon.terms() if term == abbreviation} == {concept_id}


def test_irregular_plurals_listed(lexicon: Lexicon) -> None:
    forms = {term for term, _ in lexicon.terms()}
    assert {"pneumothoraces", "renal calculi", "metastases", "vertebrae", "diverticula"} <= forms


def test_radlex_fields_well_formed(lexicon: Lexicon) -> None:
    for concept in lexicon.concepts:
        assert (concept.radlex is None) == (concept.radlex_name is None), concept.id
        if concept.radlex:
            assert re.fullmatch(r"RID\d+", concept.radlex)
    assert lexicon.get("pneumothorax").radlex == "RID5352"


def test_radlex_codes_exist_in_term_list(lexicon: Lexicon) -> None:
    if not RADLEX_CSV.is_file():
        pytest.skip(f"RadLex term list not found at {RADLEX_CSV}")
    with RADLEX_CSV.open(encoding="utf-8", newline="") as rows:
        pairs = {(rid, name) for name, rid, _parent in csv.reader(rows)}
    missing = [(c.id, c.radlex, c.radlex_name) for c in lexicon.concepts
               if c.radlex and (c.radlex, c.radlex_name) not in pairs]
    assert not missing


def _write(folder: Path, lines: list[str]) -> Path:
    (folder / "findings.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _finding(**fields: object) -> str:
    return json.dumps({"id": "mass", "name": "mass", "kind": "finding", "region": "general",
                       "synonyms": [], **fields})


def test_load_from_folder(tmp_path: Path) -> None:
    lexicon = load_lexicon(_write(tmp_path, [_finding(synonyms=["lump"])]))
    assert [term for term, _ in lexicon.terms("finding")] == ["mass", "lump"]
    assert lexicon.of_kind("anatomy") == []


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [("{not json", "invalid JSON"),
     (_finding(radlex="5352"), "invalid concept"),
     (_finding(name="Mass"), "invalid concept"),
     (_finding(kind="anatomy"), "kind 'anatomy'"),
     (_finding(unknown_field=1), "invalid concept")],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    folder = _write(tmp_path, [_finding(id="cyst", name="cyst"), bad_line])
    with pytest.raises(ValueError, match=rf"findings\.jsonl, line 2: {message}"):
        load_lexicon(folder)


def test_duplicate_id_names_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"findings\.jsonl, line 2: duplicate id 'mass'"):
        load_lexicon(_write(tmp_path, [_finding(), _finding()]))


def test_unknown_parent_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown parent"):
        load_lexicon(_write(tmp_path, [_finding(parent="nowhere")]))


def test_empty_folder_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no lexicon files"):
        load_lexicon(tmp_path)
