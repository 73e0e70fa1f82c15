"""The normalizer: spelling, word order, abbreviations, context words, near-miss rejection."""

from __future__ import annotations

import json

import pytest

from terminology import ConceptMatch, Lexicon, load_lexicon, normalize
from terminology.normalizer import preprocess


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Right-Upper-Lobe nodules", "right upper lobe nodule"),
     ("rt upper lobe", "right upper lobe"),
     ("bilat ground-glass opacities", "bilateral ground glass opacity"),
     ("b/l effusions", "bilateral effusion"),
     ("Crohn's disease", "crohn disease"),
     ("Legg-Calvé-Perthes", "legg calve perthe")],
)
def test_preprocess(text: str, expected: str) -> None:
    assert preprocess(text) == expected


@pytest.mark.parametrize(
    ("text", "kind", "concept_id"),
    [("pneumothorax", "finding", "pneumothorax"),
     ("pnuemothorax", "finding", "pneumothorax"),
     ("PTX", "finding", "pneumothorax"),
     ("effusion pleural", "finding", "pleural_effusion"),
     ("small left pleural effusions", "finding", "pleural_effusion"),
     ("ground glass opacities", "finding", "ground_glass_opacity"),
     ("GGOs", "finding", "ground_glass_opacity"),
     ("rt upper lobe nodule", "finding", "nodule"),
     ("left lower lobe consolidation", "finding", "consolidation"),
     ("bilat lower lobe atelectasis", "finding", "atelectasis"),
     ("renal cysts", "finding", "renal_cyst"),
     ("kidney cist", "finding", "renal_cyst"),
     ("pneumonitis", "finding", "pneumonitis"),
     ("pneumonitus", "finding", "pneumonitis"),
     ("intracranial hypertensoin", "finding", "intracranial_hypertension"),
     ("hyperinflation", "finding", "hyperinflation"),
     ("peribronchial cuffing", "finding", "peribronchial_thickening"),
     ("L4-L5 disc herniation", "finding", "disc_herniation"),
     ("right-upper-lobe", "anatomy", "right_upper_lobe"),
     ("lt lower lobe", "anatomy", "left_lower_lobe"),
     ("CT of the chest", "modality", "ct"),
     ("PET/CT", "modality", "pet"),
     ("abdomen/pelvis", "body_region", "abdomen_pelvis"),
     ("MRI brain", "body_region", "head")],
)
def test_normalize_finds(text: str, kind: str, concept_id: str) -> None:
    found = normalize(text, kind=kind)  # type: ignore[arg-type]
    assert found is not None, text
    assert found.concept.id == concept_id
    assert 85.0 <= found.score <= 100.0
    assert found.term in found.concept.surface_forms


def test_normalize_any_kind() -> None:
    found = normalize("right upper lobe", kind=None)
    assert found is not None and found.concept.kind == "anatomy"


@pytest.mark.parametrize(
    ("text", "wrong_id"),
    [("pneumoperitoneum", "pneumothorax"),
     ("hemoperitoneum", "pneumoperitoneum"),
     ("pneumonitis", "pneumonia"),
     ("intracranial hypotension", "intracranial_hypertension"),
     ("pulmonary hypotension", "pulmonary_hypertension"),
     ("hypoinflation", "hyperinflation"),
     ("renal cyst", "renal_cell_carcinoma"),
     ("epidural hematoma", "subdural_hematoma")],
)
def test_normalize_rejects_near_misses_in_shipped_lexicon(text: str, wrong_id: str) -> None:
    found = normalize(text)
    assert found is None or found.concept.id != wrong_id


def test_normalize_returns_none_for_unrelated_text() -> None:
    assert normalize("the patient is doing well") is None
    assert normalize("") is None
    assert normalize("xq") is None


@pytest.fixture(scope="module")
def near_miss_lexicon(tmp_path_factory: pytest.TempPathFactory) -> Lexicon:
    """Only the look-alike targets, so a miss cannot hide behind the right concept."""
    folder = tmp_path_factory.mktemp("lexicon")
    names = ["pneumothorax", "pneumonia", "hypotension", "hypoinflation",
             "renal cell carcinoma", "subdural hematoma", "right upper lobe nodule"]
    lines = [json.dumps({"id": name.replace(" ", "_"), "name": name, "kind": "finding",
                         "region": "general"}) for name in names]
    (folder / "findings.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_lexicon(folder)


@pytest.mark.parametrize(
    "text",
    ["pneumoperitoneum", "hydropneumothorax", "pneumonitis", "hypertension", "hyperinflation",
     "renal cyst", "epidural hematoma", "left upper lobe nodule"],
)
def test_normalize_rejects_look_alikes(near_miss_lexicon: Lexicon, text: str) -> None:
    assert normalize(text, lexicon=near_miss_lexicon) is None


def test_threshold_controls_fuzziness(near_miss_lexicon: Lexicon) -> None:
    assert normalize("pnuemothorax", lexicon=near_miss_lexicon) is not None
    assert normalize("pnuemothorax", threshold=95.0, lexicon=near_miss_lexicon) is None


def test_concept_match_is_frozen() -> None:
    found = normalize("pneumothorax")
    assert isinstance(found, ConceptMatch)
    with pytest.raises(AttributeError):
        found.score = 0.0  # type: ignore[misc]
