"""``kap-cds replay`` and ``kap-cds archive purge|keygen`` (wired into ``cds.cli``)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from sqlalchemy.exc import SQLAlchemyError

from cds.audit import db
from cds.audit.archive import ArchiveCipher, ArchiveKeyError, count_archive, new_key, purge_archive
from cds.audit.cli import UsageError, parse_instant
from cds.config import Settings
from cds.evaluator import RuleEvaluator
from cds.replay.compare import replay
from cds.replay.render import render_json, render_text
from cds.replay.sources import ReplayInput, archived_inputs, fixture_inputs, third_party_inputs
from cds.ruleset.loader import load_ruleset

EXIT_OK, EXIT_STORE, EXIT_USAGE = 0, 1, 2
ARCHIVE_LABEL = "the input archive"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayOptions:
    candidate_rules: Path
    candidate_policy: Path | None
    since: str | None
    source: str  # auto | archive | fixtures
    fmt: str  # text | json
    examples_dir: Path
    third_party_dir: Path | None


def replay_command(settings: Settings, options: ReplayOptions, out: TextIO) -> int:
    try:
        baseline = RuleEvaluator(
            load_ruleset(settings.rules_dir, settings.policy_file), settings.facility_zone
        )
        candidate = RuleEvaluator(
            load_ruleset(options.candidate_rules, options.candidate_policy),
            settings.facility_zone,
        )
        label, inputs = _inputs(settings, options)
        report = replay(inputs, baseline, candidate, label)
        if label == ARCHIVE_LABEL:
            # Reading archived patient data is itself an event a privacy officer asks about.
            log.warning(
                "input archive read by kap-cds replay: %d evaluations, candidate rule set %s",
                report.inputs,
                report.candidate[:12],
            )
    except (UsageError, ArchiveKeyError) as exc:
        sys.stderr.write(f"kap-cds replay: {exc}\n")
        return EXIT_USAGE
    except SQLAlchemyError as exc:
        sys.stderr.write(f"kap-cds replay: audit store unavailable ({type(exc).__name__})\n")
        return EXIT_STORE
    out.write(render_json(report) if options.fmt == "json" else render_text(report))
    return EXIT_OK


def _inputs(settings: Settings, options: ReplayOptions) -> tuple[str, Iterator[ReplayInput]]:
    since = parse_instant(options.since, "--since")
    if options.source in ("auto", "archive"):
        cipher = ArchiveCipher.from_settings(settings.archive_key, settings.archive_key_file)
        if cipher is None and options.source == "archive":
            raise UsageError("no input archive: set KAP_CDS_ARCHIVE_KEY (or _KEY_FILE)")
        if cipher is not None:
            engine = db.create_audit_engine(settings.database_url)
            db.upgrade(engine)
            if options.source == "archive" or count_archive(engine) > 0:
                return ARCHIVE_LABEL, archived_inputs(engine, cipher, since)
    if since is not None:
        raise UsageError("--since needs the input archive (fixtures have no dates)")
    return _fixture_label(options), _fixtures_and_bundles(settings, options)


def _fixture_label(options: ReplayOptions) -> str:
    if options.third_party_dir and options.third_party_dir.is_dir():
        return "rule fixtures and third-party FHIR bundles"
    return "rule fixtures"


def _fixtures_and_bundles(settings: Settings, options: ReplayOptions) -> Iterator[ReplayInput]:
    yield from fixture_inputs(options.examples_dir, settings)
    if options.third_party_dir is not None:
        yield from third_party_inputs(options.third_party_dir, options.examples_dir, settings)


def purge_command(settings: Settings, older_than_days: int | None, out: TextIO) -> int:
    days = older_than_days or settings.archive_retention_days
    try:
        engine = db.create_audit_engine(settings.database_url)
        db.upgrade(engine)
        removed = purge_archive(engine, days)
    except SQLAlchemyError as exc:
        sys.stderr.write(f"kap-cds archive: audit store unavailable ({type(exc).__name__})\n")
        return EXIT_STORE
    out.write(f"removed {removed} archived input(s) older than {days} days\n")
    return EXIT_OK


def keygen_command(out: TextIO) -> int:
    out.write(new_key() + "\n")
    return EXIT_OK
