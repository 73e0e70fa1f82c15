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
