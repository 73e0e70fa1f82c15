"""The annotation document: one report with its labelled spans and recommendations.

The serialised form is the gold JSON Lines form (``annotations/gold/GUIDELINES.md``), plus the
optional span fields ``concept``, ``laterality``, ``source`` and ``status``.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.schema import Assertion, Laterality, ReportAnalysis

SpanLabel = Literal["FINDING", "ANATOMY", "MEASUREMENT"]
Source = Literal["model", "annotator"]
Status = Literal["pending", "accepted"]

SPAN_LABELS: tuple[str, ...] = ("FINDING", "ANATOMY", "MEASUREMENT")
DEFAULT_SOURCE: Source = "annotator"
DEFAULT_STATUS: Status = "accepted"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnnotatedSpan(_Model):
    """A labelled span; ``text`` is filled from the report text when left empty."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    label: SpanLabel
    text: str = ""
    assertion: Assertion | None = None
    concept: str | None = None
    laterality: Laterality | None = None
    source: Source = DEFAULT_SOURCE
    status: Status = DEFAULT_STATUS

    def describe(self) -> str:
        """A short name for error messages: label, offsets and text."""
        return f"{self.label} span {self.start}-{self.end} {self.text!r}"


class AnnotatedRecommendation(_Model):
    """A follow-up recommendation sentence with its attributes."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str = ""
    modality: str | None = None
    body_region: str | None = None
    interval_min_days: int | None = None
    interval_max_days: int | None = None
    conditional: bool = False
    source: Source = DEFAULT_SOURCE
    status: Status = DEFAULT_STATUS

    def describe(self) -> str:
        """A short name for error messages: offsets and text."""
        return f"recommendation {self.start}-{self.end} {self.text!r}"


_Item = TypeVar("_Item", AnnotatedSpan, AnnotatedRecommendation)


def _check_offsets(item: _Item, text: str, report_id: str) -> _Item:
    """Check ``item``'s offsets against ``text``; return it with ``text`` filled if empty."""
    where = f"report {report_id!r}: {item.describe()}"
    if item.end <= item.start:
        raise ValueError(f"{where}: end must be greater than start")
    if item.end > len(text):
        raise ValueError(f"{where}: end is past the end of the report text "
                         f"({len(text)} characters)")
    actual = text[item.start:item.end]
    if not item.text:
        return item.model_copy(update={"text": actual})
    if item.text != actual:
        raise ValueError(f"{where}: text does not match the report text at these offsets "
                         f"({actual!r})")
    return item


