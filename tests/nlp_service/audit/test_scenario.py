"""The audit scenario: 200 synthetic patients over two years, each with a follow-up
recommendation and what happened next (on time, late, wrong modality, never, corrected
report, decided not needed, still open, a larger exam that covers it), plus incidental thyroid
nodules for QPP 406. States, rates and measure figures must come out exactly as the scenario
says, on SQLite and PostgreSQL, and for any "as of" date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from nlp_service.audit.queries import AuditFilters, list_follow_ups, measure, summary
from nlp_service.audit.tracking import set_decision
from nlp_service.intake.hl7 import build_oru
from nlp_service.intake.receiver import receive_message
from nlp_service.storage.db import session_scope
from nlp_service.storage.fhir_store import FhirWriter
from nlp_service.storage.models import FollowUp, FollowUpEvent
from nlp_service.worker import Worker
from pipelines.pipeline import RadiologyPipeline

CT_CHEST = ("71250", "CT CHEST WITHOUT CONTRAST", "CPT4")
XR_CHEST = ("71046", "XR CHEST 2 VIEWS", "CPT4")
CT_CAP = ("CTCAP", "CT CHEST ABDOMEN PELVIS WITH CONTRAST", "LOCAL")
CT_NECK = ("70491", "CT SOFT TISSUE NECK WITH CONTRAST", "CPT4")
AS_OF = datetime(2026, 12, 31, tzinfo=UTC)
DECIDED_AT = datetime(2026, 6, 1, tzinfo=UTC)
CLEAR = ("FINDINGS: Lungs are clear. No pleural effusion or pneumothorax.\n"
         "IMPRESSION: No acute cardiopulmonary abnormality.")
KINDS = ("on_time", "late", "wrong_modality", "never", "corrected", "not_needed", "open",
         "larger_exam")


def nodule_report(months: str, cite: bool) -> str:
    source = " per Fleischner Society guidelines" if cite else ""
    return ("FINDINGS: 7 mm solid nodule in the right upper lobe. No pleural effusion.\n"
            f"IMPRESSION: 7 mm right upper lobe nodule. Recommend follow-up CT chest in "
            f"{months} months{source}.")


@dataclass
class Patient:
    """One scenario patient: the recommendation's report, and the exam that followed."""

    number: int
    kind: str
    source_time: datetime
    cite: bool
    young: bool
    window_days: int = 365  # due window end, from the (final) recommendation
    exam_time: datetime | None = None
    exam_satisfies: bool = False

    @property
    def mrn(self) -> str:
        return f"SCN{self.number:04d}"

    def expected(self, as_of: datetime) -> str | None:
        """The state this patient's follow-up must have on ``as_of`` (None: not yet made)."""
        if self.source_time > as_of:
            return None
        if self.kind == "not_needed" and as_of >= DECIDED_AT:
            return "not_needed"
        due_end = self.source_time + timedelta(days=self.window_days)
        if self.exam_satisfies and self.exam_time is not None and self.exam_time <= as_of:
            return "completed_on_time" if self.exam_time <= due_end else "completed_late"
        return "overdue" if due_end < as_of else "open"


def scenario() -> list[Patient]:
    patients = []
    for number in range(200):
        kind, k = KINDS[number % 8], number // 8
        start = (datetime(2026, 3, 2, 9, tzinfo=UTC) + timedelta(days=7 * k) if kind == "open"
                 else datetime(2025, 1, 2, 9, tzinfo=UTC) + timedelta(days=14 * k))
        patient = Patient(number, kind, start, cite=k % 2 == 0, young=k == 0)
        if kind == "corrected":
            patient.window_days = 90  # the correction says 3 months, not 6-12
        offsets = {"on_time": 200, "late": 380, "wrong_modality": 200, "corrected": 150,
                   "larger_exam": 200}
        if kind in offsets:
            patient.exam_time = start + timedelta(days=offsets[kind])
            patient.exam_satisfies = kind != "wrong_modality"
        patients.append(patient)
    return patients


