"""MeSH agreement on a tiny folder written here in the collection's CSV format."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from benchmarks import openi_mesh
from benchmarks.common import RunOutcome
from pipelines.corpora import OpenIReport, read_openi
from pipelines.schema import (
    AnalysisError,
    AnatomyRef,
    Assertion,
    ConceptRef,
    FindingOut,
    Laterality,
    ReportAnalysis,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*W036")

# uid, MeSH, indication, findings, impression (team-written sentences)
ROWS = [
    ("1", "Diaphragm/right/elevated;Pleural Effusion/left/small;Cardiomegaly/mild",
     "Chest pain.", "Elevated right hemidiaphragm. Small left pleural effusion.",
     "No acute disease."),
    ("2", "Opacity/lung/base/left;Opacity/lung/upper lobe/right", "Cough.",
     "Patchy opacity in the left lung base. No pneumothorax.", "Left basilar opacity."),
    ("3", "Lung/hypoinflation;Aorta/tortuous;Costophrenic Angle/right/blunted;Pneumonia;"
     "Technical Quality of Image Unsatisfactory;Lung/mild", "History of pneumonia.",
     "Low lung volumes. Tortuous aorta. Blunting of the right costophrenic angle.", ""),
    ("4", "Cardiomegaly/mild", "Dyspnea.",
     "Mild cardiomegaly. Possible pneumothorax on the right.", ""),
    ("5", "No Indexing", "", "", ""),
]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "openi_dev"
    folder.mkdir()
    with open(folder / "reports.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uid", "MeSH", "Problems", "image", "indication", "comparison",
                         "findings", "impression"])
        for uid, mesh, indication, findings, impression in ROWS:
            writer.writerow([uid, mesh, "", "", indication, "", findings, impression])
    with open(folder / "labels14.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "Cardiomegaly", "normal"])
        for uid, *_ in ROWS:
            writer.writerow([f"CXR{uid}", 0, 0])
    return tmp_path


def test_term_keys_laterality_and_regions() -> None:
    terms = openi_mesh.load_mesh_terms()
    assert terms.keys_of("Opacity/lung/base/left") == ("Opacity",)
    assert terms.keys_of("Diaphragm/right/elevated") == ("Diaphragm/right", "Diaphragm/elevated")
    assert terms.concepts_of("Diaphragm/right/elevated") == {"elevated_hemidiaphragm"}
    assert terms.concepts_of("Lung/mild") == frozenset()
    assert terms.is_out_of_scope("No Indexing") and not terms.is_out_of_scope("Opacity")
    assert openi_mesh.term_laterality("Opacity/lung/base/left") == "left"
    assert openi_mesh.term_laterality("Cicatrix/lung/base/bilateral") == "bilateral"
    assert openi_mesh.term_laterality("Cardiomegaly/mild") is None
    assert openi_mesh.term_regions("Opacity/lung/base/left", terms) == ("base",)
    assert openi_mesh.term_regions("Opacity/lung/upper lobe/right", terms) == ("upper lobe",)


def _finding(name: str, start: int, *, laterality: Laterality | None = None,
             anatomy: tuple[str, str] | None = None, assertion: Assertion = "present",
             historical: bool = False) -> FindingOut:
    return FindingOut(text=name, start=start, end=start + len(name),
                      concept=ConceptRef(name=name), laterality=laterality,
                      anatomy=AnatomyRef(name=anatomy[0], text=anatomy[1]) if anatomy else None,
                      assertion=assertion, historical=historical)


def test_mesh_agreement_counts_each_kind() -> None:
    reports = [
        OpenIReport("a", "x" * 100, 10, frozenset(),
                    ("Opacity/lung/base/left", "Opacity/lung/base/left",
                     "Pleural Effusion/bilateral", "Cardiomegaly", "normal", "Lung/mild")),
        OpenIReport("b", "x" * 100, 10, frozenset(), ("Pneumonia",)),
        OpenIReport("c", "x" * 100, 10, frozenset(), ("Cardiomegaly",)),
    ]
    outcome = RunOutcome(results={
        "a": ReportAnalysis(id="a", model_version="t", findings=[
            _finding("opacity", 20, laterality="left", anatomy=("lung base", "bibasilar")),
            _finding("pleural effusion", 40, laterality="left"),
            _finding("pleural effusion", 60, laterality="right"),
            _finding("cardiomegaly", 80, assertion="absent"),
            _finding("pneumothorax", 90, assertion="possible"),
        ]),
        "b": ReportAnalysis(id="b", model_version="t", findings=[
            _finding("pneumonia", 2),  # before the body: the indication
            _finding("pneumonia", 30, historical=True),
        ]),
        "c": AnalysisError(id="c", error="failed"),
    })
    agreement = openi_mesh.mesh_agreement(reports, outcome)
    # Terms: opacity (once; duplicates count once), effusion, cardiomegaly, pneumonia,
    # cardiomegaly of the failed report; "normal" is out of scope, "Lung/mild" not in the map.
    assert (agreement.finding.agreed, agreement.finding.total) == (2, 5)
    assert (agreement.laterality.agreed, agreement.laterality.total) == (2, 2)
    assert (agreement.anatomy.agreed, agreement.anatomy.total) == (1, 1)
    assert (agreement.anatomy_laterality.agreed, agreement.anatomy_laterality.total) == (1, 1)
    assert (agreement.out_of_scope_terms, agreement.unmapped_terms) == (1, 1)
    # Reverse: opacity and pleural effusion are indexed, the possible pneumothorax is not.
    assert (agreement.supported.agreed, agreement.supported.total) == (2, 3)
    assert agreement.by_key["Cardiomegaly"].total == 2
    table = openi_mesh.format_mesh_agreement(["sys"], [agreement], by_key=True)
    assert "finding+anatomy+lat." in table and "Pleural Effusion" in table


def test_wrong_side_and_region_disagree() -> None:
    reports = [OpenIReport("a", "x" * 50, 0, frozenset(), ("Opacity/lung/upper lobe/right",))]
    outcome = RunOutcome(results={"a": ReportAnalysis(id="a", model_version="t", findings=[
        _finding("opacity", 5, laterality="left", anatomy=("lung base", "left base"))])})
    agreement = openi_mesh.mesh_agreement(reports, outcome)
    assert agreement.finding.agreed == 1
    assert agreement.laterality.agreed == 0 and agreement.laterality.total == 1
    assert agreement.anatomy.agreed == 0 and agreement.anatomy.total == 1


def test_main_runs_rules_mode(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports = read_openi(data_dir / "openi_dev")
    assert reports[2].mesh[1] == "Aorta/tortuous"
    assert openi_mesh.main([str(data_dir), "--systems", "rules", "--by-term"]) == 0
    out = capsys.readouterr().out
    rows = {line[:28].strip(): line[28:].split() for line in out.splitlines() if line.strip()}
    # Scored terms: 1 diaphragm, effusion, cardiomegaly (not stated: not agreed); 2 opacity x2;
    # 3 hypoinflation, aorta, costophrenic angle, pneumonia (only in the indication: not
    # agreed); 4 cardiomegaly.
    assert rows["finding"][0].startswith("8/10")
    # Laterality: right diaphragm, left effusion, left opacity, right upper lobe (wrong side),
    # right costophrenic angle.
    assert rows["finding+laterality"][0].startswith("4/5")
    assert rows["finding+anatomy"][0].startswith("1/2")
    # Reverse: the possible pneumothorax of report 4 has no MeSH term.
    assert rows["reverse: supported"][0].startswith("7/8")
    assert "Aorta/tortuous" in out


def test_main_rejects_unknown_system(data_dir: Path) -> None:
    with pytest.raises(SystemExit):
        openi_mesh.main([str(data_dir), "--systems", "medspacy"])
