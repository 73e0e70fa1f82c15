"""The analysis contract: what the pipeline returns for one report (see DESIGN.md).

Version changes to this contract bump ``SCHEMA_VERSION``. 1.2: finding ``descriptors``, the
report's ``clinical_context`` and ``declined_follow_up``, a recommendation's ``cited_source``,
``later_step`` and ``tissue_sampling`` (what guideline checks read), and
``RecommendationOut.communication`` (who, how, when and read-back of a documented communication
of results).
"""

from __future__ import annotations

import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = "1.2"

Assertion = Literal["present", "absent", "possible"]
Laterality = Literal["left", "right", "bilateral"]
Change = Literal["new", "stable", "increased", "decreased", "resolved"]
DescriptorName = Literal["texture", "benign_feature", "suspicious_feature", "cyst_type",
                         "bosniak", "attenuation_hu", "multiple", "ti_rads", "organ"]
RecommendationKind = Literal["imaging", "clinical_correlation", "comparison_with_prior",
                             "consultation", "communication"]


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


class Descriptor(_Model):
    """A word the report uses to describe a finding, as guideline checks read it: ``name`` is
    what it describes, ``value`` the reading ("texture": "part-solid"; "benign_feature":
    "calcified"; "bosniak": "IIF"; "attenuation_hu": "-5"; "organ": "thyroid")."""

    name: DescriptorName
    value: str
    text: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class Mention(_Model):
    """Words of the report (``start``/``end`` None when read outside the report text)."""

    text: str
    start: int | None = Field(default=None, ge=0)
    end: int | None = Field(default=None, ge=0)


class ClinicalContext(_Model):
    """What the history, indication, exam and technique sections say about the patient."""

    cancer: Mention | None = None
    immunosuppression: Mention | None = None
    screening: Mention | None = None
    thyroid_disease: Mention | None = None
    lung_rads: Literal["0", "1", "2", "3", "4A", "4B", "4X"] | None = None
    smoking_risk: Literal["low", "high"] | None = None


class DeclinedFollowUp(_Model):
    """A statement that no follow-up is needed, and the guideline source its item cites."""

    text: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    source: str | None = None


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
    descriptors: list[Descriptor] = Field(default_factory=list)


class RecommendationStep(_Model):
    """The later step of a sequence ("CT in 6-12 months, then at 18-24 months")."""

    modalities: list[str] = Field(default_factory=list)
    interval_min_days: int | None = Field(default=None, ge=0)
    interval_max_days: int | None = Field(default=None, ge=0)


CommunicationMethod = Literal["telephone", "in_person", "secure_message", "page", "email", "fax",
                              "verbal"]


class CommunicationOut(_Model):
    """A documented communication of results: who was told, how, the date and clock time as
    the report states them (``time`` "HH:MM", 24 h; no time zone: the report's), read-back."""

    recipient: str | None = None
    method: CommunicationMethod | None = None
    date: datetime.date | None = None
    time: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    read_back: bool = False


class RecommendationOut(_Model):
    """A requested action. ``modalities`` are the acceptable alternatives ("CT or MRI"), any
    of which fulfils it; ``modality`` is the first (kept for 1.0 readers)."""

    text: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    kind: RecommendationKind = "imaging"
    modality: str | None = None
    modalities: list[str] = Field(default_factory=list)
    body_region: str | None = None
    interval_min_days: int | None = None
    interval_max_days: int | None = None
    short_interval: bool = False
    conditional: bool = False
    next_step: RecommendationStep | None = None
    guideline: str | None = None
    cited_source: str | None = None
    later_step: bool = False
    tissue_sampling: bool = False
    finding_index: int | None = None
    communication: CommunicationOut | None = None  # kind "communication" only

    @model_validator(mode="after")
    def _modality_is_first_alternative(self) -> RecommendationOut:
        if self.modalities and self.modality is None:
            self.modality = self.modalities[0]
        elif self.modality and not self.modalities:
            self.modalities = [self.modality]
        if self.modalities and self.modality != self.modalities[0]:
            raise ValueError("modality must be the first of modalities")
        return self


class ReportAnalysis(_Model):
    id: str
    model_version: str
    schema_version: str = SCHEMA_VERSION
    sections: list[Section] = Field(default_factory=list)
    findings: list[FindingOut] = Field(default_factory=list)
    recommendations: list[RecommendationOut] = Field(default_factory=list)
    clinical_context: ClinicalContext = Field(default_factory=ClinicalContext)
    declined_follow_up: list[DeclinedFollowUp] = Field(default_factory=list)


class AnalysisError(_Model):
    """Emitted in place of an analysis when one report cannot be processed."""

    id: str | None
    error: str
    line: int | None = None
