"""Map one report and its analysis to FHIR R4 resources, each validated with the R4B models.

Codes come only from the project's terminology files (RadLex, SNOMED CT, DICOM modality codes),
the LOINC radiology category named in DESIGN.md, HL7 code systems, CPT codes received in OBR-4,
and UCUM ``mm``; anything without such a code is given as text.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.domainresource import DomainResource
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.subscription import Subscription
from fhir.resources.R4B.task import Task

from nlp_service.audit.critical import CriticalMatch, critical_findings, critical_table
from nlp_service.audit.rules import recommendation_due_window
from nlp_service.intake.message import ParsedReport
from pipelines.schema import (
    Assertion,
    ConceptRef,
    FindingOut,
    Measurement,
    RecommendationOut,
    RecommendationStep,
    ReportAnalysis,
)
from pipelines.sections import load_section_rules
from terminology import vocabulary
from terminology.lexicon import Concept, load_lexicon
from terminology.procedures import CPT_SYSTEMS

Resource = dict[str, Any]

SNOMED_SYSTEM = "http://snomed.info/sct"
# The url of the RadLex CodeSystem in HL7 Terminology (THO), OID 2.16.840.1.113883.6.256.
RADLEX_SYSTEM = "http://radlex.org"
LOINC_SYSTEM = "http://loinc.org"
CPT_SYSTEM = "http://www.ama-assn.org/go/cpt"
DICOM_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"
UCUM_SYSTEM = "http://unitsofmeasure.org"
IDENTIFIER_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"
SERVICE_SECTION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0074"
OBSERVATION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"

DEFAULT_ACCESSION_SYSTEM = "urn:radnlp:accession"
DEFAULT_PLACER_SYSTEM = "urn:radnlp:placer"
DEFAULT_MRN_SYSTEM = "urn:radnlp:mrn"

EXTENSION_BASE = "https://radnlp.dev/fhir/StructureDefinition/"
EXT_MODEL_VERSION = EXTENSION_BASE + "analysis-model-version"
EXT_TEXT_SPAN = EXTENSION_BASE + "text-span"
EXT_HISTORICAL = EXTENSION_BASE + "historical"
EXT_HYPOTHETICAL = EXTENSION_BASE + "hypothetical"
EXT_CHANGE = EXTENSION_BASE + "change"
EXT_SOURCE = EXTENSION_BASE + "source"
EXT_SCORE = EXTENSION_BASE + "score"
EXT_CONDITIONAL = EXTENSION_BASE + "conditional"
# The due window is the rules' default (no interval was stated in the report).
EXT_DEFAULT_WINDOW = EXTENSION_BASE + "default-due-window"
EXT_GUIDELINE = EXTENSION_BASE + "guideline"
EXT_RECOMMENDATION_KIND = EXTENSION_BASE + "recommendation-kind"
EXT_NEXT_STEP = EXTENSION_BASE + "next-step"
# A critical or actionable finding's ACR Actionable Reporting Work Group category (1, 2, 3),
# coded in this project's own code system (the work group publishes no codes).
EXT_ACTIONABLE_CATEGORY = EXTENSION_BASE + "actionable-finding-category"
ACTIONABLE_CATEGORY_SYSTEM = "https://radnlp.dev/fhir/CodeSystem/acr-actionable-category"
# HL7 v3 ObservationInterpretation: AA "Critical abnormal" for category 1 (communicate within
# minutes), A "Abnormal" for the actionable categories 2 and 3.
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
INTERPRETATION_OF_CATEGORY = {1: ("AA", "Critical abnormal"), 2: ("A", "Abnormal"),
                              3: ("A", "Abnormal")}
KIND_NAMES = {"imaging": "Imaging", "clinical_correlation": "Clinical correlation",
              "comparison_with_prior": "Comparison with prior studies",
              "consultation": "Consultation or tissue sampling",
              "communication": "Communication of findings"}

CPT_SYSTEM_NAMES = CPT_SYSTEMS
# DICOM Modality (0008,0060) defined terms among the vocabulary's codes. "XR" is the
# vocabulary's umbrella for CR and DX, not a DICOM code, so it stays text.
DICOM_MODALITY_CODES = frozenset(
    code for code in vocabulary.DICOM_MODALITY_CODES if vocabulary.is_dicom_code(code))

REPORT_STATUS = {"P": "preliminary", "F": "final", "C": "corrected", "X": "entered-in-error"}
OBSERVATION_STATUS = {"P": "preliminary", "F": "final", "C": "amended", "X": "entered-in-error"}
ENTERED_IN_ERROR = "entered-in-error"

# SNOMED CT qualifier values with their displays as in terminology/resources/snomed_verified.csv.
PRESENCE_CODES: dict[Assertion, tuple[str, str]] = {
    "present": ("52101004", "Present (qualifier value)"),
    "absent": ("2667000", "Absent (qualifier value)"),
    "possible": ("410590009", "Known possible"),
}
RADIOLOGY_CATEGORY: Resource = {
    "coding": [
        {"system": LOINC_SYSTEM, "code": "LP29684-5", "display": "Radiology"},
        {"system": SERVICE_SECTION_SYSTEM, "code": "RAD", "display": "Radiology"},
    ],
    "text": "Radiology",
}
IMAGING_OBSERVATION_CATEGORY: Resource = {
    "coding": [{"system": OBSERVATION_CATEGORY_SYSTEM, "code": "imaging", "display": "Imaging"}],
    "text": "Imaging",
}
# ServiceRequest.category has no HL7 "imaging" code in R4 (its example value set is SNOMED CT,
# whose imaging code the project has not sourced), so v2-0074 "RAD" stands in.
IMAGING_REQUEST_CATEGORY: Resource = {
    "coding": [{"system": SERVICE_SECTION_SYSTEM, "code": "RAD", "display": "Radiology"}],
    "text": "Imaging",
}

LENGTH_TO_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0}
NON_LENGTH_NAMES = {"mL": "volume"}
COMPARATORS = {"less than": "<", "greater than": ">", "up to": "<=", "subcentimeter": "<"}

MAX_REPORT_ID_LENGTH = 40  # leaves room for "-order", "-f{n}", "-r{n}" within FHIR's 64
_NOT_ID_CHARS = re.compile(r"[^A-Za-z0-9\-.]+")
_HASHED_ID = re.compile(r"-[0-9a-f]{12}\Z")

MODELS: dict[str, type[DomainResource]] = {
    "CapabilityStatement": CapabilityStatement,
    "DiagnosticReport": DiagnosticReport,
    "Observation": Observation,
    "Patient": Patient,
    "ServiceRequest": ServiceRequest,
    "Task": Task,
    "Communication": Communication,
    "Subscription": Subscription,
}
_STATUS_TYPES = ("DiagnosticReport", "Observation", "ServiceRequest")


@dataclass(frozen=True)
class ReportResources:
    """The FHIR resources of one report, each a validated JSON dict without ``meta``."""

    patient: Resource
    order: Resource
    diagnostic_report: Resource
    observations: list[Resource]
    service_requests: list[Resource]

    def all(self) -> list[Resource]:
        """Every resource, referenced ones before those that reference them."""
        return [self.patient, self.order, *self.observations, self.diagnostic_report,
                *self.service_requests]


def report_resource_id(accession: str) -> str:
    """The DiagnosticReport id of an accession: itself when it is a short valid FHIR id, else a
    slug with a sha256 suffix (so two accessions never share an id)."""
    if not accession:
        raise ValueError("accession must not be empty")
    if (len(accession) <= MAX_REPORT_ID_LENGTH and not _NOT_ID_CHARS.search(accession)
            and not _HASHED_ID.search(accession)):
        return accession
    digest = hashlib.sha256(accession.encode("utf-8")).hexdigest()[:12]
    slug = _NOT_ID_CHARS.sub("-", accession).strip("-")[:MAX_REPORT_ID_LENGTH - 13] or "acc"
    return f"{slug}-{digest}"


def patient_resource_id(mrn: str, authority: str | None) -> str:
    """The Patient id of an MRN: a hash, so the MRN never appears in ids or URLs."""
    if not mrn:
        raise ValueError("MRN must not be empty")
    digest = hashlib.sha256(f"{authority or ''}|{mrn}".encode()).hexdigest()
    return "p-" + digest[:20]


def mrn_system(authority: str | None) -> str:
    """The identifier system of MRNs assigned by ``authority`` (HL7 PID-3.4)."""
    return f"{DEFAULT_MRN_SYSTEM}:{quote(authority, safe='')}" if authority else DEFAULT_MRN_SYSTEM


def fhir_datetime(moment: datetime) -> str:
    """A FHIR dateTime/instant: ISO 8601 with "Z" for UTC."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def validate_resource(resource: Resource) -> Resource:
    """``resource`` once its R4B model validates it (``ValueError`` if it does not)."""
    model = MODELS.get(resource.get("resourceType", ""))
    if model is None:
        raise ValueError(f"unsupported resourceType {resource.get('resourceType')!r}")
    # The model's own dump would only differ in how it writes UTC ("Z" for "+00:00"), and
    # costs twice the validation.
    model.model_validate(resource)
    return resource


