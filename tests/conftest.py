"""Shared fixtures: the rules pipeline is built once per session, never at import time."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipelines.pipeline import RadiologyPipeline
from pipelines.schema import FindingOut, ReportAnalysis


@pytest.fixture(scope="session")
def rules_pipeline() -> RadiologyPipeline:
    return RadiologyPipeline.load("rules")


@pytest.fixture(scope="session")
def analyze(rules_pipeline: RadiologyPipeline) -> Callable[[str], ReportAnalysis]:
    return lambda text: rules_pipeline.analyze(text, "test")


@pytest.fixture(scope="session")
def finding() -> Callable[..., FindingOut]:
    """Look up the single finding whose text is ``text`` (``occurrence`` picks among repeats)."""

    def lookup(analysis: ReportAnalysis, text: str, occurrence: int = 1) -> FindingOut:
        matches = [f for f in analysis.findings if f.text.lower() == text.lower()]
        assert len(matches) >= occurrence, (
            f"{text!r} not found; findings: {[f.text for f in analysis.findings]}")
        return matches[occurrence - 1]

    return lookup
