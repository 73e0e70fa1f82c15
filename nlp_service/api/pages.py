"""Serving the browser pages and their scripts and stylesheets from ``api/static``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fastapi import HTTPException
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent / "static"
# Everything the pages use is served from here: no inline script, nothing from elsewhere.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# Scripts and stylesheets every page loads before its own.
SHARED_ASSETS = {"common.js": "text/javascript", "common.css": "text/css"}


def static_file(name: str, media_type: str) -> FileResponse:
    """The file ``name`` of the static folder, as ``media_type`` in UTF-8."""
    # no-cache: a browser must ask again (and be sent to /login once signed out).
    return FileResponse(STATIC / name, media_type=f"{media_type}; charset=utf-8",
                        headers={"Cache-Control": "no-cache", **PAGE_HEADERS})


def page(name: str) -> FileResponse:
    """The HTML page ``name``."""
    return static_file(name, "text/html")


def asset(name: str, assets: Mapping[str, str]) -> FileResponse:
    """``name`` if it is one of ``assets`` (name -> media type), else 404: no path from the
    URL is opened."""
    if name not in assets:
        raise HTTPException(status_code=404, detail=f"no asset {name!r}")
    return static_file(name, assets[name])
