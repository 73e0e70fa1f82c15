"""The follow-up audit dashboard in a real headless Chromium against a live service: its figures
must be the audit API's, and the report view must mark exactly the recommendation sentence."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, ViewportSize

from nlp_service.intake.hl7 import build_oru
from tests.conftest import LiveService
from tests.nlp_service.api.conftest import assert_serves

HL7_TYPE = {"content-type": "x-application/hl7-v2+er7"}
CT_CHEST = ("71250", "CT CHEST WITHOUT CONTRAST", "CPT4")
# An ultrasound of the neck (region head/neck) covers a recommended thyroid ultrasound.
US_THYROID = ("76536", "US SOFT TISSUE HEAD NECK", "CPT4")

NODULE_CT = ["FINDINGS: 7 mm solid nodule in the right upper lobe. No pleural effusion.",
             "IMPRESSION: 7 mm right upper lobe nodule. Recommend follow-up CT chest in 3 months."]
THYROID_CT = ["FINDINGS: 1.8 cm hypodense nodule in the right lobe of the thyroid gland. "
              "Lungs are clear.",
              "IMPRESSION: Incidental 1.8 cm thyroid nodule. Recommend thyroid ultrasound."]
STABLE_CT = ["FINDINGS: Stable 6 mm nodule in the left lower lobe. No pleural effusion.",
             "IMPRESSION: Stable left lower lobe nodule."]
THYROID_US = ["FINDINGS: 1.7 cm solid isoechoic nodule in the right thyroid lobe.",
              "IMPRESSION: Right thyroid nodule, as on the prior CT."]

# (accession, MRN, procedure, report lines, observed). Left alone: ACC-A (due 10 April 2025),
# ACC-C (thyroid US, default 90-day window) and ACC-E (due 30 December 2024) become overdue;
# ACC-B is followed up on time by ACC-B2, ACC-D late by ACC-D2.
SCENARIO = [
    ("ACC-E", "MRN-E", CT_CHEST, NODULE_CT, datetime(2024, 10, 1, 9, 0, tzinfo=UTC)),
    ("ACC-D", "MRN-D", CT_CHEST, THYROID_CT, datetime(2024, 9, 16, 10, 0, tzinfo=UTC)),
    ("ACC-A", "MRN-A", CT_CHEST, NODULE_CT, datetime(2025, 1, 10, 8, 30, tzinfo=UTC)),
    ("ACC-B", "MRN-B", CT_CHEST, NODULE_CT, datetime(2025, 2, 3, 14, 0, tzinfo=UTC)),
    ("ACC-C", "MRN-C", CT_CHEST, THYROID_CT, datetime(2025, 3, 5, 11, 15, tzinfo=UTC)),
    ("ACC-B2", "MRN-B", CT_CHEST, STABLE_CT, datetime(2025, 4, 28, 9, 0, tzinfo=UTC)),
    ("ACC-D2", "MRN-D", US_THYROID, THYROID_US, datetime(2025, 1, 20, 13, 0, tzinfo=UTC)),
]
OVERDUE_NOW = ["ACC-E", "ACC-A", "ACC-C"]  # by due date
EARLIER_DAY = "2025-02-01"  # D was done late (20 January), A and B not yet due, C not reported
OVERDUE_EARLIER = ["ACC-E"]


@pytest.fixture
def viewport() -> ViewportSize:
    """A less tall window than the other pages' (the dashboard's screenshots)."""
    return {"width": 1280, "height": 900}


def _feed(live_service: LiveService, reports: list[tuple[str, str, tuple[str, str, str],
                                                           list[str], datetime]]) -> None:
    for number, (accession, mrn, procedure, lines, observed) in enumerate(reports, 1):
        message = build_oru(f"DASH{number}", accession, "\n".join(lines), mrn=mrn,
                            observed_at=observed, procedure=procedure,
                            birth_date=date(1961, 5, 17), ordering_provider="1234^SMITH^JANE",
                            interpreter="5678&JONES&ALEX")
        response = httpx.post(f"{live_service.base_url}/api/v1/hl7", content=message.encode(),
                              headers=HL7_TYPE)
        assert response.status_code == 200, response.text
    live_service.drain()


def _wait_ready(page: Page, as_of: str) -> None:
    page.wait_for_selector(f'#dashboard[data-state="ready"][data-as-of="{as_of}"]')


def _api(base: str, path: str, **params: Any) -> Any:
    response = httpx.get(f"{base}/api/v1/audit/{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _percent(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.1f}%"


def _check_against_api(page: Page, base: str, as_of: str) -> dict[str, Any]:
    """The page's tiles, worklist, charts and measures equal the API's answers on ``as_of``;
    returns the worklist page the API gave."""
    common = {"as_of": as_of, "include_conditional": "false"}
    months = _api(base, "summary", group_by="month", **common)
    overall = months["overall"]
    assert page.text_content("#kpi-overdue") == str(overall["overdue"])
    assert page.text_content("#kpi-due") == str(overall["due"])
    assert page.text_content("#kpi-completion-rate") == _percent(overall["completion_rate"])
    assert page.text_content("#kpi-on-time-rate") == _percent(overall["on_time_rate"])

    worklist = _api(base, "recommendations", status="overdue", sort="due_end", limit=50,
                    **common)
    rows = page.locator("#worklist tbody tr[data-id]")
    assert rows.count() == len(worklist["items"]) == worklist["total"]
    assert page.get_attribute("#worklist", "data-total") == str(worklist["total"])
    api_now = datetime.fromisoformat(worklist["as_of"])
    for i, item in enumerate(worklist["items"]):
        row = rows.nth(i)
        assert row.get_attribute("data-accession") == item["accession"]
        cells = [c.strip() for c in row.locator("th, td").all_text_contents()]
        due_end = datetime.fromisoformat(item["due_end"])
        due_end = due_end if due_end.tzinfo else due_end.replace(tzinfo=UTC)
        assert cells[:7] == [
            item["accession"], item["patient_mrn"], item["finding"],
            f"{item['modality']} {item['body_region']}", item["report_time"][:10],
            item["due_end"][:10], str((api_now - due_end).days)]
        assert row.locator(".verdict").text_content() == (
            item["guideline_verdict"] or "–").replace("_", " ")
        assert row.locator("a.report-link").text_content() == item["text"]

    compliance = page.locator("#chart-compliance svg")
    assert compliance.get_attribute("role") == "img"
    assert compliance.get_attribute("aria-label")
    assert page.locator("#chart-compliance svg text.axis-label").count() == 2
    with_rates = [g for g in months["groups"] if g["completion_rate"] is not None]
    assert page.locator("#chart-compliance circle.point").count() == 2 * len(with_rates)
    for name in ("modality", "finding"):
        groups = _api(base, "summary", group_by=name, **common)["groups"]
        expected = sorted((str(g["key"]), g["overdue"]) for g in groups if g["overdue"])
        bars = page.locator(f"#chart-overdue-{name} svg rect.bar")
        assert sorted((bars.nth(i).get_attribute("data-label") or "",
                       int(bars.nth(i).get_attribute("data-value") or -1))
                      for i in range(bars.count())) == expected

    for number in ("364", "405", "406"):
        figures = _api(base, f"measures/{number}", as_of=as_of)
        box = page.locator(f"#measure-{number}")
        assert box.locator(".numerator").text_content() == str(figures["numerator"])
        assert box.locator(".denominator").text_content() == str(figures["denominator"])
        assert box.locator(".rate").text_content() == _percent(figures["rate"])
        assert ("lower is better" in (box.text_content() or "")) == (number != "364")
    return worklist


def test_dashboard_shows_the_api_figures_and_follows_the_as_of_date(
        live_service: LiveService, page: Page, tmp_path: Path) -> None:
    base = live_service.base_url
    _feed(live_service, SCENARIO)

    page.goto(f"{base}/audit")
    day = page.input_value("#as-of")
    assert day == date.today().isoformat()
    today_as_of = f"{day}T23:59:59Z"
    _wait_ready(page, today_as_of)
    worklist = _check_against_api(page, base, today_as_of)
    assert [item["accession"] for item in worklist["items"]] == OVERDUE_NOW
    assert page.text_content("#kpi-overdue") == str(len(OVERDUE_NOW))

    # The CSV exports are the same query as the table.
    csv = httpx.get(base + (page.get_attribute("#csv-worklist", "href") or ""))
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert [line.split(",")[2] for line in csv.text.splitlines()[1:]] == OVERDUE_NOW
    summary_csv = httpx.get(base + (page.get_attribute("#csv-summary", "href") or ""))
    assert summary_csv.status_code == 200 and summary_csv.text.startswith("key,")

    screenshot = tmp_path / "dashboard.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"dashboard screenshot: {screenshot}")

    page.fill("#as-of", EARLIER_DAY)
    earlier_as_of = f"{EARLIER_DAY}T23:59:59Z"
    _wait_ready(page, earlier_as_of)
    assert f"as_of={EARLIER_DAY}" in page.url
    earlier = _check_against_api(page, base, earlier_as_of)
    assert [item["accession"] for item in earlier["items"]] == OVERDUE_EARLIER
    assert int(page.text_content("#kpi-overdue") or 0) < len(OVERDUE_NOW)
    page.screenshot(path=str(tmp_path / "dashboard-earlier.png"), full_page=True)

    # The worklist link opens the report with exactly the recommendation sentence marked.
    item = earlier["items"][0]
    page.locator("#worklist tbody tr[data-id] a.report-link").first.click()
    page.wait_for_url(f"**/audit/reports/{item['report_id']}?*")
    report = httpx.get(f"{base}/api/v1/reports/{item['report_id']}").json()
    mark = page.locator("mark#recommendation")
    assert mark.count() == 1
    assert mark.text_content() == item["text"] == report["text"][item["start"]:item["end"]]
    assert page.text_content("#report-text") == report["text"]
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    print(f"report screenshot: {tmp_path / 'report.png'}")

    page.go_back()
    _wait_ready(page, earlier_as_of)
    assert page.input_value("#as-of") == EARLIER_DAY


def test_report_page_escapes_text_and_refuses_what_it_cannot_show(
        live_service: LiveService, page: Page) -> None:
    base = live_service.base_url
    lines = ['FINDINGS: 8 mm nodule in the left upper lobe. <script>alert("x")</script> '
             "Heart size normal & no effusion. <b>Not bold</b>",
             "IMPRESSION: Recommend CT chest in 6 months."]
    _feed(live_service, [("ACC-X", "MRN-X", CT_CHEST, lines,
                          datetime(2025, 6, 2, 9, 0, tzinfo=UTC))])
    text = "\n".join(lines)
    reports = httpx.get(f"{base}/api/v1/reports", params={"accession": "ACC-X"}).json()
    report = httpx.get(f"{base}/api/v1/reports/{reports['items'][0]['id']}").json()
    assert report["text"] == text
    rec = report["recommendations"][0]
    url = f"{base}/audit/reports/{report['id']}"

    response = httpx.get(url, params={"start": rec["start"], "end": rec["end"]})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert "<script>alert" not in response.text and "<b>Not" not in response.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in response.text
    assert "normal &amp; no effusion" in response.text
    assert ('<mark id="recommendation">Recommend CT chest in 6 months.</mark>'
            in response.text)

    page.goto(f"{url}?start={rec['start']}&end={rec['end']}")
    assert page.text_content("#report-text") == text
    assert page.locator("#report-text b, #report-text script").count() == 0
    assert page.text_content("mark#recommendation") == rec["text"]

    plain = httpx.get(url)
    assert plain.status_code == 200 and "<mark" not in plain.text
    missing = httpx.get(f"{base}/audit/reports/999999")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "Report 999999 does not exist." in missing.text
    for params in ({"start": 5}, {"start": 9, "end": 3}, {"start": 0, "end": len(text) + 1}):
        bad = httpx.get(url, params=params)
        assert bad.status_code == 422, params
    assert_serves(base, "/audit", "/audit/static", ["dashboard.js", "dashboard.css"],
                  ["dashboard.py", "..%2Froutes%2Fdashboard.py"])