def mark_entered_in_error(resource: Resource) -> Resource:
    """A validated copy of a DiagnosticReport, Observation or ServiceRequest with status
    ``entered-in-error``."""
    if resource.get("resourceType") not in _STATUS_TYPES:
        raise ValueError(f"{resource.get('resourceType')!r} has no status to mark; expected one "
                         f"of {', '.join(_STATUS_TYPES)}")
    return validate_resource({**resource, "status": ENTERED_IN_ERROR})


@dataclass(frozen=True)
class _Context:
    """What every resource of one report shares."""

    report: ParsedReport
    analysis: ReportAnalysis
    rid: str
    patient_reference: Resource
    identifier_system: str
    observation_ids: dict[int, str]
    critical: dict[int, CriticalMatch]

    @property
    def order_reference(self) -> Resource:
        return {"reference": f"ServiceRequest/{self.rid}-order"}

    @property
    def observed_at(self) -> str | None:
        observed_at = self.report.observed_at
        return fhir_datetime(observed_at) if observed_at is not None else None


def build_report_resources(
    message_patient_mrn: str,
    mrn_authority: str | None,
    report: ParsedReport,
    analysis: ReportAnalysis,
    *,
    identifier_system: str = DEFAULT_ACCESSION_SYSTEM,
    placer_system: str = DEFAULT_PLACER_SYSTEM,
    issued: datetime | None = None,
) -> ReportResources:
    """Patient, order ServiceRequest, DiagnosticReport, one Observation per finding outside the
    indication, and one proposal ServiceRequest per recommendation."""
    _require_aware(report.observed_at, "observed_at")
    _require_aware(issued, "issued")
    if report.result_status not in REPORT_STATUS:
        raise ValueError(f"unknown result status {report.result_status!r}")
    rid = report_resource_id(report.accession)
    patient_id = patient_resource_id(message_patient_mrn, mrn_authority)
    context = _Context(
        report=report, analysis=analysis, rid=rid,
        patient_reference={"reference": f"Patient/{patient_id}"},
        identifier_system=identifier_system,
        observation_ids={index: f"{rid}-f{index}" for index, finding
                         in enumerate(analysis.findings) if not finding.in_indication},
        critical={match.finding_index: match for match in critical_findings(analysis)},
    )
    patient = {
        "resourceType": "Patient", "id": patient_id, "active": True,
        "identifier": [_mrn_identifier(message_patient_mrn, mrn_authority)],
    }
    observations = [_observation(context, index, analysis.findings[index])
                    for index in context.observation_ids]
    return ReportResources(
        patient=validate_resource(patient),
        order=validate_resource(_order(context, placer_system)),
        diagnostic_report=validate_resource(_diagnostic_report(
            context, _mrn_identifier(message_patient_mrn, mrn_authority), issued)),
        observations=[validate_resource(observation) for observation in observations],
        service_requests=[validate_resource(_recommendation(context, index, recommendation))
                          for index, recommendation in enumerate(analysis.recommendations)],
    )


