"""Re-analysing stored reports: a new version per report, follow-ups re-derived in place,
FHIR resources versioned only where they change, and a report that cannot be re-analysed
failing alone."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from nlp_service.intake.receiver import receive_message
from nlp_service.reanalysis import reanalyze
from nlp_service.storage.models import FhirResource, FollowUp, FollowUpEvent, InboxMessage, Report
from nlp_service.worker import Worker
from pipelines.pipeline import RadiologyPipeline

NODULE = ["FINDINGS: 7 mm solid nodule in the left lower lobe.",
          "IMPRESSION: Recommend follow-up CT chest in 6 months."]
NORMAL = ["FINDINGS: No pneumothorax. No pleural effusion."]


def _stored(engine: Engine, oru: Callable[..., str], pipeline: RadiologyPipeline) -> None:
    for number, (accession, text, mrn) in enumerate([("RA-1", NODULE, "MRN700001"),
                                                      ("RA-2", NORMAL, "MRN700002"),
                                                      ("RA-3", NODULE, "MRN700003")]):
        message = oru(f"RA{number}", accession, text, mrn=mrn)
        assert receive_message(engine, message.encode(), source="test").ack_code == "AA"
    assert Worker(engine, pipeline, batch_size=10).run_until_empty().reports == 3


def _versions(session: Session) -> dict[str, int]:
    return dict(session.exec(select(Report.accession, Report.version)
                             .where(col(Report.is_current))).all())


def test_reanalysis_makes_new_versions_and_rederives_follow_ups(
        engine: Engine, oru: Callable[..., str], rules_pipeline: RadiologyPipeline) -> None:
    _stored(engine, oru, rules_pipeline)
    # The same model made them: nothing to do unless asked for every report.
    assert reanalyze(engine, rules_pipeline) == {"reanalysed": 0, "failed": 0}
    with Session(engine) as session:
        requests_before = {r.resource_id: r.version_id for r in session.exec(
            select(FhirResource).where(FhirResource.resource_type == "ServiceRequest",
                                       col(FhirResource.is_current)))}
    # Each report's order, and the follow-up its recommendation asks for.
    assert set(requests_before) == {"RA-1-order", "RA-2-order", "RA-3-order", "RA-1-r0",
                                    "RA-3-r0"}

    counts = reanalyze(engine, rules_pipeline, only_other_models=False, batch_size=2)

    assert counts == {"reanalysed": 3, "failed": 0}
    with Session(engine) as session:
        assert _versions(session) == {"RA-1": 2, "RA-2": 2, "RA-3": 2}
        follow_ups = session.exec(select(FollowUp).order_by(col(FollowUp.accession))).all()
        assert [(f.accession, f.withdrawn_at) for f in follow_ups] == [("RA-1", None),
                                                                      ("RA-3", None)]
        current_ids = set(session.exec(select(Report.id).where(col(Report.is_current))))
        assert {f.source_report_id for f in follow_ups} <= current_ids
        kinds = session.exec(select(FollowUpEvent.kind, func.count()).group_by(
            FollowUpEvent.kind)).all()
        assert dict(kinds) == {"created": 2, "rederived": 2}
        requests_after = {r.resource_id: r.version_id for r in session.exec(
            select(FhirResource).where(FhirResource.resource_type == "ServiceRequest",
                                       col(FhirResource.is_current)))}
    # The same analysis gives the same ServiceRequests: no new FHIR versions.
    assert requests_after == requests_before


def test_a_report_that_cannot_be_reanalysed_fails_alone(
        engine: Engine, oru: Callable[..., str], rules_pipeline: RadiologyPipeline) -> None:
    _stored(engine, oru, rules_pipeline)
    with Session(engine) as session:
        report = session.exec(select(Report).where(Report.accession == "RA-2")).one()
        inbox = session.get(InboxMessage, report.inbox_id)
        assert inbox is not None
        inbox.parsed = None  # its parsed message is gone: nothing to build a version from
        session.add(inbox)
        session.commit()

    counts = reanalyze(engine, rules_pipeline, only_other_models=False)

    assert counts == {"reanalysed": 2, "failed": 1}
    with Session(engine) as session:
        assert _versions(session) == {"RA-1": 2, "RA-2": 1, "RA-3": 2}


def test_reanalysis_of_chosen_accessions(
        engine: Engine, oru: Callable[..., str], rules_pipeline: RadiologyPipeline) -> None:
    _stored(engine, oru, rules_pipeline)
    assert reanalyze(engine, rules_pipeline, ["RA-3"], only_other_models=False) == {
        "reanalysed": 1, "failed": 0}
    with Session(engine) as session:
        assert _versions(session) == {"RA-1": 1, "RA-2": 1, "RA-3": 2}
