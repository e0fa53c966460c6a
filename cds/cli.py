"""The ``kap-cds`` command line (docs/contracts.md "Command line").

kap-cds serve [--host 127.0.0.1] [--port 8080] [--workers N]
kap-cds evaluate REQUEST.json
kap-cds evaluate --service ID --bundle PATIENT_BUNDLE.json [--order ORDER.json] [--at ISO_TIME]
kap-cds rules lint | test | catalog | facts | report --format html|md -o FILE | diff OLD NEW
kap-cds audit export [--since ISO_TIME] [--format jsonl|csv] | audit summary
kap-cds replay --rules DIR [--since ISO_TIME] [--source auto|archive|fixtures]
kap-cds archive purge [--older-than DAYS] | archive keygen
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cds.config import EXAMPLES_DIR, REPO_ROOT, Settings
from cds.errors import CdsError, RuleLoadError


def _settings() -> Settings:
    """Settings from the environment; a wrong value is one line naming it, not a traceback."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"KAP_CDS_{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise SystemExit(f"invalid settings: {problems}") from None


# ---- serve / evaluate -------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from cds.api.server import run_server

    run_server(_settings(), args.host, args.port, args.workers)
    return 0


def _request_from_bundle(args: argparse.Namespace) -> dict[str, Any]:
    from cds.ruleset.cases import CASE_TIME, Case, build_request

    bundle = json.loads(Path(args.bundle).read_text(encoding="utf-8"))
    resources = [e["resource"] for e in bundle.get("entry", []) if "resource" in e]
    order = json.loads(Path(args.order).read_text(encoding="utf-8")) if args.order else None
    appointment = (
        json.loads(Path(args.appointment).read_text(encoding="utf-8")) if args.appointment else None
    )
    case = Case(
        description="command line",
        service=args.service,
        patient=None,
        now=args.at or CASE_TIME,
        order=order,
        appointment=appointment,
        encounter_id=args.encounter,
        resources=resources,
    )
    return build_request(case, EXAMPLES_DIR, hook_instance="cli")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cds.evaluator import build_evaluator
    from cds.fhir.gather import gather_sync
    from cds.hooks.cards import CardsResponse
    from cds.hooks.models import parse_call
    from cds.hooks.registry import service, service_for_hook

    settings = _settings()
    if args.request:
        raw = json.loads(Path(args.request).read_text(encoding="utf-8"))
        descriptor = (
            service(args.service) if args.service else service_for_hook(raw.get("hook", ""))
        )
    elif args.service and args.bundle:
        raw = _request_from_bundle(args)
        descriptor = service(args.service)
    else:
        raise CdsError("give REQUEST.json, or --service and --bundle")
    call = parse_call(raw, descriptor.hook)
    evaluator = build_evaluator(settings)
    data = gather_sync(call.request, settings, service=descriptor)
    now = datetime.fromisoformat(args.at) if args.at else datetime.now(UTC)
    if args.facts:
        facts = evaluator.facts_for(descriptor.id, dict(call.context), data, now)
        print(json.dumps(facts, indent=2, ensure_ascii=False))
        return 0
    evaluation = evaluator.evaluate(
        service_id=descriptor.id, context=dict(call.context), data=data, now=now
    )
    print(json.dumps(CardsResponse(cards=evaluation.cards).to_json(), indent=2, ensure_ascii=False))
    return 0


# ---- rules ------------------------------------------------------------------------------


def _ruleset(settings: Settings) -> Any:
    from cds.ruleset.loader import load_ruleset

    return load_ruleset(settings.rules_dir, settings.policy_file)


def cmd_rules_lint(args: argparse.Namespace) -> int:
    from cds.evaluator import RuleEvaluator
    from cds.ruleset.catalog import catalog_is_current, read_catalog, version_problems

    settings = _settings()
    ruleset = _ruleset(settings)
    RuleEvaluator(ruleset, settings.facility_zone)  # compiles every rule into the engine
    problems = version_problems(ruleset, read_catalog(ruleset.directory))
    if not catalog_is_current(ruleset) and not settings.policy_file:
        problems.append(f"{ruleset.directory / 'CATALOG.json'} is stale: run `make catalog`")
    for problem in problems:
        print(problem, file=sys.stderr)
    drafts = [r.id for r in (s.rule for s in ruleset.rules.values()) if r.status != "active"]
    print(
        f"{len(ruleset.rules)} rules ({len(ruleset.active_rules)} active"
        f"{', draft/retired: ' + ', '.join(drafts) if drafts else ''}), "
        f"{len(ruleset.valuesets)} value sets, digest {ruleset.digest}"
    )
    return 1 if problems else 0


def cmd_rules_catalog(args: argparse.Namespace) -> int:
    from cds.ruleset.catalog import CATALOG_FILE, read_catalog, render_catalog, version_problems

    ruleset = _ruleset(Settings(policy_file=None))
    problems = version_problems(ruleset, read_catalog(ruleset.directory))
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    (ruleset.directory / CATALOG_FILE).write_text(render_catalog(ruleset), encoding="utf-8")
    print(f"wrote {ruleset.directory / CATALOG_FILE} ({len(ruleset.rules)} rules)")
    return 0


def cmd_rules_test(args: argparse.Namespace) -> int:
    from cds.evaluator import RuleEvaluator
    from cds.ruleset.cases import load_cases, run_case

    settings = _settings()
    evaluator = RuleEvaluator(_ruleset(settings), settings.facility_zone)
    cases = [c for c in load_cases(EXAMPLES_DIR) if not args.rule or c.rule_id in args.rule]
    failed = 0
    for loaded in cases:
        outcome = run_case(loaded, evaluator, settings, EXAMPLES_DIR)
        if not outcome.passed:
            failed += 1
            print(f"FAIL {loaded.rule_id} {loaded.name}: {'; '.join(outcome.problems)}")
        elif args.verbose:
            print(f"ok   {loaded.rule_id} {loaded.name}")
    print(f"{len(cases) - failed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_rules_facts(args: argparse.Namespace) -> int:
    from cds.facts.schema import FACT_TYPES

    for fact in FACT_TYPES.values():
        print(f"{fact.name}: {fact.doc}")
        for name, spec in fact.fields.items():
            kind = f"enum({', '.join(spec.values)})" if spec.kind == "enum" else spec.kind
            print(f"    {name} [{kind}]: {spec.doc}")
    return 0


def cmd_rules_report(args: argparse.Namespace) -> int:
    from cds.report.cli import report_command

    return report_command(_settings(), args.format, Path(args.output), args.since)


def cmd_rules_diff(args: argparse.Namespace) -> int:
    from cds.report.cli import diff_command

    return diff_command(args.old, args.new, sys.stdout)


# ---- audit ------------------------------------------------------------------------------


def cmd_audit_export(args: argparse.Namespace) -> int:
    from cds.audit.cli import export_command

    return export_command(_settings(), args.since, args.format, sys.stdout)


def cmd_audit_summary(args: argparse.Namespace) -> int:
    from cds.audit.cli import summary_command

    return summary_command(_settings(), args.since, args.until, args.format, sys.stdout)


# ---- replay and the input archive ---------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    from cds.replay.cli import ReplayOptions, replay_command

    third_party = args.third_party or _default_third_party_dir()
    options = ReplayOptions(
        Path(args.rules),
        Path(args.policy) if args.policy else None,
        args.since,
        args.source,
        args.format,
        Path(args.examples) if args.examples else EXAMPLES_DIR,
        Path(third_party) if third_party else None,
    )
    return replay_command(_settings(), options, sys.stdout)


def _default_third_party_dir() -> Path | None:
    """The shared real-world bundles beside a repository checkout, when they are there."""
    candidate = REPO_ROOT.parent / "shared" / "fhir" / "third-party"
    return candidate if candidate.is_dir() else None


def cmd_archive_purge(args: argparse.Namespace) -> int:
    from cds.replay.cli import purge_command

    return purge_command(_settings(), args.older_than, sys.stdout)


def cmd_archive_keygen(_args: argparse.Namespace) -> int:
    from cds.replay.cli import keygen_command

    return keygen_command(sys.stdout)


# ---- parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kap-cds", description=__doc__.split("\n")[0] if __doc__ else None
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the CDS Hooks service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(func=cmd_serve)

    evaluate = commands.add_parser("evaluate", help="evaluate one request offline")
    evaluate.add_argument("request", nargs="?", help="a full CDS Hooks request (JSON)")
    evaluate.add_argument("--service", help="service id, e.g. kap-order-sign")
    evaluate.add_argument("--bundle", help="the patient's data as a FHIR Bundle")
    evaluate.add_argument("--order", help="the draft MedicationRequest (order hooks)")
    evaluate.add_argument("--appointment", help="the Appointment being booked (appointment-book)")
    evaluate.add_argument("--encounter", help="the Encounter id (encounter hooks)")
    evaluate.add_argument("--at", help="evaluation time (ISO 8601); default now")
    evaluate.add_argument("--facts", action="store_true", help="print the facts, not the cards")
    evaluate.set_defaults(func=cmd_evaluate)

    _rules_parser(commands)
    _audit_parser(commands)
    _replay_parser(commands)
    return parser


def _rules_parser(commands: Any) -> None:
    rules = commands.add_parser("rules", help="lint, test, report on the rule set")
    sub = rules.add_subparsers(dest="rules_command", required=True)
    sub.add_parser(
        "lint", help="validate every rule, value set and policy; check versions"
    ).set_defaults(func=cmd_rules_lint)
    test = sub.add_parser("test", help="run every rule's fixtures")
    test.add_argument("rule", nargs="*", help="only these rule ids")
    test.add_argument("-v", "--verbose", action="store_true")
    test.set_defaults(func=cmd_rules_test)
    sub.add_parser("catalog", help="regenerate rules/CATALOG.json").set_defaults(
        func=cmd_rules_catalog
    )
    sub.add_parser("facts", help="list the fact types rules can use").set_defaults(
        func=cmd_rules_facts
    )
    report = sub.add_parser("report", help="the compliance report of the loaded rule set")
    report.add_argument("--format", choices=["html", "md"], default="html")
    report.add_argument("-o", "--output", required=True)
    report.add_argument("--since", help="audit period start for behaviour figures (ISO 8601)")
    report.set_defaults(func=cmd_rules_report)
    diff = sub.add_parser("diff", help="what changed between two rule sets (dirs or git revisions)")
    diff.add_argument("old")
    diff.add_argument("new")
    diff.set_defaults(func=cmd_rules_diff)


def _audit_parser(commands: Any) -> None:
    audit = commands.add_parser("audit", help="the audit trail")
    sub = audit.add_subparsers(dest="audit_command", required=True)
    export = sub.add_parser("export", help="every decision and feedback item")
    export.add_argument("--since")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.set_defaults(func=cmd_audit_export)
    summary = sub.add_parser("summary", help="per-rule fired/accepted/overridden counts")
    summary.add_argument("--since")
    summary.add_argument("--until")
    summary.add_argument("--format", choices=["text", "json"], default="text")
    summary.set_defaults(func=cmd_audit_summary)


def _replay_parser(commands: Any) -> None:
    replay = commands.add_parser(
        "replay", help="what a candidate rule set would change on past requests"
    )
    replay.add_argument("--rules", required=True, help="the candidate rule set directory")
    replay.add_argument("--policy", help="site policy file for the candidate (default: none)")
    replay.add_argument("--since", help="archived requests from this time on (ISO 8601)")
    replay.add_argument(
        "--source",
        choices=["auto", "archive", "fixtures"],
        default="auto",
        help="auto: the input archive when it has rows, else fixtures and third-party bundles",
    )
    replay.add_argument("--examples", help="fhir_examples directory (fixtures source)")
    replay.add_argument("--third-party", help="directory of real FHIR bundles (fixtures source)")
    replay.add_argument("--format", choices=["text", "json"], default="text")
    replay.set_defaults(func=cmd_replay)

    archive = commands.add_parser("archive", help="the encrypted input archive")
    sub = archive.add_subparsers(dest="archive_command", required=True)
    purge = sub.add_parser("purge", help="delete archived inputs past the retention window")
    purge.add_argument(
        "--older-than", type=int, help="days (default KAP_CDS_ARCHIVE_RETENTION_DAYS)"
    )
    purge.set_defaults(func=cmd_archive_purge)
    sub.add_parser("keygen", help="print a new archive key").set_defaults(func=cmd_archive_keygen)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except RuleLoadError as exc:
        print(f"rule set rejected: {exc.detail}", file=sys.stderr)
        return 2
    except CdsError as exc:
        print(f"error {exc.code}: {exc.detail}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