class AnnotatedReport(_Model):
    """One report with its annotations, as pre-annotated by a model or edited by an annotator."""

    id: str
    text: str
    split: str | None = None
    modality: str | None = None
    spans: list[AnnotatedSpan] = Field(default_factory=list)
    recommendations: list[AnnotatedRecommendation] = Field(default_factory=list)
    model_version: str | None = None
    annotator: str | None = None

    @model_validator(mode="after")
    def _check_spans(self) -> AnnotatedReport:
        seen: set[tuple[int, int, str]] = set()
        for index, span in enumerate(self.spans):
            checked = _check_offsets(span, self.text, self.id)
            if checked.assertion is not None and checked.label != "FINDING":
                raise ValueError(f"report {self.id!r}: {checked.describe()}: only FINDING spans "
                                 f"have an assertion (got {checked.assertion!r})")
            key = (checked.start, checked.end, checked.label)
            if key in seen:
                raise ValueError(f"report {self.id!r}: {checked.describe()}: duplicate span "
                                 "(same offsets and label as an earlier one)")
            seen.add(key)
            # Item assignment, not attribute assignment: the list is ours and already validated.
            self.spans[index] = checked
        seen_recs: set[tuple[int, int]] = set()
        for index, rec in enumerate(self.recommendations):
            checked_rec = _check_offsets(rec, self.text, self.id)
            if (checked_rec.start, checked_rec.end) in seen_recs:
                raise ValueError(f"report {self.id!r}: {checked_rec.describe()}: duplicate "
                                 "recommendation (same offsets as an earlier one)")
            seen_recs.add((checked_rec.start, checked_rec.end))
            self.recommendations[index] = checked_rec
        return self

    @classmethod
    def from_analysis(cls, analysis: ReportAnalysis, text: str, *, report_id: str | None = None,
                      split: str | None = None, modality: str | None = None) -> AnnotatedReport:
        """Pre-annotate ``text`` from a pipeline analysis: every item is a pending model span.

        FINDING spans carry assertion, concept and laterality; ANATOMY and MEASUREMENT spans come
        from the findings' anatomy and measurements that have offsets. ``report_id`` defaults to
        the analysis id.
        """
        pending: dict[str, Any] = {"source": "model", "status": "pending"}
        spans: dict[tuple[int, int, str], AnnotatedSpan] = {}

        def add(span: AnnotatedSpan) -> None:
            # Several findings can share one anatomy or measurement mention: keep the first.
            spans.setdefault((span.start, span.end, span.label), span)

        for finding in analysis.findings:
            add(AnnotatedSpan(
                start=finding.start, end=finding.end, label="FINDING",
                assertion=finding.assertion,
                concept=finding.concept.name if finding.concept is not None else None,
                laterality=finding.laterality, **pending))
            anatomy = finding.anatomy
            if anatomy is not None and anatomy.start is not None and anatomy.end is not None:
                add(AnnotatedSpan(start=anatomy.start, end=anatomy.end, label="ANATOMY",
                                  **pending))
            for measurement in finding.measurements:
                if measurement.start is not None and measurement.end is not None:
                    add(AnnotatedSpan(start=measurement.start, end=measurement.end,
                                      label="MEASUREMENT", **pending))
        recommendations = [
            AnnotatedRecommendation(
                start=rec.start, end=rec.end, modality=rec.modality, body_region=rec.body_region,
                interval_min_days=rec.interval_min_days, interval_max_days=rec.interval_max_days,
                conditional=rec.conditional, **pending)
            for rec in sorted(analysis.recommendations, key=lambda r: (r.start, r.end))]
        return cls(
            id=report_id if report_id is not None else analysis.id, text=text, split=split,
            modality=modality, spans=[spans[key] for key in sorted(spans)],
            recommendations=list({(r.start, r.end): r for r in recommendations}.values()),
            model_version=analysis.model_version)

    def to_gold_dict(self) -> dict[str, Any]:
        """The gold JSON Lines object; optional fields appear only when set or non-default."""
        data: dict[str, Any] = {"id": self.id, "split": self.split, "modality": self.modality,
                                "text": self.text}
        data["spans"] = [_span_dict(span) for span in self.spans]
        data["recommendations"] = [_recommendation_dict(rec) for rec in self.recommendations]
        if self.model_version is not None:
            data["model_version"] = self.model_version
        if self.annotator is not None:
            data["annotator"] = self.annotator
        return data

    @classmethod
    def from_gold_dict(cls, data: dict[str, Any]) -> AnnotatedReport:
        """Read one gold JSON Lines object (as written by ``to_gold_dict`` or the gold file)."""
        return cls.model_validate(data)

    def accepted(self) -> AnnotatedReport:
        """A copy with every pending span and recommendation accepted."""
        return self.model_copy(update={
            "spans": [s.model_copy(update={"status": "accepted"}) for s in self.spans],
            "recommendations": [r.model_copy(update={"status": "accepted"})
                                for r in self.recommendations]})

    @property
    def pending(self) -> int:
        """How many spans and recommendations still await review."""
        return (sum(span.status == "pending" for span in self.spans)
                + sum(rec.status == "pending" for rec in self.recommendations))


def _provenance(item: AnnotatedSpan | AnnotatedRecommendation) -> dict[str, str]:
    data: dict[str, str] = {}
    if item.source != DEFAULT_SOURCE:
        data["source"] = item.source
    if item.status != DEFAULT_STATUS:
        data["status"] = item.status
    return data


def _span_dict(span: AnnotatedSpan) -> dict[str, Any]:
    data: dict[str, Any] = {"start": span.start, "end": span.end, "label": span.label,
                            "text": span.text}
    for name in ("assertion", "concept", "laterality"):
        value = getattr(span, name)
        if value is not None:
            data[name] = value
    return data | _provenance(span)


def _recommendation_dict(rec: AnnotatedRecommendation) -> dict[str, Any]:
    data = rec.model_dump(exclude={"source", "status"})
    return data | _provenance(rec)
