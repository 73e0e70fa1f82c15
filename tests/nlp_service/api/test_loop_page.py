"""The critical results and turnaround page in Chromium: compliance by group with the reports
behind each count, the critical findings list, and the turnaround chart and table."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page

from tests.conftest import LiveService
from tests.nlp_service.api.conftest import assert_serves
from tests.nlp_service.audit.test_critical import store_scenario
from tests.nlp_service.audit.test_turnaround import store_exams


def test_the_page_and_its_assets_are_served(live_service: LiveService) -> None:
    assert_serves(live_service.base_url, "/audit/loop", "/audit/loop/static",
                  ["loop.js", "loop.css"], ["dashboard.js", "../main.py"])


def test_the_loop_page_charts_compliance_and_turnaround(live_service: LiveService,
                                                        page: Page) -> None:
    store_scenario(live_service.engine, live_service.worker.pipeline)
    store_exams(live_service.engine, live_service.worker.pipeline)
    page.goto(f"{live_service.base_url}/audit/loop")
    page.wait_for_selector('#workspace[data-state="ready"]')
    january = page.locator('#compliance-table tr[data-group="2026-01"] td')
    assert january.all_inner_texts()[:2] == ["2026-01", "4"]
    assert "C03" in january.nth(4).inner_text()  # the report behind "not documented"
    bars = page.locator("#compliance-svg rect.bar")
    assert bars.count() == 2
    assert bars.first.get_attribute("data-value") == "0.5"
    row = page.locator('#critical-table tr[data-accession="C01"] td').all_inner_texts()
    assert row[1] == "tension pneumothorax" and row[-2] == "Ana Ruiz" and row[-1] == "in time"
    page.select_option("#group", "modality")
    page.wait_for_selector('#compliance-table tr[data-group="XR"]')
    assert page.locator("#group-heading").inner_text() == "Modality"
    assert page.locator("#turnaround-svg rect.bar").count() == len(
        httpx.get(f"{live_service.base_url}/api/v1/audit/turnaround").json()["items"])
    assert page.locator("#turnaround-table tbody tr").count() >= 4
