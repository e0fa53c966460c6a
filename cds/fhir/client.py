"""Reading prefetch data the EHR did not send from its FHIR server (CDS Hooks 2.0 "FHIR Resource
Access"), bounded in time, pages and bytes.

The access token goes in the Authorization header and nowhere else: it is never logged, never part
of an error, and never sent to a URL outside ``fhirServer`` (a ``next`` link pointing elsewhere
ends the read).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import orjson

from cds.config import Settings
from cds.fhir.bundles import is_operation_outcome, next_link

Json = dict[str, Any]


class FetchFailed(Exception):
    """A read that gave no usable data. The message is safe to log: no token, no patient data."""


@dataclass
class FetchResult:
    """What one prefetch query returned: resources or Bundles, and whether every page was read."""

    values: list[Json] = field(default_factory=list)
    complete: bool = True


def quiet_httpx_logging() -> None:
    """httpx logs every request URL at INFO, and our FHIR URLs carry patient ids."""
    logging.getLogger("httpx").setLevel(logging.WARNING)


def new_client(settings: Settings) -> httpx.AsyncClient:
    # Redirects are not followed: a redirect could carry the bearer token to another host.
    return httpx.AsyncClient(
        timeout=settings.fhir_timeout_seconds,
        follow_redirects=False,
        headers={"Accept": "application/fhir+json"},
    )


class FhirReader:
    """Reads queries relative to one FHIR base URL with one (optional) bearer token."""

    def __init__(
        self, client: httpx.AsyncClient, base_url: str, token: str | None, settings: Settings
    ) -> None:
        quiet_httpx_logging()
        self._client = client
        self._base = base_url.rstrip("/") + "/"
        self._headers = {"Accept": "application/fhir+json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._settings = settings

    async def read(self, query: str) -> FetchResult:
        """Run a read or search, following ``next`` links up to ``fhir_max_pages`` pages."""
        result = FetchResult()
        budget = self._settings.fhir_max_response_bytes
        url = urljoin(self._base, query)
        # A read (no "?") of a resource that does not exist means "no data", like a null prefetch.
        allow_absent = "?" not in query
        for _ in range(self._settings.fhir_max_pages):
            page, size = await self._get(url, budget, allow_absent=allow_absent)
            if page is None:
                return result
            budget -= size
            result.values.append(page)
            next_url = self._next_url(page)
            if next_url is None:
                return result
            url, allow_absent = next_url, False
        result.complete = False  # more pages than we may read: the data is incomplete
        return result

    def _next_url(self, page: Json) -> str | None:
        url = next_link(page)
        if url is None:
            return None
        absolute = urljoin(self._base, url)
        if not _within(absolute, self._base):
            raise FetchFailed("next link points outside fhirServer")
        return absolute

    async def _get(self, url: str, budget: int, *, allow_absent: bool) -> tuple[Json | None, int]:
        timeout = self._settings.fhir_timeout_seconds
        async with self._client.stream("GET", url, headers=self._headers, timeout=timeout) as resp:
            if allow_absent and resp.status_code in (404, 410):
                return None, 0
            if resp.status_code != 200:
                raise FetchFailed(f"FHIR server answered HTTP {resp.status_code}")
            body = await _read_capped(resp, budget)
        return _parse_resource(body), len(body)


def _within(url: str, base: str) -> bool:
    """Same scheme, host and port as ``base``, and a path under it (HAPI's next links are
    ``{base}?_getpages=...``)."""
    target, root = urlsplit(url), urlsplit(base)
    same_origin = (target.scheme, target.netloc) == (root.scheme, root.netloc)
    return same_origin and (target.path + "/").startswith(root.path)


async def _read_capped(response: httpx.Response, budget: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > budget:
        raise FetchFailed("FHIR response larger than fhir_max_response_bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > budget:
            raise FetchFailed("FHIR response larger than fhir_max_response_bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_resource(body: bytes) -> Json:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise FetchFailed("FHIR server answered with invalid JSON") from None
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        raise FetchFailed("FHIR server answered with something that is not a FHIR resource")
    if is_operation_outcome(value):
        raise FetchFailed("FHIR server answered with an OperationOutcome")
    return value