def _require_aware(moment: datetime | None, name: str) -> None:
    if moment is not None and moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware: {moment.isoformat()}")


def _mrn_identifier(mrn: str, authority: str | None) -> Resource:
    return {"use": "usual", "type": _identifier_type("MR", "Medical record number"),
            "system": mrn_system(authority), "value": mrn}


def _identifier_type(code: str, display: str) -> Resource:
    return {"coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": code, "display": display}]}


def _procedure_code(report: ParsedReport) -> Resource:
    """OBR-4 as a CodeableConcept: a CPT coding when OBR-4.3 names CPT, text otherwise."""
    text = (report.procedure_name or report.procedure_code
            or " ".join(part for part in (report.modality, report.body_region) if part)
            or "Radiology report")
    code: Resource = {"text": text}
    if report.procedure_code and (report.procedure_system or "").upper() in CPT_SYSTEM_NAMES:
        coding = {"system": CPT_SYSTEM, "code": report.procedure_code}
        if report.procedure_name:
            coding["display"] = report.procedure_name
        code["coding"] = [coding]
    return code


def _order(context: _Context, placer_system: str) -> Resource:
    report = context.report
    identifiers = [{"type": _identifier_type("FILL", "Filler Identifier"),
                    "system": context.identifier_system, "value": report.accession}]
    if report.placer_number:
        identifiers.insert(0, {"type": _identifier_type("PLAC", "Placer Identifier"),
                               "system": placer_system, "value": report.placer_number})
    order: Resource = {
        "resourceType": "ServiceRequest", "id": f"{context.rid}-order",
        "identifier": identifiers,
        "status": "revoked" if report.result_status == "X" else "completed",
        "intent": "order", "category": [IMAGING_REQUEST_CATEGORY],
        "code": _procedure_code(report), "subject": context.patient_reference,
    }
    if context.observed_at:
        order["occurrenceDateTime"] = context.observed_at
    if report.ordering_provider:
        order["requester"] = {"display": report.ordering_provider}
    return order


