"""Shared pieces of the benchmarks: running a system over reports safely."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pipelines.pipeline import ReportInput
from pipelines.schema import AnalysisError, FindingOut, ReportAnalysis
from terminology import load_lexicon

Result = ReportAnalysis | AnalysisError


class System(Protocol):
    def analyze_stream(self, reports: Iterable[ReportInput], *,
                       batch_size: int = 64) -> Iterable[Result]: ...


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


@functools.cache
def _finding_id_of_name() -> dict[str, str]:
    # ReportAnalysis carries the concept's name, not its id; finding names are unique.
    return {c.name: c.id for c in load_lexicon().of_kind("finding")}


def finding_concept_id(finding: FindingOut) -> str | None:
    """The lexicon id of a finding's concept (None when it has none)."""
    return _finding_id_of_name().get(finding.concept.name) if finding.concept else None
