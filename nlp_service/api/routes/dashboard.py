"""The follow-up audit dashboard (a static page over the audit API) and an HTML view of one
stored report with its recommendation sentence highlighted."""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse

from nlp_service.api import pages
from nlp_service.api.access import note_patients
from nlp_service.api.deps import RowId, SessionDep
from nlp_service.api.pages import PAGE_HEADERS
from nlp_service.storage.access_log import patient_ids_of
from nlp_service.storage.models import Report

ASSETS = {**pages.SHARED_ASSETS, "dashboard.js": "text/javascript", "dashboard.css": "text/css"}

router = APIRouter(tags=["dashboard"], include_in_schema=False)


@router.get("/audit", response_class=FileResponse)
def dashboard() -> FileResponse:
    """The follow-up audit dashboard."""
    return pages.page("dashboard.html")


@router.get("/audit/static/{name}", response_class=FileResponse)
def asset(name: str) -> FileResponse:
    """The dashboard's scripts and stylesheets (only those)."""
    return pages.asset(name, ASSETS)


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)} · radnlp</title>\n"
        "<link rel=\"icon\" href=\"data:,\">\n"
        "<link rel=\"stylesheet\" href=\"/audit/static/common.css\">\n"
        "<link rel=\"stylesheet\" href=\"/audit/static/dashboard.css\">\n</head>\n"
        f"<body class=\"report-page\">\n{body}\n</body>\n</html>\n",
        status_code=status_code, headers=PAGE_HEADERS)


def _error(message: str, status_code: int) -> HTMLResponse:
    title = "Not found" if status_code == 404 else "Bad request"
    return _page(title, f"<main><h1>{title}</h1>"
                 f"<p id=\"error\" role=\"alert\">{html.escape(message)}</p>"
                 "<p><a href=\"/audit\">Back to the follow-up audit</a></p></main>",
                 status_code)


@router.get("/audit/reports/{report_id}", response_class=HTMLResponse)
def report_page(
    report_id: RowId, request: Request, session: SessionDep,
    start: Annotated[int | None, Query(ge=0, description="Highlight from this offset")] = None,
    end: Annotated[int | None, Query(ge=0, description="... to this one (exclusive)")] = None,
) -> HTMLResponse:
    """One stored report version; ``start``..``end`` (the recommendation sentence) marked."""
    report = session.get(Report, report_id)
    if report is None:
        return _error(f"Report {report_id} does not exist.", 404)
    note_patients(request, patient_ids_of([report]))
    text = report.text
    if (start is None) != (end is None):
        return _error("Give both start and end, or neither.", 422)
    if start is not None and end is not None:
        if not start < end <= len(text):
            return _error(f"start and end must satisfy 0 <= start < end <= {len(text)}.",
                              422)
        body = (html.escape(text[:start]) + "<mark id=\"recommendation\">"
                + html.escape(text[start:end]) + "</mark>" + html.escape(text[end:]))
    else:
        body = html.escape(text)
    facts = [("Accession", report.accession), ("Patient", report.patient_mrn),
             ("Procedure", report.procedure_name), ("Modality", report.modality),
             ("Body region", report.body_region),
             ("Observed", report.observed_at.isoformat() if report.observed_at else None),
             ("Result status", report.result_status),
             ("Version", f"{report.version}" + ("" if report.is_current else " (superseded)")),
             ("Ordering provider", report.ordering_provider),
             ("Radiologist", report.interpreter)]
    details = "".join(f"<dt>{html.escape(name)}</dt><dd>{html.escape(value)}</dd>"
                      for name, value in facts if value)
    return _page(
        f"Report {report.accession}",
        "<main>\n<p><a href=\"/audit\">← Follow-up audit</a></p>\n"
        f"<h1>Report {html.escape(report.accession)}</h1>\n"
        f"<dl id=\"report-details\" class=\"details\">{details}</dl>\n"
        "<h2>Report text</h2>\n"
        f"<pre id=\"report-text\" class=\"report-text\">{body}</pre>\n</main>")
