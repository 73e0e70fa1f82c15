"""Readers for the outside report collections used for silver training data and benchmarks.

Report text is read by path at run time and never copied into the project.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CMC_TRAIN_FILE = "cmc2007_train.xml"
CMC_TEST_FILE = "cmc2007_test_nocodes.xml"
HISTORY_HEADER = "CLINICAL HISTORY: "
IMPRESSION_HEADER = "IMPRESSION: "
GOLD_ORIGIN = "CMC_MAJORITY"


@dataclass(frozen=True)
class CmcReport:
    """One CMC 2007 report: the text we build from its two parts, and its majority codes."""

    id: str
    text: str
    impression_start: int  # offset of the "IMPRESSION:" header in ``text``
    codes: frozenset[str]


def build_cmc_text(history: str, impression: str) -> tuple[str, int]:
    """The report text and the offset where its IMPRESSION header begins."""
    head = f"{HISTORY_HEADER}{history}\n\n"
    return f"{head}{IMPRESSION_HEADER}{impression}", len(head)


def read_cmc(path: str | Path) -> list[CmcReport]:
    """Read a CMC 2007 XML file (codes are empty for the test file, which has none)."""
    reports = []
    for doc in ET.parse(path).getroot().iter("doc"):
        parts = {t.get("type"): (t.text or "").strip() for t in doc.iter("text")}
        text, start = build_cmc_text(parts.get("CLINICAL_HISTORY", ""),
                                     parts.get("IMPRESSION", ""))
        codes = frozenset((c.text or "").strip() for c in doc.iter("code")
                          if c.get("origin") == GOLD_ORIGIN)
        reports.append(CmcReport(id=str(doc.get("id")), text=text, impression_start=start,
                                 codes=codes))
    return reports


OPENI_DIR = "openi_dev"
OPENI_REPORTS_FILE = "reports.csv"
OPENI_LABELS_FILE = "labels14.csv"
# The report's parts in the order a radiology report gives them, with the headers the
# sectionizer knows; the labels were assigned from the findings and impression.
OPENI_PARTS = (("indication", "INDICATION"), ("comparison", "COMPARISON"),
               ("findings", "FINDINGS"), ("impression", "IMPRESSION"))
OPENI_BODY_PARTS = frozenset({"findings", "impression"})


@dataclass(frozen=True)
class OpenIReport:
    """One Open-i chest X-ray report: our text of its parts, its 14-label reference, its MeSH."""

    id: str
    text: str
    body_start: int  # where FINDINGS (or IMPRESSION, when there are no findings) begins
    labels: frozenset[str]  # the reference labels set to 1 (``normal`` excluded)
    mesh: tuple[str, ...]  # the collection's MeSH indexing, e.g. "Opacity/lung/base/left"


def build_openi_text(parts: dict[str, str]) -> tuple[str, int]:
    """The report text (``HEADER: text`` paragraphs) and where its findings/impression begin."""
    paragraphs: list[str] = []
    body_start = None
    length = 0
    for key, header in OPENI_PARTS:
        value = (parts.get(key) or "").strip()
        if not value:
            continue
        if key in OPENI_BODY_PARTS and body_start is None:
            body_start = length
        paragraph = f"{header}: {value}"
        paragraphs.append(paragraph)
        length += len(paragraph) + 2
    text = "\n\n".join(paragraphs)
    return text, len(text) if body_start is None else body_start


def read_openi(folder: str | Path) -> list[OpenIReport]:
    """Read ``reports.csv`` and ``labels14.csv`` of an Open-i folder (reports in file order)."""
    import csv

    folder = Path(folder)
    with open(folder / OPENI_LABELS_FILE, newline="") as handle:
        label_rows = {row["filename"]: row for row in csv.DictReader(handle)}
    reports = []
    with open(folder / OPENI_REPORTS_FILE, newline="") as handle:
        for row in csv.DictReader(handle):
            text, body_start = build_openi_text(row)
            labels = label_rows.get(f"CXR{row['uid']}", {})
            positive = frozenset(name for name, value in labels.items()
                                 if name not in ("filename", "normal") and value == "1")
            mesh = tuple(term.strip() for term in (row.get("MeSH") or "").split(";")
                         if term.strip())
            reports.append(OpenIReport(id=row["uid"], text=text, body_start=body_start,
                                       labels=positive, mesh=mesh))
    return reports