def _diagnostic_report(context: _Context, patient_identifier: Resource,
                       issued: datetime | None) -> Resource:
    report, analysis = context.report, context.analysis
    diagnostic_report: Resource = {
        "resourceType": "DiagnosticReport", "id": context.rid,
        "extension": [{"url": EXT_MODEL_VERSION, "valueString": analysis.model_version}],
        "identifier": [{"use": "official", "type": _identifier_type("ACSN", "Accession ID"),
                        "system": context.identifier_system, "value": report.accession}],
        "basedOn": [context.order_reference],
        "status": REPORT_STATUS[report.result_status],
        "category": [RADIOLOGY_CATEGORY],
        "code": _procedure_code(report),
        "subject": {**context.patient_reference, "identifier": patient_identifier},
        "result": [{"reference": f"Observation/{observation_id}"}
                   for observation_id in context.observation_ids.values()],
    }
    if report.text:
        diagnostic_report["presentedForm"] = [{
            "contentType": "text/plain; charset=utf-8",
            "data": base64.b64encode(report.text.encode("utf-8")).decode("ascii"),
        }]
    if context.observed_at:
        diagnostic_report["effectiveDateTime"] = context.observed_at
    if issued is not None:
        diagnostic_report["issued"] = fhir_datetime(issued)
    if report.interpreter:
        diagnostic_report["performer"] = [{"display": report.interpreter}]
        diagnostic_report["resultsInterpreter"] = [{"display": report.interpreter}]
    conclusion = _impression(report.text, analysis)
    if conclusion:
        diagnostic_report["conclusion"] = conclusion
    return diagnostic_report


