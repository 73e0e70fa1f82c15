"""Request and response models of the reports API (several small models per entity)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class FindingPublic(_Public):
    index: int
    text: str
    start: int
    end: int
    section: str | None
    concept: str | None
    radlex: str | None
    snomed: str | None
    assertion: str
    historical: bool
    hypothetical: bool
    change: str | None
    anatomy: str | None
    laterality: str | None
    size_mm: float | None
    in_indication: bool
    fhir_id: str | None = Field(description="Id of its FHIR Observation (none for findings "
                                            "of the indication section).")


class RecommendationPublic(_Public):
    index: int
    text: str
    start: int
    end: int
    kind: str
    modality: str | None
    modalities: list[str] = Field(description="The acceptable modalities; any fulfils it.")
    body_region: str | None
    interval_min_days: int | None
    interval_max_days: int | None
    short_interval: bool
    due_start: datetime | None
    due_end: datetime | None
    conditional: bool
    next_step: dict[str, Any] | None = Field(
        description="The later step of a sequence: modalities, interval_min_days, "
                    "interval_max_days.")
    guideline: str | None
    finding_index: int | None
    fhir_id: str = Field(description="Id of its FHIR ServiceRequest.")


class ReportPublic(_Public):
    id: int
    accession: str
    version: int
    is_current: bool
    superseded_by: int | None
    entered_in_error: bool
    result_status: str
    patient_mrn: str
    procedure_code: str | None
    procedure_name: str | None
    modality: str | None
    body_region: str | None
    observed_at: datetime | None
    ordering_provider: str | None
    interpreter: str | None
    model_version: str
    fhir_id: str = Field(description="Id of its FHIR DiagnosticReport.")
    created_at: datetime


class CriticalPublic(BaseModel):
    """A critical or actionable finding of the report (ACR category) and its communication."""

    finding_index: int
    concept: str
    category: int = Field(description="ACR Actionable Reporting Work Group category: 1 "
                                      "minutes, 2 hours, 3 days.")
    target_minutes: int
    communicated_at: datetime | None
    compliance: str = Field(description="in_time, late or not_documented")


class ReportDetail(ReportPublic):
    text: str
    findings: list[FindingPublic]
    recommendations: list[RecommendationPublic]
    critical_findings: list[CriticalPublic] = Field(default_factory=list)
    versions: list[int] = Field(description="Database ids of every version of this accession, "
                                            "oldest first.")


class ReportPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[ReportPublic]


class AnalyzeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="The report text.")
    id: str = Field(default="report", max_length=200, description="Echoed in the analysis.")


class InboxFailure(_Public):
    id: int
    control_id: str
    source: str
    received_at: datetime
    attempts: int
    last_error: str | None


class InboxStatus(BaseModel):
    counts: dict[str, int] = Field(description="Messages by status: pending, processing, done, "
                                               "failed (set aside).")
    failed: list[InboxFailure] = Field(description="The set-aside messages, newest first.")


class DeadLetterPublic(_Public):
    id: int
    control_id: str | None
    source: str
    received_at: datetime
    ack_code: str
    error_code: int
    reason: str
    size: int = Field(description="Bytes kept.")


class DeadLetterPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[DeadLetterPublic]
