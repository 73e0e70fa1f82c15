"""Shared pieces of the benchmarks: reading CMC 2007 reports and running a system safely."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pipelines.pipeline import ReportInput
from pipelines.schema import AnalysisError, ReportAnalysis

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRAIN_FILE = "cmc2007_train.xml"
TEST_FILE = "cmc2007_test_nocodes.xml"
HISTORY_HEADER = "CLINICAL HISTORY: "
IMPRESSION_HEADER = "IMPRESSION: "
GOLD_ORIGIN = "CMC_MAJORITY"

Result = ReportAnalysis | AnalysisError


class System(Protocol):
    def analyze_stream(self, reports: Iterable[ReportInput], *,
                       batch_size: int = 64) -> Iterable[Result]: ...


@dataclass(frozen=True)
class CmcReport:
    """One CMC 2007 report: the text we build from its two parts, and its majority codes."""

    id: str
    text: str
    impression_start: int  # offset of the "IMPRESSION:" header in ``text``
    codes: frozenset[str]


def build_text(history: str, impression: str) -> tuple[str, int]:
    """The report text and the offset where its IMPRESSION header begins."""
    head = f"{HISTORY_HEADER}{history}\n\n"
    return f"{head}{IMPRESSION_HEADER}{impression}", len(head)


def read_cmc(path: str | Path) -> list[CmcReport]:
    """Read a CMC 2007 XML file (codes are empty for the test file, which has none)."""
    reports = []
    for doc in ET.parse(path).getroot().iter("doc"):
        parts = {t.get("type"): (t.text or "").strip() for t in doc.iter("text")}
        text, start = build_text(parts.get("CLINICAL_HISTORY", ""), parts.get("IMPRESSION", ""))
        codes = frozenset((c.text or "").strip() for c in doc.iter("code")
                          if c.get("origin") == GOLD_ORIGIN)
        reports.append(CmcReport(id=str(doc.get("id")), text=text, impression_start=start,
                                 codes=codes))
    return reports


@dataclass
class RunOutcome:
    """A system's results by report id, and how many reports raised instead of yielding."""

    results: dict[str, Result]
    crashes: int = 0

    @property
    def analysed(self) -> int:
        return sum(isinstance(r, ReportAnalysis) for r in self.results.values())

    @property
    def errors(self) -> int:
        return sum(isinstance(r, AnalysisError) for r in self.results.values())


def run_system(system: System, reports: Sequence[ReportInput], batch_size: int = 64) -> RunOutcome:
    """Run a system batch by batch; a batch that raises is retried report by report."""
    outcome = RunOutcome(results={})
    for i in range(0, len(reports), batch_size):
        batch = reports[i:i + batch_size]
        try:
            results = list(system.analyze_stream(batch, batch_size=batch_size))
        except Exception:
            results = []
            for report in batch:
                try:
                    results.extend(system.analyze_stream([report], batch_size=1))
                except Exception as exc:
                    outcome.crashes += 1
                    results.append(AnalysisError(id=report.id,
                                                 error=f"crash: {type(exc).__name__}: {exc}"))
        for report, result in zip(batch, results, strict=True):
            outcome.results[report.id] = result
    return outcome
