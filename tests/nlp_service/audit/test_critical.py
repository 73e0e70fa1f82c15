"""Critical and actionable findings: which findings the table flags (present, of this exam,
with the change and size a rule asks for), when a documented communication happened, and the
compliance scenario (communicated in time, late, never) with exact figures on SQLite and
PostgreSQL, through the store path and the API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from nlp_service.audit.critical import (
    communication_compliance,
    communication_time,
    critical_findings,
    list_critical,
)
from nlp_service.intake.hl7 import build_oru
from nlp_service.intake.receiver import receive_message
from nlp_service.storage.db import session_scope
from nlp_service.storage.models import CriticalFinding
from nlp_service.worker import Worker
from pipelines.pipeline import RadiologyPipeline
from pipelines.schema import ReportAnalysis
from tests.conftest import LiveService

CT_CHEST = ("71250", "CT CHEST WITHOUT CONTRAST", "CPT4")
CT_ABDOMEN = ("74176", "CT ABDOMEN PELVIS WITHOUT CONTRAST", "CPT4")
XR_CHEST = ("71046", "XR CHEST 2 VIEWS", "CPT4")


def categories(analysis: ReportAnalysis) -> dict[str, int]:
    return {match.concept: match.category for match in critical_findings(analysis)}


@pytest.mark.parametrize(("text", "expected"), [
    ("IMPRESSION: Large right tension pneumothorax.", {"tension pneumothorax": 1}),
    ("IMPRESSION: Acute type A aortic dissection.", {"aortic dissection": 1}),
    ("IMPRESSION: Acute subdural hematoma along the left convexity.", {"subdural hematoma": 1}),
    ("IMPRESSION: Free intraperitoneal air under the diaphragm.", {"pneumoperitoneum": 1}),
    ("IMPRESSION: Bilateral pulmonary emboli with right heart strain.",
     {"pulmonary embolism": 1}),
    ("IMPRESSION: Segmental pulmonary embolus in the right lower lobe.",
     {"pulmonary embolism": 2}),
    ("IMPRESSION: New small left apical pneumothorax.", {"pneumothorax": 2}),
    ("IMPRESSION: Acute appendicitis.", {"appendicitis": 2}),
    ("IMPRESSION: Abdominal aortic aneurysm measuring 4.5 cm.",
     {"abdominal aortic aneurysm": 3}),
])
def test_the_table_flags_critical_findings(analyze: Callable[[str], ReportAnalysis], text: str,
                                           expected: dict[str, int]) -> None:
    assert categories(analyze(text)) == expected


@pytest.mark.parametrize("text", [
    "IMPRESSION: No pneumothorax.",  # absent
    "IMPRESSION: Stable small left pneumothorax.",  # not new
    "IMPRESSION: Small left pneumothorax.",  # no change stated: not "new pneumothorax"
    "HISTORY: Subdural hematoma.\nIMPRESSION: No acute intracranial abnormality.",
    "IMPRESSION: Previously seen subdural hematoma has resolved.",
    "IMPRESSION: If symptoms persist, evaluate for appendicitis.",  # hypothetical
    "IMPRESSION: Abdominal aortic aneurysm measuring 2.6 cm.",  # under the threshold
    "IMPRESSION: Abdominal aortic aneurysm.",  # no size: the threshold cannot be checked
])
def test_the_table_leaves_other_findings(analyze: Callable[[str], ReportAnalysis],
                                         text: str) -> None:
    assert categories(analyze(text)) == {}


def test_a_stated_time_is_placed_on_the_exam_date_in_its_time_zone(
        analyze: Callable[[str], ReportAnalysis]) -> None:
    eastern = timezone(timedelta(hours=-5))
    exam = datetime(2026, 1, 15, 22, 40, tzinfo=eastern)
    issued = datetime(2026, 1, 16, 9, 0, tzinfo=eastern)
    stated = analyze("IMPRESSION: Tension pneumothorax. Discussed with Dr. Lee by phone at "
                     "23:10.").recommendations[0]
    assert communication_time(stated, exam_time=exam, issued_at=issued) == (
        datetime(2026, 1, 15, 23, 10, tzinfo=eastern), "stated")
    # A clock time before the exam's on the same day is after midnight.
    early = analyze("IMPRESSION: Tension pneumothorax. Discussed with Dr. Lee by phone at "
                    "00:20.").recommendations[0]
    assert communication_time(early, exam_time=exam, issued_at=issued)[0] == datetime(
        2026, 1, 16, 0, 20, tzinfo=eastern)
    dated = analyze("IMPRESSION: Tension pneumothorax. Discussed with Dr. Lee by phone at "
                    "08:05 on 01/17/2026.").recommendations[0]
    assert communication_time(dated, exam_time=exam, issued_at=issued)[0] == datetime(
        2026, 1, 17, 8, 5, tzinfo=eastern)
    untimed = analyze("IMPRESSION: Tension pneumothorax. Critical result notification "
                      "documented.").recommendations[0]
    assert communication_time(untimed, exam_time=exam, issued_at=issued) == (issued,
                                                                            "report_issued")


# --- The scenario: critical findings communicated in time, late, or never. -----------------

JAN, FEB = datetime(2026, 1, 12, 9, 30, tzinfo=UTC), datetime(2026, 2, 9, 14, 0, tzinfo=UTC)
DR_A, DR_B = "R1&ADAMS&ANN", "R2&BROWN&BEN"
SCENARIO = [
    # accession, exam time, procedure, interpreter, text, minutes to the report, verdict
    ("C01", JAN, CT_CHEST, DR_A, "IMPRESSION: Large left tension pneumothorax. Findings "
     "discussed with Dr. Ana Ruiz by telephone at 10:05, with read-back.", 60, "in_time"),
    ("C02", JAN, CT_CHEST, DR_A, "IMPRESSION: Right tension pneumothorax. Findings discussed "
     "with Dr. Ana Ruiz by telephone at 11:15.", 120, "late"),
    ("C03", JAN, CT_ABDOMEN, DR_B, "IMPRESSION: Acute appendicitis.", 90, "not_documented"),
    ("C04", JAN, CT_ABDOMEN, DR_B, "IMPRESSION: Acute appendicitis. Critical result "
     "notification documented.", 180, "in_time"),  # no time: the report's (3 h < 12 h)
    ("C05", FEB, CT_ABDOMEN, DR_A, "IMPRESSION: Abdominal aortic aneurysm measuring 4.8 cm. "
     "Findings communicated to the ordering provider via secure message at 15:00 on "
     "02/13/2026.", 30, "late"),  # 4 days > 3 days
    ("C06", FEB, XR_CHEST, DR_B, "IMPRESSION: New small right pneumothorax. Dr. Omar Said was "
     "notified in person at 2:30 pm.", 45, "in_time"),
    ("C07", FEB, XR_CHEST, DR_B, "IMPRESSION: New left pneumothorax.", 20, "not_documented"),
    # Not critical: absent, stable, under the threshold.
    ("N01", JAN, CT_CHEST, DR_A, "IMPRESSION: No pneumothorax.", 30, None),
    ("N02", FEB, XR_CHEST, DR_B, "IMPRESSION: Stable small left pneumothorax.", 30, None),
    ("N03", FEB, CT_ABDOMEN, DR_A, "IMPRESSION: Abdominal aortic aneurysm measuring 2.7 cm.",
     30, None),
]


def scenario_message(accession: str, exam: datetime, procedure: tuple[str, str, str],
                     interpreter: str, text: str, minutes: int, *, status: str = "F",
                     control_id: str | None = None) -> str:
    """The report's ORU, issued (MSH-7) ``minutes`` after the exam (OBR-7)."""
    message = build_oru(control_id or f"M-{accession}", accession, text,
                        mrn=f"P-{accession}", observed_at=exam, procedure=procedure,
                        interpreter=interpreter, status=status)
    segments = message.split("\r")
    fields = segments[0].split("|")
    fields[6] = (exam + timedelta(minutes=minutes)).strftime("%Y%m%d%H%M%S%z")
    segments[0] = "|".join(fields)
    return "\r".join(segments)


