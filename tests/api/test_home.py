"""``GET /``: a landing page linking discovery, docs and governance; open even with JWT on."""

from __future__ import annotations

from html.parser import HTMLParser

from api_fakes import FakeAudit, FakeEvaluator
from fastapi.testclient import TestClient

from cds.app import create_app
from cds.config import Settings, TrustedIssuer


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hrefs += [value for name, value in attrs if tag == "a" and name == "href" and value]


def links(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.hrefs


def test_landing_page_links_discovery_docs_and_governance(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    found = links(response.text)
    assert {"/cds-services", "/docs", "/governance"} <= set(found)
    for href in found:  # every link leads somewhere real
        assert client.get(href).status_code == 200, href


def test_landing_page_is_open_when_jwt_is_required(settings: Settings) -> None:
    issuer = TrustedIssuer(iss="https://ehr.example.org", jwks={"keys": []})
    secured = settings.model_copy(update={"trusted_issuers": [issuer]})
    app = create_app(secured, evaluator=FakeEvaluator(), audit=FakeAudit())
    with TestClient(app) as client:
        assert client.get("/").status_code == 200
        assert client.get("/cds-services").status_code == 401  # the links themselves are not