def messages(patients: list[Patient]) -> list[str]:
    out = []
    for p in patients:
        born = date(2000, 1, 1) if p.young else date(1960, 1, 1)
        common = dict(mrn=p.mrn, birth_date=born, ordering_provider=f"{p.number % 3}^DOC^A",
                      interpreter="900&READER&R")
        out.append(build_oru(f"S{p.number}", f"SRC{p.number}", nodule_report("6-12", p.cite),
                             observed_at=p.source_time, procedure=CT_CHEST, **common))
        if p.kind == "corrected":
            out.append(build_oru(f"S{p.number}C", f"SRC{p.number}", nodule_report("3", p.cite),
                                 status="C", observed_at=p.source_time, procedure=CT_CHEST,
                                 **common))
        if p.exam_time is not None:
            procedure = {"wrong_modality": XR_CHEST, "larger_exam": CT_CAP}.get(p.kind, CT_CHEST)
            out.append(build_oru(f"E{p.number}", f"EXM{p.number}", CLEAR,
                                 observed_at=p.exam_time, procedure=procedure, **common))
    return out


THYROID = ("FINDINGS: Incidental 6 mm nodule in the left lobe of the thyroid gland. No "
           "cervical lymphadenopathy.\nIMPRESSION: 6 mm left thyroid nodule.{recommend}")


def thyroid_messages() -> list[str]:
    """Ten CT neck reports with a 6 mm thyroid nodule; five recommend an ultrasound."""
    out = []
    for i in range(10):
        recommend = " Recommend thyroid ultrasound." if i < 5 else ""
        out.append(build_oru(f"T{i}", f"THY{i}", THYROID.format(recommend=recommend),
                             mrn=f"THY{i:04d}", birth_date=date(1970, 1, 1),
                             observed_at=datetime(2025, 5, 1, 9, tzinfo=UTC)
                             + timedelta(days=i), procedure=CT_NECK))
    return out


def load(engine: Engine, pipeline: RadiologyPipeline) -> list[Patient]:
    """Send the scenario's messages, run the worker, record the decisions."""
    patients = scenario()
    for message in [*messages(patients), *thyroid_messages()]:
        assert receive_message(engine, message.encode(), source="scenario").ack_code == "AA"
    outcome = Worker(engine, pipeline, batch_size=64).run_until_empty()
    assert outcome.set_aside == 0 and outcome.failed == 0, outcome.errors
    with session_scope(engine) as session:
        fhir = FhirWriter(session, DECIDED_AT)
        for p in patients:
            if p.kind == "not_needed":
                follow_up = session.exec(select(FollowUp).where(
                    FollowUp.accession == f"SRC{p.number}")).one()
                set_decision(session, fhir, follow_up, "not_needed", actor="qa.nurse",
                             reason="patient enrolled in an outside surveillance program",
                             at=DECIDED_AT)
        fhir.flush()
    return patients


def states(session: Session, as_of: datetime) -> dict[str, str]:
    _, rows = list_follow_ups(session, AuditFilters(), as_of=as_of, limit=10_000)
    return {follow_up.accession: state for follow_up, state in rows}


def test_audit_scenario(engine: Engine, rules_pipeline: RadiologyPipeline) -> None:
    """One load per database; each check below is a function of its own."""
    loaded = load(engine, rules_pipeline)
    for as_of in (AS_OF, datetime(2025, 9, 30, tzinfo=UTC), datetime(2026, 5, 15, tzinfo=UTC)):
        check_states(engine, loaded, as_of)
    check_rates_and_counts(engine, loaded)
    check_corrected_report_rederives_and_keeps_history(engine, loaded)
    check_measure_figures(engine, loaded)


