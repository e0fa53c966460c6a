"""``GET /``: a landing page for the person who opens the service's address in a browser.

Links only (discovery, API docs, governance, health): no patient data, no settings, so it is as
open as ``/docs``. The page is a constant: no script, no inline style, and a CSP that allows
nothing but the page itself.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from cds import __version__

router = APIRouter(tags=["health"])

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_LINKS = (
    (
        "/cds-services",
        "CDS Hooks discovery",
        "the services, their hooks and prefetch templates "
        "(an EHR's CDS Hooks client reads this; it needs the EHR's JWT when authentication is on)",
    ),
    ("/docs", "API documentation", "every endpoint, request and answer (OpenAPI)"),
    (
        "/governance",
        "Rule governance",
        "the loaded rule set: each rule's version, owner, status "
        "and how often it fired, was accepted or overridden (no patient data)",
    ),
    ("/readyz", "Readiness", "rules loaded, audit store health, authentication mode"),
)


def _page() -> str:
    items = "\n".join(
        f'<li><a href="{href}">{escape(title)}</a>: {escape(text)}</li>'
        for href, title, text in _LINKS
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>kap-cds</title></head>
<body>
<h1>kap-cds {escape(__version__)}</h1>
<p>A CDS Hooks 2.0 service with safety checks for ketamine-assisted psychotherapy (KAP),
esketamine included. EHRs call it when a clinician selects or signs a ketamine order, books a
dosing appointment, starts or ends a dosing encounter, or opens the chart.</p>
<ul>
{items}
</ul>
</body>
</html>
"""


PAGE = _page()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def home() -> HTMLResponse:
    return HTMLResponse(PAGE, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})