def _impression(text: str, analysis: ReportAnalysis) -> str | None:
    """The impression sections' text without their headers, or ``None``."""
    bodies = []
    for section in analysis.sections:
        if section.name == "impression":
            body = text[section.start:section.end]
            header = _section_header("impression")
            if header is not None:
                body = header.sub("", body, count=1)
            if body.strip():
                bodies.append(body.strip())
    return "\n\n".join(bodies) or None


@functools.cache
def _section_header(name: str) -> re.Pattern[str] | None:
    """A leading header of section ``name`` as the sectionizer's rules spell it."""
    literals = [literal for rule in load_section_rules() if rule.name == name
                for literal in rule.literals]
    if not literals:
        return None
    alternatives = "|".join(re.escape(literal) for literal in sorted(literals, key=len,
                                                                       reverse=True))
    return re.compile(rf"\A\s*(?:{alternatives})(?:[ \t]*:|[ \t]*(?=\n|\Z))\s*", re.I)


@functools.cache
def _code_displays() -> dict[tuple[str, str], str]:
    """(system, code) -> display for the RadLex and SNOMED CT codes the lexicon ships."""
    displays: dict[tuple[str, str], str] = {}
    for concept in load_lexicon().concepts:
        if concept.snomed and concept.snomed_display:
            displays.setdefault((SNOMED_SYSTEM, concept.snomed), concept.snomed_display)
        if concept.radlex and concept.radlex_name:
            displays.setdefault((RADLEX_SYSTEM, concept.radlex), concept.radlex_name)
    return displays


def _coding(system: str, code: str) -> Resource:
    coding = {"system": system, "code": code}
    display = _code_displays().get((system, code))
    if display:
        coding["display"] = display
    return coding


def _concept_codings(concept: ConceptRef | Concept) -> list[Resource]:
    codings = []
    if concept.snomed:
        codings.append(_coding(SNOMED_SYSTEM, concept.snomed))
    if concept.radlex:
        codings.append(_coding(RADLEX_SYSTEM, concept.radlex))
    return codings


def _codeable(text: str, codings: list[Resource]) -> Resource:
    return {"coding": codings, "text": text} if codings else {"text": text}


def _text_span(start: int | None, end: int | None, text: str | None,
               section: str | None = None) -> Resource:
    parts: list[Resource] = []
    if start is not None:
        parts.append({"url": "start", "valueInteger": start})
    if end is not None:
        parts.append({"url": "end", "valueInteger": end})
    if section:
        parts.append({"url": "section", "valueString": section})
    if text:
        parts.append({"url": "text", "valueString": text})
    return {"url": EXT_TEXT_SPAN, "extension": parts}


