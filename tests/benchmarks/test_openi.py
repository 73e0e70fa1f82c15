"""The Open-i benchmark on a tiny folder written here in the collection's CSV format."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from benchmarks import openi
from pipelines.corpora import read_openi

pytestmark = pytest.mark.filterwarnings("ignore:.*W036")

LABELS = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule",
          "Pneumonia", "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis",
          "Pleural_Thickening", "Hernia"]
# uid, indication, findings, impression, positive labels (team-written sentences)
ROWS = [
    ("1", "Cough.", "The lungs are clear of focal airspace disease, pneumothorax, or pleural "
     "effusion. The heart is mildly enlarged.", "Cardiomegaly.", ["Cardiomegaly"]),
    ("2", "Evaluate for pneumonia.", "Right middle lobe infiltrate. No pneumothorax.",
     "Infiltrate.", ["Infiltration"]),
    ("3", "Shortness of breath.", "Small left pleural effusion. Possible pneumothorax.", "",
     ["Effusion", "Pneumothorax"]),
    ("4", "", "", "", []),
]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "openi_dev"
    folder.mkdir()
    with open(folder / "reports.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uid", "MeSH", "Problems", "image", "indication", "comparison",
                         "findings", "impression"])
        for uid, indication, findings, impression, _ in ROWS:
            writer.writerow([uid, "Cardiomegaly/mild;Opacity/lung/middle lobe/right", "", "",
                             indication, "", findings, impression])
    with open(folder / "labels14.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", *LABELS, "normal"])
        for uid, *_, positive in ROWS:
            writer.writerow([f"CXR{uid}", *(int(lb in positive) for lb in LABELS),
                             int(not positive)])
    return tmp_path


def test_read_openi_builds_sections_and_reads_labels(data_dir: Path) -> None:
    report = read_openi(data_dir / "openi_dev")[1]
    assert report.text.startswith("INDICATION: Evaluate for pneumonia.\n\nFINDINGS: ")
    assert report.text[report.body_start:].startswith("FINDINGS:")
    assert report.labels == {"Infiltration"}
    assert report.mesh == ("Cardiomegaly/mild", "Opacity/lung/middle lobe/right")


def test_label_map_names_lexicon_findings_with_a_rationale() -> None:
    mappings = openi.load_label_map()
    assert set(mappings) == set(LABELS)
    assert all(m.rationale and m.concepts for m in mappings.values())


def test_main_scores_rules_mode_and_writes_errors(data_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    errors = tmp_path / "errors.tsv"
    assert openi.main([str(data_dir), "--systems", "rules", "--errors", str(errors)]) == 0
    out = capsys.readouterr().out
    primary, _, lenient = out.partition("possible as positive")
    rows = {line.split()[0]: line.split() for line in primary.splitlines() if line.strip()}
    # Cardiomegaly (stated as a predicate), Infiltration, Effusion: found; the pneumothorax
    # of report 3 is only possible, so it is a false negative under the primary policy.
    assert rows["Cardiomegaly"][1:5] == ["1", "1", "0", "0"]
    assert rows["Infiltration"][1:5] == ["1", "1", "0", "0"]
    assert rows["Pneumothorax"][1:5] == ["1", "0", "0", "1"]
    lenient_rows = {line.split()[0]: line.split() for line in lenient.splitlines()
                    if line.strip()}
    assert lenient_rows["Pneumothorax"][1:5] == ["1", "1", "0", "0"]
    lines = errors.read_text().splitlines()
    assert lines[0].startswith("system\tkind\tcause")
    assert any("\tFN\tasserted possible\tPneumothorax\t3\t" in line for line in lines)
