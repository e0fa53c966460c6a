"""The floor: the least a CDS Hooks service on this stack can do per request.

A minimal FastAPI app served by uvicorn exactly as ``kap-cds serve`` serves its app (same
workers, access log, no server header): it reads the whole body, parses it with orjson and
answers one fixed card. kap-cds figures are reported as a ratio to this floor at the same size.

    python -m bench.floor --port 8099 --workers 2
"""

from __future__ import annotations

import argparse

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

CARD = orjson.dumps(
    {
        "cards": [
            {
                "uuid": "00000000-0000-4000-8000-000000000000",
                "summary": "Floor card",
                "indicator": "info",
                "detail": "The floor app answers this card to every call.",
                "source": {
                    "label": "KAP Safety Rules",
                    "topic": {"system": "urn:kap-cds:rule", "code": "FLOOR", "display": "Floor"},
                },
            }
        ]
    }
)

app = FastAPI(title="kap-cds floor")


@app.post("/cds-services/{service_id}")
async def call_service(service_id: str, request: Request) -> Response:
    body = orjson.loads(await request.body())
    if not isinstance(body, dict):
        return Response(
            b'{"error":"not an object"}', status_code=400, media_type="application/json"
        )
    return Response(CARD, media_type="application/json")


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    uvicorn.run(
        "bench.floor:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