def _observation(context: _Context, index: int, finding: FindingOut) -> Resource:
    report = context.report
    code_text = finding.concept.name if finding.concept else finding.text
    presence, presence_display = PRESENCE_CODES[finding.assertion]
    extensions = [
        _text_span(finding.start, finding.end, finding.text, finding.section),
        {"url": EXT_HISTORICAL, "valueBoolean": finding.historical},
        {"url": EXT_HYPOTHETICAL, "valueBoolean": finding.hypothetical},
    ]
    if finding.change:
        extensions.append({"url": EXT_CHANGE, "valueCode": finding.change})
    extensions += [{"url": EXT_SOURCE, "valueString": source} for source in finding.sources]
    extensions.append({"url": EXT_SCORE, "valueDecimal": finding.score})
    critical = context.critical.get(index)
    if critical is not None:
        extensions.append({"url": EXT_ACTIONABLE_CATEGORY, "valueCoding": {
            "system": ACTIONABLE_CATEGORY_SYSTEM, "code": str(critical.category),
            "display": critical_table().categories[critical.category][0]}})
    observation: Resource = {
        "resourceType": "Observation", "id": context.observation_ids[index],
        "extension": extensions,
        "identifier": [{"system": f"{context.identifier_system}/finding",
                        "value": f"{report.accession}-f{index}"}],
        "basedOn": [context.order_reference],
        "status": OBSERVATION_STATUS[report.result_status],
        "category": [IMAGING_OBSERVATION_CATEGORY],
        "code": _codeable(code_text, _concept_codings(finding.concept) if finding.concept else []),
        "subject": context.patient_reference,
        "valueCodeableConcept": {
            "coding": [{"system": SNOMED_SYSTEM, "code": presence, "display": presence_display}],
            "text": finding.assertion,
        },
    }
    if critical is not None:
        code, display = INTERPRETATION_OF_CATEGORY[critical.category]
        observation["interpretation"] = [{"coding": [
            {"system": INTERPRETATION_SYSTEM, "code": code, "display": display}]}]
    if context.observed_at:
        observation["effectiveDateTime"] = context.observed_at
    body_site = _body_site(finding)
    if body_site:
        observation["bodySite"] = body_site
    components = [component for measurement in finding.measurements
                  for component in _measurement_components(measurement)]
    if components:
        observation["component"] = components
    return observation


def _body_site(finding: FindingOut) -> Resource | None:
    """Anatomy codings with laterality in the text only: the project has no sourced laterality
    qualifier codes, so "left" + lung (39607008) reads "left lung" but codes lung."""
    anatomy = finding.anatomy
    words: list[str] = []
    named_side = anatomy is not None and bool(
        {"left", "right", "bilateral"} & set(anatomy.name.lower().split()))
    if finding.laterality and not named_side:
        words.append(finding.laterality)
    if anatomy is not None:
        words.append(anatomy.name)
    if not words:
        return None
    return _codeable(" ".join(words), _concept_codings(anatomy) if anatomy is not None else [])


def _measurement_components(measurement: Measurement) -> list[Resource]:
    """One component per dimension in mm (UCUM); a non-length measurement as its text."""
    span = _text_span(measurement.start, measurement.end, measurement.text)
    factor = LENGTH_TO_MM.get(measurement.unit)
    if factor is None:
        name = NON_LENGTH_NAMES.get(measurement.unit, "measurement")
        return [{"extension": [span], "code": {"text": name}, "valueString": measurement.text}]
    dimensions = measurement.dimensions or [measurement.value]
    components = []
    for number, dimension in enumerate(dimensions, start=1):
        quantity: Resource = {"value": round(dimension * factor, 3), "unit": "mm",
                              "system": UCUM_SYSTEM, "code": "mm"}
        if measurement.qualifier:
            quantity["comparator"] = COMPARATORS[measurement.qualifier]
        name = "size" if len(dimensions) == 1 else f"size dimension {number}"
        components.append({"extension": [span], "code": {"text": name},
                           "valueQuantity": quantity})
    return components


