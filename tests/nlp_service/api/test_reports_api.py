"""The reports API, HL7 over HTTP and the analyze endpoint, on a live server."""

from __future__ import annotations

from collections.abc import Callable

import hl7
import httpx

from nlp_service.worker import Worker
from pipelines.pipeline import RadiologyPipeline
from tests.conftest import LiveService

REPORT = ["FINDINGS: 7 mm nodule in the left lower lobe. No pleural effusion.",
          "IMPRESSION: Recommend CT chest in 3 months."]
HL7_TYPE = {"content-type": "x-application/hl7-v2+er7"}


def test_hl7_over_http_then_reports_api(live_service: LiveService, oru: Callable[..., str],
                                        rules_pipeline: RadiologyPipeline) -> None:
    api = f"{live_service.base_url}/api/v1"
    message = oru("HTTP1", "ACC-HTTP1", REPORT, mrn="MRN777")
    response = httpx.post(f"{api}/hl7", content=message.encode(), headers=HL7_TYPE)
    assert response.status_code == 200
    assert str(hl7.parse(response.text).segment("MSA")[1]) == "AA"
    live_service.drain()
    page = httpx.get(f"{api}/reports", params={"patient": "MRN777"}).json()
    assert page["total"] == 1
    summary = page["items"][0]
    assert summary["accession"] == "ACC-HTTP1" and summary["result_status"] == "F"
    detail = httpx.get(f"{api}/reports/{summary['id']}").json()
    expected = rules_pipeline.analyze("\n".join(REPORT))
    assert detail["text"] == "\n".join(REPORT)
    assert [(f["text"], f["assertion"]) for f in detail["findings"]] == [
        (f.text, f.assertion) for f in expected.findings]
    assert [r["interval_min_days"] for r in detail["recommendations"]] == [90]
    assert httpx.get(f"{api}/reports", params={"patient": "nobody"}).json()["total"] == 0
    assert httpx.get(f"{api}/reports/999999").status_code == 404


def test_hl7_over_http_refusals(live_service: LiveService) -> None:
    api = f"{live_service.base_url}/api/v1"
    bad = httpx.post(f"{api}/hl7", content=b"MSH|^~\\&|A|B|C|D|2026||ORU^R01|NOPID|P|2.5.1\r",
                     headers=HL7_TYPE)
    assert bad.status_code == 400
    ack = hl7.parse(bad.text)
    assert str(ack.segment("MSA")[1]) in ("AE", "AR")
    assert str(ack.segment("MSA")[2]) == "NOPID"
    huge = httpx.post(f"{api}/hl7", content=b"x" * 3_000_000, headers=HL7_TYPE)
    assert huge.status_code == 413


def test_analyze_returns_the_analysis_and_stores_nothing(live_service: LiveService,
                                                         rules_pipeline: RadiologyPipeline
                                                         ) -> None:
    api = f"{live_service.base_url}/api/v1"
    text = "No pneumothorax, effusion, or consolidation. Possible small nodule."
    response = httpx.post(f"{api}/analyze", json={"id": "A1", "text": text})
    assert response.status_code == 200
    assert response.json() == rules_pipeline.analyze(text, "A1").model_dump(mode="json")
    assert httpx.get(f"{api}/reports").json()["total"] == 0
    for payload in ({"text": ""}, {"txt": "x"}, {"text": 5}, {"text": "   "}):
        rejected = httpx.post(f"{api}/analyze", json=payload)
        assert rejected.status_code == 422, payload
        assert rejected.json()["detail"]
    assert "/api/v1/analyze" in httpx.get(f"{live_service.base_url}/openapi.json").json()["paths"]


def test_inbox_and_dead_letters_show_what_failed_and_retry_requeues(
        live_service: LiveService, oru: Callable[..., str],
        rules_pipeline: RadiologyPipeline) -> None:
    api = f"{live_service.base_url}/api/v1"
    httpx.post(f"{api}/hl7", content=b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|DL1|P|2.5.1\r",
               headers=HL7_TYPE)
    long_text = ["FINDINGS: " + "Stable appearance. " * 40]
    httpx.post(f"{api}/hl7", content=oru("LONG1", "ACC-LONG", long_text).encode(),
               headers=HL7_TYPE)
    httpx.post(f"{api}/hl7", content=oru("OK2", "ACC-OK2", REPORT).encode(), headers=HL7_TYPE)
    strict = Worker(live_service.engine, RadiologyPipeline(
        rules_pipeline.nlp, model_version=rules_pipeline.model_version, max_chars=400),
        max_attempts=2)
    strict.run_until_empty()
    status = httpx.get(f"{api}/hl7/inbox").json()
    assert status["counts"] == {"pending": 0, "processing": 0, "done": 1, "failed": 1}
    failure = status["failed"][0]
    assert failure["control_id"] == "LONG1" and failure["attempts"] == 2
    assert "E004" in failure["last_error"]
    letters = httpx.get(f"{api}/hl7/dead-letters").json()
    assert letters["total"] == 1
    assert letters["items"][0]["control_id"] == "DL1"
    assert letters["items"][0]["ack_code"] == "AR" and letters["items"][0]["size"] > 0
    assert httpx.post(f"{api}/hl7/inbox/{failure['id']}/retry").status_code == 200
    assert httpx.post(f"{api}/hl7/inbox/{failure['id']}/retry").status_code == 409
    assert httpx.post(f"{api}/hl7/inbox/999999/retry").status_code == 404
    live_service.drain()  # the service's own pipeline takes any length
    assert httpx.get(f"{api}/hl7/inbox").json()["counts"]["done"] == 2
