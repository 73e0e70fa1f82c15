"""The access log on a live service with auth on: every data request is logged with its key
and the patients it reached, an admin finds them by MRN, key, action or path, and a read whose
entry cannot be stored is withheld."""

from __future__ import annotations

import json
from datetime import date

import httpx
import pytest
from sqlalchemy import Engine, text

from nlp_service.api import access
from nlp_service.api.main import create_app
from nlp_service.api.routes import audit as audit_routes
from nlp_service.core.config import Settings
from nlp_service.fhir.mapping import patient_resource_id
from nlp_service.intake.hl7 import build_oru
from nlp_service.security import create_key
from nlp_service.storage.db import session_scope
from nlp_service.worker import Worker
from pipelines.pipeline import RadiologyPipeline
from tests.conftest import serving
from tests.nlp_service.test_service_cli import radnlp

NODULE = ["FINDINGS: Incidental 5 mm pulmonary nodule in the right upper lobe.",
          "IMPRESSION: Recommend follow-up CT chest in 12 months."]


def test_who_accessed_which_patient_is_logged_and_queryable(
        engine: Engine, rules_pipeline: RadiologyPipeline,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(database_url="sqlite://", pipeline_mode="rules", secret_key="s")
    app = create_app(settings, engine=engine, pipeline=rules_pipeline, run_migrations=False)
    with session_scope(engine) as session:
        keys = {role: create_key(session, name=f"{role} key", roles=[role])
                for role in ("ingest", "ehr", "auditor", "annotator", "admin")}
    key_ids = {role: record.key_id for role, (_, record) in keys.items()}

    def auth(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[role][0]}"}

    with serving(app) as base, httpx.Client(base_url=base, timeout=60) as client:
        for control_id, accession, mrn in [("A1", "ACC-A", "MRN-ALPHA"),
                                           ("B1", "ACC-B", "MRN-BRAVO")]:
            message = build_oru(control_id, accession, "\n".join(NODULE), mrn=mrn,
                                procedure=("71250", "CT CHEST WITHOUT CONTRAST", "CPT4"),
                                birth_date=date(1960, 5, 1))  # QPP 364 needs age >= 35
            sent = client.post("/api/v1/hl7", content=message,
                               headers={**auth("ingest"),
                                        "Content-Type": "x-application/hl7-v2+er7"})
            assert sent.status_code == 200
        Worker(engine, rules_pipeline).run_until_empty()

        fhir = client.get("/fhir/DiagnosticReport", params={"identifier": "ACC-A"},
                          headers=auth("ehr"))
        assert fhir.status_code == 200 and fhir.json()["total"] == 1
        report_b = client.get("/api/v1/reports", params={"accession": "ACC-B"},
                              headers=auth("auditor")).json()["items"][0]["id"]
        assert client.get(f"/api/v1/reports/{report_b}", headers=auth("auditor")).is_success
        export = client.get("/api/v1/audit/recommendations",
                            params={"format": "csv", "patient": "MRN-BRAVO"},
                            headers=auth("auditor"))
        assert export.status_code == 200 and "ACC-B" in export.text
        refused = client.get("/fhir/Observation", headers=auth("annotator"))
        assert refused.status_code == 403
        assert client.get("/api/v1/access-log", headers=auth("auditor")).status_code == 403

        def log(**params: str) -> list[dict]:
            answer = client.get("/api/v1/access-log", params=params, headers=auth("admin"))
            assert answer.status_code == 200, answer.text
            return list(answer.json()["items"])

        alpha, bravo = (patient_resource_id(m, "HOSP") for m in ("MRN-ALPHA", "MRN-BRAVO"))
        # Patient A: only the EHR's FHIR search reached them (the ingest is not a read).
        for_a = log(mrn="MRN-ALPHA")
        assert [(e["key_id"], e["method"], e["path"], e["action"], e["patients"])
                for e in for_a] == [(key_ids["ehr"], "GET", "/fhir/DiagnosticReport", "read",
                                     [alpha])]
        assert for_a[0]["query"] == "identifier=ACC-A" and for_a[0]["status"] == 200
        # Patient B: the auditor's list, read and CSV export, newest first.
        for_b = log(mrn="MRN-BRAVO")
        assert [(e["key_id"], e["path"], e["action"]) for e in for_b] == [
            (key_ids["auditor"], "/api/v1/audit/recommendations", "export"),
            (key_ids["auditor"], f"/api/v1/reports/{report_b}", "read"),
            (key_ids["auditor"], "/api/v1/reports", "read")]
        assert all(e["patients"] == [bravo] for e in for_b)
        assert log(patient=bravo) == for_b
        # Refusals are logged with the key that tried; the admin's own queries are logged.
        assert [(e["key_id"], e["path"], e["status"]) for e in log(action="refused")] == [
            (key_ids["auditor"], "/api/v1/access-log", 403),
            (key_ids["annotator"], "/fhir/Observation", 403)]
        assert {e["path"] for e in log(key_id=key_ids["admin"])} == {"/api/v1/access-log"}
        assert [e["path"] for e in log(path="/fhir/", action="read")] == [
            "/fhir/DiagnosticReport"]
        # The log holds Patient ids (hashes), never an MRN, beyond the queries sent to it.
        dumped = str([e for e in log(limit="1000") if e["path"] != "/api/v1/access-log"])
        assert "MRN-ALPHA" not in dumped
        assert dumped.count("MRN-BRAVO") == 1  # the export's own patient=MRN-BRAVO query

        # An answer over too many patients to list (a measure) is logged as bulk, and found
        # by every patient search.
        monkeypatch.setattr(access, "MAX_LISTED_PATIENTS", 1)
        monkeypatch.setattr(audit_routes, "MAX_LISTED_PATIENTS", 1)
        measure = client.get("/api/v1/audit/measures/364", headers=auth("auditor"))
        assert measure.status_code == 200
        reports = measure.json()["reports"]
        assert {*reports["denominator"], *reports["exclusions"]} == {"ACC-A", "ACC-B"}
        for mrn in ("MRN-ALPHA", "MRN-BRAVO"):
            newest = log(mrn=mrn)[0]
            assert (newest["path"], newest["bulk"], newest["patients"],
                    newest["patient_count"]) == ("/api/v1/audit/measures/364", True, [], 2)
        assert not any(e["bulk"] for e in for_a + for_b)

        if engine.dialect.name == "sqlite":  # the CLI gives the same answer as the API
            database = {"RADNLP_DATABASE_URL": engine.url.render_as_string()}
            cli = radnlp("access-log", "--mrn", "MRN-BRAVO", "--limit", "10", env=database,
                         timeout=120)
            assert cli.returncode == 0, cli.stderr
            assert json.loads(cli.stdout)["items"] == json.loads(json.dumps(log(mrn="MRN-BRAVO")))

        # No unlogged reads: when the entry cannot be stored, the answer is withheld.
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE access_log_patient"))
            connection.execute(text("DROP TABLE access_log"))
        withheld = client.get(f"/api/v1/reports/{report_b}", headers=auth("auditor"))
        assert withheld.status_code == 503 and "NODULE" not in withheld.text.upper()