def _recommendation(context: _Context, index: int, recommendation: RecommendationOut) -> Resource:
    report, analysis = context.report, context.analysis
    section = next((s.name for s in analysis.sections
                    if s.start <= recommendation.start < s.end), None)
    extensions = [
        _text_span(recommendation.start, recommendation.end, recommendation.text, section),
        {"url": EXT_CONDITIONAL, "valueBoolean": recommendation.conditional},
    ]
    extensions.append({"url": EXT_RECOMMENDATION_KIND, "valueCode": recommendation.kind})
    if recommendation.guideline:
        extensions.append({"url": EXT_GUIDELINE, "valueString": recommendation.guideline})
    if recommendation.next_step is not None:
        extensions.append(_next_step(recommendation.next_step))
    request: Resource = {
        "resourceType": "ServiceRequest", "id": f"{context.rid}-r{index}",
        "extension": extensions,
        "identifier": [{"system": f"{context.identifier_system}/recommendation",
                        "value": f"{report.accession}-r{index}"}],
        "status": ENTERED_IN_ERROR if report.result_status == "X" else "draft",
        "intent": "proposal", "category": [_request_category(recommendation.kind)],
        "priority": "routine",
        "code": _requested_procedure(recommendation),
        "subject": context.patient_reference,
        "supportingInfo": [{"reference": f"DiagnosticReport/{context.rid}"}],
        "note": [{"text": recommendation.text}],
    }
    if context.observed_at:
        request["authoredOn"] = context.observed_at
    if report.observed_at is not None:
        window = recommendation_due_window(report.observed_at, recommendation,
                                           context.analysis.findings)
        request["occurrencePeriod"] = {"start": fhir_datetime(window.start),
                                       "end": fhir_datetime(window.end)}
        if window.default:
            extensions.append({"url": EXT_DEFAULT_WINDOW, "valueBoolean": True})
    region = _body_region(recommendation.body_region)
    if region:
        request["bodySite"] = [region]
    if report.interpreter:
        request["requester"] = {"display": report.interpreter}
    request.update(_reason(context, recommendation))
    return request


def _requested_procedure(recommendation: RecommendationOut) -> Resource:
    """What is asked for: for imaging, the acceptable modalities (one DICOM coding each) and
    body region, e.g. "CT or MR abdomen"; for the other kinds their name ("clinical
    correlation").

    Alternatives ("CT or MRI") are one request, so one ServiceRequest whose code carries a
    coding per acceptable modality: it has one status, one due window and is closed by an
    exam of any of them. A requisition group would mean every member is wanted."""
    if recommendation.kind not in ("imaging", "consultation"):
        return {"text": KIND_NAMES[recommendation.kind]}
    modalities = recommendation.modalities
    text = " ".join(part for part in (" or ".join(modalities), recommendation.body_region)
                    if part)
    codings = [{"system": DICOM_SYSTEM, "code": code} for code in modalities
               if code in DICOM_MODALITY_CODES]
    if recommendation.kind == "consultation":
        text = " ".join(part for part in (text, "guided", KIND_NAMES["consultation"]) if part
                        ) if modalities else KIND_NAMES["consultation"]
        codings = []  # the modality guides the procedure; it is not what is requested
    return _codeable(text or recommendation.text, codings)


def _request_category(kind: str) -> Resource:
    return IMAGING_REQUEST_CATEGORY if kind == "imaging" else {"text": KIND_NAMES[kind]}


def _next_step(step: RecommendationStep) -> Resource:
    """The later step of a sequence ("then CT at 18-24 months")."""
    parts: list[Resource] = [{"url": "modality", "valueCoding": {"system": DICOM_SYSTEM,
                                                                  "code": code}}
                             for code in step.modalities if code in DICOM_MODALITY_CODES]
    if step.interval_min_days is not None:
        parts.append({"url": "intervalMinDays", "valueInteger": step.interval_min_days})
    if step.interval_max_days is not None:
        parts.append({"url": "intervalMaxDays", "valueInteger": step.interval_max_days})
    return {"url": EXT_NEXT_STEP, "extension": parts}


def _body_region(region: str | None) -> Resource | None:
    if not region:
        return None
    concept = vocabulary.region_concept(region)
    return _codeable(region, _concept_codings(concept) if concept is not None else [])


def _reason(context: _Context, recommendation: RecommendationOut) -> Resource:
    """reasonReference to the finding's Observation, or its name as reasonCode text."""
    index = recommendation.finding_index
    if index is None:
        return {}
    findings = context.analysis.findings
    if not 0 <= index < len(findings):
        raise ValueError(f"recommendation finding_index {index} is not a finding index "
                         f"(report has {len(findings)} findings)")
    if index in context.observation_ids:
        return {"reasonReference": [{"reference": f"Observation/{context.observation_ids[index]}"}]}
    finding = findings[index]
    return {"reasonCode": [{"text": finding.concept.name if finding.concept else finding.text}]}
