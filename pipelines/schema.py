"""The analysis contract: what the pipeline returns for one report (see DESIGN.md).

Version changes to this contract bump ``SCHEMA_VERSION``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.0"

Assertion = Literal["present", "absent", "possible"]
Laterality = Literal["left", "right", "bilateral"]
Change = Literal["new", "stable", "increased", "decreased", "resolved"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConceptRef(_Model):
    """A terminology concept with its codes (``None`` where no verified code exists)."""

    name: str
    radlex: str | None = None
    snomed: str | None = None


class AnatomyRef(ConceptRef):
    """An anatomy concept and where the text names it."""

    text: str | None = None
    start: int | None = Field(default=None, ge=0)
    end: int | None = Field(default=None, ge=0)


class Section(_Model):
    name: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class Measurement(_Model):
    value: float
    unit: str
    text: str
    start: int | None = Field(default=None, ge=0)
    end: int | None = Field(default=None, ge=0)
    dimensions: list[float] = Field(default_factory=list)
    qualifier: Literal["up to", "less than", "greater than", "subcentimeter"] | None = None


class FindingOut(_Model):
    text: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    section: str | None = None
    concept: ConceptRef | None = None
    assertion: Assertion = "present"
    historical: bool = False
    hypothetical: bool = False
    change: Change | None = None
    anatomy: AnatomyRef | None = None
    laterality: Laterality | None = None
    measurements: list[Measurement] = Field(default_factory=list)
    in_indication: bool = False
    sources: list[str] = Field(default_factory=lambda: ["rules"])
    score: float = 1.0


class RecommendationOut(_Model):
    text: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    modality: str | None = None
    body_region: str | None = None
    interval_min_days: int | None = None
    interval_max_days: int | None = None
    conditional: bool = False
    guideline: str | None = None
    finding_index: int | None = None


class ReportAnalysis(_Model):
    id: str
    model_version: str
    schema_version: str = SCHEMA_VERSION
    sections: list[Section] = Field(default_factory=list)
    findings: list[FindingOut] = Field(default_factory=list)
    recommendations: list[RecommendationOut] = Field(default_factory=list)


class AnalysisError(_Model):
    """Emitted in place of an analysis when one report cannot be processed."""

    id: str | None
    error: str
    line: int | None = None
