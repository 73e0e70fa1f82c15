"""The shipped HL7 samples, sent over a real MLLP socket, give a worklist without false items.

The three cases that used to make false "overdue" items: a differential read as a
recommendation (MR brain), "adrenal protocol CT or chemical shift MRI" read as CT only (so the
MRI that answered it never closed it), and a sequence ("..., then ...") read as conditional."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlmodel import Session, select

from nlp_service.intake.client import SAMPLES_DIR, read_messages, send_messages
from nlp_service.intake.hl7 import build_oru
from nlp_service.storage.models import FollowUp, Recommendation
from tests.conftest import LiveService


def _worklist(service: LiveService, as_of: datetime, status: str) -> list[dict]:
    response = httpx.get(f"{service.base_url}/api/v1/audit/recommendations",
                         params={"as_of": as_of.isoformat(), "status": status, "limit": 500})
    response.raise_for_status()
    return response.json()["items"]


def test_samples_give_no_false_overdue_item(live_service: LiveService) -> None:
    sent = list(send_messages(read_messages(sorted(SAMPLES_DIR.glob("*.hl7"))), "127.0.0.1",
                              live_service.mllp_port))
    assert {s.ack_code for s in sent} == {"AA"}
    live_service.drain()
    with Session(live_service.engine) as session:
        follow_ups = session.exec(select(FollowUp)).all()
    by_accession: dict[str, list[FollowUp]] = {}
    for follow_up in follow_ups:
        by_accession.setdefault(follow_up.accession, []).append(follow_up)
    # The differential of the MR brain report is not a recommendation.
    assert not [f for f in follow_ups if "differential" in f.text.lower()]
    # "adrenal protocol CT or chemical shift MRI": one follow-up, either modality closes it.
    [adrenal] = [f for f in follow_ups if "adrenal protocol" in f.text.lower()]
    assert sorted(adrenal.modalities) == ["CT", "MR"]
    assert adrenal.completed_at is not None, "the MRI abdomen of sample 18 answers it"
    # Before the follow-up MRI (sample 18) the adrenal follow-up is open, not overdue.
    early = datetime(2026, 2, 15, tzinfo=UTC)
    assert adrenal.id in {item["id"] for item in _worklist(live_service, early, "open")}
    late = datetime(2027, 12, 1, tzinfo=UTC)
    overdue = _worklist(live_service, late, "overdue")
    # What is left overdue is what the samples really asked for and no later sample gave.
    assert sorted(item["accession"] for item in overdue) == [
        "CT26005121", "MG26000140", "US26000301"]
    for item in overdue:
        assert item["kind"] == "imaging" and not item["conditional"]


def _send(service: LiveService, *messages: str) -> None:
    sent = list(send_messages(((f"case#{n}", m) for n, m in enumerate(messages)), "127.0.0.1",
                              service.mllp_port))
    assert [s.ack_code for s in sent] == ["AA"] * len(messages)
    service.drain()


def test_the_three_false_overdue_cases_over_mllp(live_service: LiveService) -> None:
    """Team-written reports of the three cases, and the exams that answer them."""
    jan = datetime(2026, 1, 20, 9, 0, tzinfo=UTC)
    _send(live_service,
          build_oru("CASE-1", "MR-CASE-1", "IMPRESSION: 6 mm cystic focus of the pineal gland. "
                    "Differential considerations include a pineal cyst or a prominent recess.",
                    mrn="MRN-CASE-1", observed_at=jan,
                    procedure=("70551", "MRI BRAIN WITHOUT CONTRAST", "CPT4")),
          build_oru("CASE-2", "CT-CASE-2", "IMPRESSION: 1.6 cm left adrenal nodule measuring 25 "
                    "HU. Recommend adrenal protocol CT or chemical shift MRI.",
                    mrn="MRN-CASE-2", observed_at=jan,
                    procedure=("74177", "CT ABDOMEN PELVIS WITH CONTRAST", "CPT4")),
          build_oru("CASE-3", "CT-CASE-3", "IMPRESSION: 7 mm solid nodule in the left lower "
                    "lobe. Recommend follow-up CT chest in 6-12 months, then consider CT at "
                    "18-24 months.", mrn="MRN-CASE-3", observed_at=jan,
                    procedure=("71250", "CT CHEST WITHOUT CONTRAST", "CPT4")))
    with Session(live_service.engine) as session:
        follow_ups = {f.accession: f for f in session.exec(select(FollowUp)).all()}
        sequence = session.get(Recommendation, follow_ups["CT-CASE-3"].recommendation_id)
    assert "MR-CASE-1" not in follow_ups  # a differential is not a recommendation
    assert sorted(follow_ups["CT-CASE-2"].modalities) == ["CT", "MR"]
    assert not follow_ups["CT-CASE-3"].conditional  # a sequence counts in the rates
    assert sequence is not None and sequence.next_step == {
        "modalities": [], "interval_min_days": 540, "interval_max_days": 730}
    # The MRI that answers the adrenal request arrives in March.
    _send(live_service, build_oru(
        "CASE-4", "MR-CASE-4", "IMPRESSION: Left adrenal nodule with signal loss on opposed "
        "phase images, a lipid-rich adenoma. No further imaging is needed.",
        mrn="MRN-CASE-2", observed_at=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
        procedure=("74183", "MRI ABDOMEN WITHOUT AND WITH CONTRAST", "CPT4")))
    before = {item["accession"]: item for item in _worklist(
        live_service, datetime(2026, 2, 1, tzinfo=UTC), "open")}
    assert set(before) == {"CT-CASE-2", "CT-CASE-3"}
    assert before["CT-CASE-2"]["modalities"] == "CT or MR"
    # As of February the March MRI has not happened: the row does not show it.
    assert before["CT-CASE-2"]["completed_at"] is None
    assert before["CT-CASE-2"]["completed_by_report_id"] is None
    # Filtering for MR finds the request that accepts an MRI among its alternatives.
    response = httpx.get(f"{live_service.base_url}/api/v1/audit/recommendations", params={
        "as_of": "2026-02-01T00:00:00+00:00", "modality": "MR"})
    assert [item["accession"] for item in response.json()["items"]] == ["CT-CASE-2"]
    overdue = {item["accession"] for item in _worklist(
        live_service, datetime(2027, 3, 1, tzinfo=UTC), "overdue")}
    # A year on: the adrenal request was closed by the MRI; the nodule CT is really overdue.
    assert overdue == {"CT-CASE-3"}
    done = {item["accession"] for item in _worklist(
        live_service, datetime(2027, 3, 1, tzinfo=UTC), "completed_on_time")}
    assert done == {"CT-CASE-2"}
