"""Page-test fixtures and helpers: a browser page on the live service that fails the test on
script errors or any request off the service, and the checks every page shares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize

from tests.conftest import LiveService

MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}
# Every page's prefix serves these too.
SHARED_ASSETS = ["common.js", "common.css"]


@pytest.fixture
def viewport() -> ViewportSize:
    """The page's window size."""
    return {"width": 1280, "height": 1000}


@pytest.fixture
def allowed_errors() -> list[str]:
    """Console messages a test expects (it cut a request off on purpose)."""
    return []


@pytest.fixture
def page(browser: Browser, live_service: LiveService, viewport: ViewportSize,
         allowed_errors: list[str]) -> Iterator[Page]:
    """A page that fails the test on script errors or any request off the service."""
    context = browser.new_context(viewport=viewport, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    foreign: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda request: None if request.url.startswith(
        (live_service.base_url, "data:")) else foreign.append(request.url))
    yield page
    context.close()
    unexpected = [e for e in errors if not any(a in e for a in allowed_errors)]
    assert not unexpected, f"browser errors: {unexpected}"
    assert not foreign, f"requests off the service: {foreign}"


def assert_serves(base: str, page: str, prefix: str, assets: list[str],
                  missing: list[str]) -> None:
    """The page at ``page`` comes with the Content-Security-Policy, and ``prefix``/NAME answers
    each of ``assets`` and the shared ones (a script or stylesheet) and 404 for ``missing``."""
    response = httpx.get(f"{base}{page}")
    assert response.status_code == 200
    assert "default-src 'self'" in response.headers["content-security-policy"]
    for name in [*assets, *SHARED_ASSETS]:
        kind = MEDIA_TYPES[Path(name).suffix]
        asset = httpx.get(f"{base}{prefix}/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind), name
    for name in missing:
        assert httpx.get(f"{base}{prefix}/{name}").status_code == 404, name


def sign_in(page: Page, url: str, param: str, name: str) -> None:
    """Open ``url`` without a name: the page asks for one (form ``#param-form``) and opens an
    empty workspace under ``?param=name``."""
    page.goto(url)
    assert page.is_visible(f"#{param}-form") and page.is_hidden("#workspace")
    page.fill(f"#{param}-input", name)
    page.keyboard.press("Enter")
    page.wait_for_selector('#workspace[data-state="ready"]')
    assert f"{param}={name}" in page.url
    assert page.is_visible("#queue-empty")
