"""The closing-the-loop page: critical findings and their communication (compliance by
month, modality and radiologist, with the reports behind each figure) and turnaround charts,
a static page over the critical and turnaround APIs."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from nlp_service.api import pages

ASSETS = {**pages.SHARED_ASSETS, "loop.js": "text/javascript", "loop.css": "text/css"}

router = APIRouter(tags=["dashboard"], include_in_schema=False)


@router.get("/audit/loop", response_class=FileResponse)
def loop_page() -> FileResponse:
    return pages.page("loop.html")


@router.get("/audit/loop/static/{name}", response_class=FileResponse)
def loop_asset(name: str) -> FileResponse:
    return pages.asset(name, ASSETS)
