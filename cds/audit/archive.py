"""The opt-in input archive: what each evaluation read, encrypted at rest, for impact replay.

A compliance team asks "what would this new rule set have changed on last month's traffic?".
Answering needs the inputs, not only the decisions, so a site may turn on an archive of each KAP
evaluation's context and patient data. It holds patient data, so:

- it is off unless a key is configured (``KAP_CDS_ARCHIVE_KEY`` or ``KAP_CDS_ARCHIVE_KEY_FILE``);
- rows are encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) on the request
  thread, before they reach the spool or the database; the key lives in the environment or a
  file, never in the database (a row carries only a key fingerprint);
- several keys may be given (comma-separated, newest first): new rows use the first, older rows
  still open with the others, so a key can be rotated without losing the archive;
- rows older than the retention window are deleted by ``kap-cds archive purge``;
- nothing in the web layer reads it: it is reached through the CLI alone (``kap-cds replay``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Engine, delete, func, select

from cds.audit.schema import input_archive


class ArchiveKeyError(ValueError):
    """The configured archive key cannot be used (the message names the setting, never the key)."""


@dataclass(frozen=True)
class ArchivedInputs:
    """What an evaluation read: enough to evaluate it again with another rule set."""

    service_id: str
    context: dict[str, Any]
    resources: dict[str, list[dict[str, Any]]]
    outcomes: dict[str, str]
    now: datetime

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "service_id": self.service_id,
                "context": self.context,
                "resources": self.resources,
                "outcomes": self.outcomes,
                "now": self.now.isoformat(),
            },
            default=str,
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> ArchivedInputs:
        data = orjson.loads(raw)
        return cls(
            service_id=data["service_id"],
            context=data["context"],
            resources=data["resources"],
            outcomes=data["outcomes"],
            now=datetime.fromisoformat(data["now"]),
        )


class ArchiveCipher:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ArchiveKeyError("no archive key given")
        try:
            fernets = [Fernet(key) for key in keys]
        except (ValueError, TypeError):
            raise ArchiveKeyError(
                "an archive key is not a Fernet key (32 url-safe base64-encoded bytes; make one "
                "with `kap-cds archive keygen`)"
            ) from None
        self._cipher = MultiFernet(fernets)
        self.key_id = key_fingerprint(keys[0])

    @classmethod
    def from_settings(cls, key: str | None, key_file: Path | None) -> ArchiveCipher | None:
        """The configured cipher, or None when the archive is off (no key configured)."""
        if key and key_file:
            raise ArchiveKeyError("set KAP_CDS_ARCHIVE_KEY or KAP_CDS_ARCHIVE_KEY_FILE, not both")
        if key_file is not None:
            try:
                key = key_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ArchiveKeyError(
                    f"KAP_CDS_ARCHIVE_KEY_FILE {key_file} cannot be read ({exc.strerror})"
                ) from None
        if not key:
            return None
        return cls([k.strip().encode() for k in key.replace("\n", ",").split(",") if k.strip()])

    def seal(self, inputs: ArchivedInputs) -> str:
        return self._cipher.encrypt(inputs.to_bytes()).decode("ascii")

    def open(self, token: str) -> ArchivedInputs:
        try:
            return ArchivedInputs.from_bytes(self._cipher.decrypt(token.encode("ascii")))
        except InvalidToken:
            raise ArchiveKeyError(
                "an archived row does not open with the configured keys (rotated away?)"
            ) from None


def key_fingerprint(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")


@dataclass(frozen=True)
class ArchivedEvaluation:
    evaluation_id: str
    recorded_at: datetime
    inputs: ArchivedInputs


def read_archive(
    engine: Engine, cipher: ArchiveCipher, since: datetime | None = None
) -> Iterator[ArchivedEvaluation]:
    """Archived evaluations, oldest first, decrypted one at a time (never all in memory)."""
    stmt = select(input_archive.c.evaluation_id, input_archive.c.recorded_at, input_archive.c.token)
    if since is not None:
        stmt = stmt.where(input_archive.c.recorded_at >= since)
    with engine.connect() as conn:
        rows = conn.execution_options(stream_results=True).execute(
            stmt.order_by(input_archive.c.recorded_at, input_archive.c.evaluation_id)
        )
        for evaluation_id, recorded_at, token in rows:
            yield ArchivedEvaluation(evaluation_id, recorded_at, cipher.open(token))


def count_archive(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(input_archive)).scalar_one())


def purge_archive(engine: Engine, retention_days: int, now: datetime | None = None) -> int:
    """Delete archived inputs older than the retention window; returns how many rows went."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    with engine.begin() as conn:
        result = conn.execute(delete(input_archive).where(input_archive.c.recorded_at < cutoff))
    return int(result.rowcount or 0)