def store_scenario(engine: Engine, pipeline: RadiologyPipeline) -> None:
    for accession, exam, procedure, interpreter, text, minutes, _ in SCENARIO:
        message = scenario_message(accession, exam, procedure, interpreter, text, minutes)
        assert receive_message(engine, message.encode(), source="test").ack_code == "AA"
    # A correction documents the communication C07 lacked, in time: the current version counts.
    corrected = scenario_message("C07", FEB, XR_CHEST, DR_B, "IMPRESSION: New left "
                                 "pneumothorax. Discussed with the ordering physician by phone "
                                 "at 14:50.", 70, status="C", control_id="M-C07-c")
    assert receive_message(engine, corrected.encode(), source="test").ack_code == "AA"
    assert Worker(engine, pipeline, batch_size=4).run_until_empty().done == len(SCENARIO) + 1


EXPECTED = {accession: verdict for accession, *_, verdict in SCENARIO if verdict}
EXPECTED["C07"] = "in_time"


def test_communication_compliance_scenario(engine: Engine,
                                           rules_pipeline: RadiologyPipeline) -> None:
    store_scenario(engine, rules_pipeline)
    with session_scope(engine) as session:
        rows = list_critical(session)
        assert {row.accession: row.category for row in rows} == {
            "C01": 1, "C02": 1, "C03": 2, "C04": 2, "C05": 3, "C06": 2, "C07": 2}
        by_month = communication_compliance(rows, "month")
        by_modality = communication_compliance(rows, "modality")
        by_radiologist = communication_compliance(rows, "radiologist")
        # The superseded version's row is kept, not current.
        assert len(session.exec(select(CriticalFinding).where(
            CriticalFinding.accession == "C07")).all()) == 2
    assert {row.accession: verdict for row in rows
            for verdict in [next(v for v in ("in_time", "late", "not_documented")
                                 if row.accession in _reports(by_month, v))]} == EXPECTED
    assert [(g["month"], g["critical"], g["in_time"], g["late"], g["not_documented"],
             g["rate_in_time"]) for g in by_month] == [
        ("2026-01", 4, 2, 1, 1, 0.5), ("2026-02", 3, 2, 1, 0, 0.6667)]
    assert by_month[0]["reports"] == {"in_time": ["C01", "C04"], "late": ["C02"],
                                      "not_documented": ["C03"]}
    assert [(g["modality"], g["critical"], g["in_time"]) for g in by_modality] == [
        ("CT", 5, 2), ("XR", 2, 2)]
    radiologists = {g["radiologist"]: (g["critical"], g["in_time"], g["late"],
                                       g["not_documented"]) for g in by_radiologist}
    assert sorted(radiologists.values()) == [(3, 1, 2, 0), (4, 3, 0, 1)]


