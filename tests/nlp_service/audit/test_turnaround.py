"""Turnaround KPIs from the HL7 times: exam (OBR-7) to the first preliminary and final results
(MSH-7 of their messages) and to the documented communication of a critical finding, median
and 90th percentile by modality and month, in the API (JSON and CSV). The page that charts
them is tested in Chromium in tests/nlp_service/api/test_loop_page.py."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import Engine

from nlp_service.audit.turnaround import nearest_rank
from nlp_service.intake.receiver import receive_message
from nlp_service.worker import Worker
from pipelines.pipeline import RadiologyPipeline
from tests.conftest import LiveService
from tests.nlp_service.audit.test_critical import (
    CT_CHEST,
    XR_CHEST,
    scenario_message,
    store_scenario,
)

JAN = datetime(2026, 1, 20, 8, 0, tzinfo=UTC)
CLEAR = "IMPRESSION: No acute abnormality."
# accession, procedure, minutes to the preliminary (None: none sent), minutes to the final.
EXAMS = [("T1", CT_CHEST, 30, 120), ("T2", CT_CHEST, 60, 240), ("T3", CT_CHEST, 90, 600),
         ("T4", XR_CHEST, None, 20)]


def store_exams(engine: Engine, pipeline: RadiologyPipeline) -> None:
    for accession, procedure, preliminary, final in EXAMS:
        for status, minutes in (("P", preliminary), ("F", final)):
            if minutes is None:
                continue
            message = scenario_message(accession, JAN, procedure, "R1&ADAMS&ANN", CLEAR,
                                       minutes, status=status,
                                       control_id=f"TA-{accession}-{status}")
            assert receive_message(engine, message.encode(), source="test").ack_code == "AA"
    Worker(engine, pipeline, batch_size=8).run_until_empty()


def test_nearest_rank_percentiles_are_real_values() -> None:
    assert nearest_rank([30.0, 60.0, 90.0], 0.5) == 60.0
    assert nearest_rank([30.0, 60.0, 90.0], 0.9) == 90.0
    assert nearest_rank([5.0], 0.9) == 5.0


def test_turnaround_by_modality_and_month(live_service: LiveService) -> None:
    store_exams(live_service.engine, live_service.worker.pipeline)
    base = f"{live_service.base_url}/api/v1/audit/turnaround"
    rows = {(r["modality"], r["month"], r["interval"]): (r["exams"], r["median_minutes"],
                                                         r["p90_minutes"])
            for r in httpx.get(base).json()["items"]}
    assert rows == {("CT", "2026-01", "exam_to_preliminary"): (3, 60.0, 90.0),
                    ("CT", "2026-01", "exam_to_final"): (3, 240.0, 600.0),
                    ("XR", "2026-01", "exam_to_final"): (1, 20.0, 20.0)}
    only_xr = httpx.get(base, params={"modality": "XR"}).json()["items"]
    assert [r["modality"] for r in only_xr] == ["XR"]
    csv = httpx.get(base, params={"format": "csv"})
    assert csv.text.splitlines()[0] == "modality,month,interval,exams,median_minutes,p90_minutes"
    assert "CT,2026-01,exam_to_final,3,240.0,600.0" in csv.text.splitlines()
    assert httpx.get(base, params={"exam_from": "not a date"}).status_code == 422


def test_report_to_communication_time_of_critical_findings(live_service: LiveService) -> None:
    store_scenario(live_service.engine, live_service.worker.pipeline)
    rows = httpx.get(f"{live_service.base_url}/api/v1/audit/turnaround").json()["items"]
    communication = {(r["modality"], r["month"]): (r["exams"], r["median_minutes"])
                     for r in rows if r["interval"] == "exam_to_communication"}
    # January CT: C01 35 min, C02 105 min, C04 180 min (the report's time); C03 never.
    assert communication[("CT", "2026-01")] == (3, 105.0)