def check_states(engine: Engine, loaded: list[Patient], as_of: datetime) -> None:
    with Session(engine) as session:
        got = states(session, as_of)
    expected = {f"SRC{p.number}": p.expected(as_of) for p in loaded}
    expected = {accession: state for accession, state in expected.items() if state}
    thyroid_due = datetime(2025, 5, 1, 9, tzinfo=UTC) + timedelta(days=90)
    for i in range(5):  # no interval stated: the default 90-day window
        if as_of >= datetime(2025, 5, 1, 9, tzinfo=UTC) + timedelta(days=i):
            expected[f"THY{i}"] = "overdue" if as_of > thyroid_due + timedelta(days=i) else "open"
    assert got == expected, as_of


def check_rates_and_counts(engine: Engine, loaded: list[Patient]) -> None:
    with Session(engine) as session:
        overall, by_modality = summary(session, AuditFilters(), as_of=AS_OF,
                                       group_by="modality")
        _, by_month = summary(session, AuditFilters(), as_of=AS_OF, group_by="month")
    counts = {state: sum(p.expected(AS_OF) == state for p in loaded)
              for state in ("completed_on_time", "completed_late", "overdue", "not_needed",
                            "open")}
    assert counts == {"completed_on_time": 50, "completed_late": 50, "overdue": 50,
                      "not_needed": 25, "open": 25}
    assert overall.counts["completed_on_time"] == 50
    assert overall.counts["completed_late"] == 50
    assert overall.counts["overdue"] == 50 + 5  # and the five thyroid ultrasounds
    assert overall.counts["not_needed"] == 25 and overall.counts["open"] == 25
    assert overall.completion_rate == round(100 / 155, 4)
    assert overall.on_time_rate == round(50 / 155, 4)
    assert {g.key: g.total for g in by_modality} == {"CT": 200, "US": 5}
    assert sum(g.total for g in by_month) == 205
    january = next(g for g in by_month if g.key == "2025-01")
    assert january.total == sum(1 for p in loaded if p.source_time.strftime("%Y-%m")
                                == "2025-01")


def check_corrected_report_rederives_and_keeps_history(engine: Engine,
                                                      loaded: list[Patient]) -> None:
    corrected = next(p for p in loaded if p.kind == "corrected")
    with Session(engine) as session:
        follow_up = session.exec(select(FollowUp).where(
            FollowUp.accession == f"SRC{corrected.number}")).one()
        events = session.exec(select(FollowUpEvent).where(
            FollowUpEvent.follow_up_id == follow_up.id).order_by(col(FollowUpEvent.id))).all()
    assert [e.kind for e in events][:2] == ["created", "rederived"]
    assert "due_end" in events[1].reason
    assert follow_up.due_end == corrected.source_time + timedelta(days=90)
    decided = next(p for p in loaded if p.kind == "not_needed")
    with Session(engine) as session:
        decision = session.exec(select(FollowUpEvent).join(FollowUp).where(
            FollowUp.accession == f"SRC{decided.number}",
            FollowUpEvent.kind == "manual")).one()
    assert (decision.actor, decision.status, decision.at) == ("qa.nurse", "not_needed",
                                                              DECIDED_AT)


def check_measure_figures(engine: Engine, loaded: list[Patient]) -> None:
    with Session(engine) as session:
        m364 = measure(session, "364", as_of=AS_OF)
        m406 = measure(session, "406", as_of=AS_OF)
    eligible = [p for p in loaded if not p.young]
    assert m364.denominator == len(eligible)
    assert sorted(m364.numerator_reports) == sorted(f"SRC{p.number}" for p in eligible
                                                    if p.cite)
    assert m364.rate == round(sum(p.cite for p in eligible) / len(eligible), 4)
    assert not set(m364.denominator_reports) & {f"SRC{p.number}" for p in loaded if p.young}
    assert (m406.denominator, m406.numerator) == (10, 5)
    assert sorted(m406.numerator_reports) == [f"THY{i}" for i in range(5)]