def _reports(groups: list[dict], verdict: str) -> set[str]:
    return {accession for group in groups for accession in group["reports"][verdict]}


def test_the_api_gives_the_critical_findings_and_figures(live_service: LiveService) -> None:
    store_scenario(live_service.engine, live_service.worker.pipeline)
    base = live_service.base_url
    listing = httpx.get(f"{base}/api/v1/audit/critical").json()
    assert {item["accession"]: item["compliance"] for item in listing["items"]} == EXPECTED
    first = next(item for item in listing["items"] if item["accession"] == "C01")
    report = httpx.get(f"{base}/api/v1/reports/{first['report_id']}").json()
    assert [(c["concept"], c["category"], c["compliance"]) for c in
            report["critical_findings"]] == [("tension pneumothorax", 1, "in_time")]
    assert first["minutes_to_communication"] == 35.0 and first["target_minutes"] == 60
    assert first["communication"]["recipient"] == "Ana Ruiz"
    assert first["communication"]["method"] == "telephone"
    assert first["communication"]["read_back"] is True
    late = httpx.get(f"{base}/api/v1/audit/critical", params={"compliance": "late"}).json()
    assert sorted(item["accession"] for item in late["items"]) == ["C02", "C05"]
    figures = httpx.get(f"{base}/api/v1/audit/critical/compliance",
                        params={"group": "category"}).json()
    assert [(g["category"], g["critical"], g["in_time"]) for g in figures["groups"]] == [
        ("1", 2, 1), ("2", 4, 3), ("3", 1, 0)]
    csv = httpx.get(f"{base}/api/v1/audit/critical/compliance",
                    params={"group": "month", "format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[1:] == ["2026-01,4,2,1,1,0.5", "2026-02,3,2,1,0,0.6667"]
    assert httpx.get(f"{base}/api/v1/audit/critical/compliance",
                     params={"group": "ward"}).status_code == 422
    # The Observation of a category 1 finding is "critical abnormal", with its category.
    observation = httpx.get(f"{base}/fhir/Observation",
                            params={"interpretation": "AA"}).json()
    assert {entry["resource"]["code"]["text"] for entry in observation["entry"]} == {
        "tension pneumothorax"}
    resource = observation["entry"][0]["resource"]
    category = next(e for e in resource["extension"] if e["url"].endswith(
        "actionable-finding-category"))
    assert category["valueCoding"]["code"] == "1"
