"""The ``kap-cds`` command line (docs/contracts.md "Command line").

kap-cds serve [--host 127.0.0.1] [--port 8080] [--workers N]
kap-cds evaluate REQUEST.json
kap-cds evaluate --service ID --bundle PATIENT_BUNDLE.json [--order ORDER.json] [--at ISO_TIME]
kap-cds rules lint | test | catalog | facts | report --format html|md -o FILE | diff OLD NEW
kap-cds audit export [--since ISO_TIME] [--format jsonl|csv] | audit summary
kap-cds replay --rules DIR [--since ISO_TIME] [--source auto|archive|fixtures]
kap-cds archive purge [--older-than DAYS] | archive keygen

Every error is one line on stderr naming the file, setting or id, with exit code 2 (1 when the
command ran and found problems: failing fixtures, a stale catalog, an unreachable store).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cds import __version__
from cds.config import EXAMPLES_DIR, REPO_ROOT, Settings
from cds.console import progress
from cds.console.errors import EXIT_FAILED, CliError, run_guarded
from cds.console.helptext import HelpFormatter, setting_help, settings_epilog
from cds.console.inputs import parse_time, read_json, read_resource
from cds.examples import examples_dir
from cds.startup import load_settings

RULE_SETTINGS = ["rules_dir", "policy_file", "facility_timezone", "state_dir"]
# What each hook needs beside the patient's data, and the option that gives it.
HOOK_CONTEXT = {
    "order-select": ("--order", "order", "the draft MedicationRequest"),
    "order-sign": ("--order", "order", "the draft MedicationRequest"),
    "appointment-book": ("--appointment", "appointment", "the Appointment being booked"),
    "encounter-start": ("--encounter", "encounter", "the id of the Encounter in the bundle"),
    "encounter-discharge": ("--encounter", "encounter", "the id of the Encounter in the bundle"),
}


def _settings() -> Settings:
    return load_settings()


def _write(text: str, output: str) -> None:
    """``-o -`` (and no ``-o``) is stdout."""
    if output == "-":
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"-o {output}: cannot write ({exc.strerror})") from None


# ---- serve / evaluate -------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from cds.api.preflight import preflight
    from cds.api.server import run_server

    settings = _settings()
    with progress.status("checking the rule set and the audit store"):
        preflight(settings)
    run_server(settings, args.host, args.port, args.workers)
    return 0


def _service(service_id: str) -> Any:
    from cds.hooks.registry import SERVICES, SERVICES_BY_ID

    if service_id not in SERVICES_BY_ID:
        known = ", ".join(s.id for s in SERVICES)
        raise CliError(f"--service {service_id!r}: unknown service (one of {known})")
    return SERVICES_BY_ID[service_id]


def _request_from_bundle(args: argparse.Namespace, hook: str, examples: Path) -> dict[str, Any]:
    from cds.ruleset.cases import CASE_TIME, Case, build_request

    needed = HOOK_CONTEXT.get(hook)
    if needed and getattr(args, needed[1]) is None:
        raise CliError(f"--service {args.service} ({hook}) needs {needed[0]}: {needed[2]}")
    bundle = read_resource(args.bundle, "--bundle", "Bundle")
    resources = [e["resource"] for e in bundle.get("entry", []) if "resource" in e]
    order = read_resource(args.order, "--order", "MedicationRequest") if args.order else None
    appointment = (
        read_resource(args.appointment, "--appointment", "Appointment")
        if args.appointment
        else None
    )
    if args.encounter and not any(
        r.get("resourceType") == "Encounter" and r.get("id") == args.encounter for r in resources
    ):
        raise CliError(
            f"--encounter {args.encounter!r}: no Encounter with this id in {args.bundle}"
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
    return build_request(case, examples, hook_instance="cli")


def _call(args: argparse.Namespace, settings: Settings) -> tuple[Any, Any]:
    """The parsed CDS Hooks call and its service, from REQUEST.json or from --bundle."""
    from cds.errors import RequestInvalid
    from cds.hooks.models import parse_call
    from cds.hooks.registry import SERVICES

    if args.request and args.bundle:
        raise CliError("give REQUEST.json or --bundle, not both")
    if args.request:
        raw = read_json(args.request, "REQUEST.json")
        hook = raw.get("hook") if isinstance(raw, dict) else None
        if args.service:
            descriptor = _service(args.service)
        else:
            descriptor = next((s for s in SERVICES if s.hook == hook), None)
            if descriptor is None:
                hooks = ", ".join(s.hook for s in SERVICES)
                raise CliError(f"{args.request}: hook {hook!r} is not served (one of {hooks})")
        source = args.request
    elif args.service and args.bundle:
        descriptor = _service(args.service)
        raw = _request_from_bundle(args, descriptor.hook, examples_dir(settings))
        source = args.bundle
    else:
        raise CliError("give REQUEST.json, or --service ID and --bundle PATIENT_BUNDLE.json")
    try:
        return parse_call(raw, descriptor.hook), descriptor
    except RequestInvalid as exc:
        raise CliError(f"{source}: not a valid {descriptor.hook} request: {exc.detail}") from None


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cds.evaluator import build_evaluator
    from cds.fhir.gather import gather_sync
    from cds.hooks.cards import CardsResponse

    settings = _settings()
    at = parse_time(args.at, "--at")
    call, descriptor = _call(args, settings)
    with progress.status("loading the rule set"):
        evaluator = build_evaluator(settings)
    data = gather_sync(call.request, settings, service=descriptor)
    now = at or datetime.now(UTC)
    if args.facts:
        facts = evaluator.facts_for(descriptor.id, dict(call.context), data, now)
        print(json.dumps(facts, indent=2, ensure_ascii=False))
        return 0
    evaluation = evaluator.evaluate(
        service_id=descriptor.id, context=dict(call.context), data=data, now=now
    )
    body = CardsResponse(cards=evaluation.cards).to_json()
    if args.format == "json":
        print(json.dumps(body, indent=2, ensure_ascii=False))
    else:
        from cds.console.cards import render_cards

        sys.stdout.write(render_cards(body["cards"], kap=evaluation.kap, service_id=descriptor.id))
    return 0


# ---- rules ------------------------------------------------------------------------------


def _ruleset(settings: Settings) -> Any:
    from cds.ruleset.loader import load_ruleset

    with progress.status(f"loading the rule set from {settings.rules_dir}"):
        return load_ruleset(settings.rules_dir, settings.policy_file, settings.valueset_overlay)


def cmd_rules_lint(args: argparse.Namespace) -> int:
    from cds.evaluator import RuleEvaluator
    from cds.ruleset.catalog import catalog_is_current, read_catalog, version_problems

    settings = _settings()
    ruleset = _ruleset(settings)
    with progress.status("compiling every rule"):
        RuleEvaluator(ruleset, settings.facility_zone)
    problems = version_problems(ruleset, read_catalog(ruleset.directory))
    site_changes = settings.policy_file or settings.valueset_overlay
    if not catalog_is_current(ruleset) and not site_changes:
        problems.append(f"{ruleset.directory / 'CATALOG.json'} is stale: run `make catalog`")
    for problem in problems:
        print(problem, file=sys.stderr)
    _print_local_only(ruleset)
    drafts = [r.id for r in (s.rule for s in ruleset.rules.values()) if r.status != "active"]
    print(
        f"{len(ruleset.rules)} rules ({len(ruleset.active_rules)} active"
        f"{', draft/retired: ' + ', '.join(drafts) if drafts else ''}), "
        f"{len(ruleset.valuesets)} value sets, digest {ruleset.digest}"
    )
    return EXIT_FAILED if problems else 0


def _print_local_only(ruleset: Any) -> None:
    """Rules an EHR can only quiet by recording a local code: a site maps its own codes for
    them in its value-set overlay (KAP_CDS_VALUESET_OVERLAY)."""
    from cds.ruleset.local_only import local_only_needs

    listed = [
        (rule.id, needs)
        for rule in ruleset.active_rules
        if (needs := local_only_needs(rule, ruleset.valueset_files))
    ]
    if listed:
        print("rules that only a local code can satisfy (map site codes in the overlay):")
    for rule_id, needs in listed:
        print(f"  {rule_id}: {'; '.join(needs)}")


def cmd_rules_catalog(args: argparse.Namespace) -> int:
    from cds.ruleset.catalog import CATALOG_FILE, read_catalog, render_catalog, version_problems

    ruleset = _ruleset(load_settings(policy_file=None))
    problems = version_problems(ruleset, read_catalog(ruleset.directory))
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return EXIT_FAILED
    (ruleset.directory / CATALOG_FILE).write_text(render_catalog(ruleset), encoding="utf-8")
    print(f"wrote {ruleset.directory / CATALOG_FILE} ({len(ruleset.rules)} rules)")
    return 0


def cmd_rules_test(args: argparse.Namespace) -> int:
    from cds.evaluator import RuleEvaluator
    from cds.ruleset.cases import load_cases, run_case

    settings = _settings()
    ruleset = _ruleset(settings)
    unknown = [rule_id for rule_id in args.rule if rule_id not in ruleset.rules]
    if unknown:
        raise CliError(f"unknown rule id {', '.join(unknown)} (not in {ruleset.directory})")
    examples = examples_dir(settings)
    cases = [c for c in load_cases(examples) if not args.rule or c.rule_id in args.rule]
    if not cases:
        where = examples / "cases"
        raise CliError(f"no fixtures for {', '.join(args.rule) or 'any rule'} in {where}")
    with progress.status("compiling every rule"):
        evaluator = RuleEvaluator(ruleset, settings.facility_zone)
    failed = 0
    for loaded in progress.track(cases, len(cases), "running fixtures"):
        outcome = run_case(loaded, evaluator, settings, examples)
        if not outcome.passed:
            failed += 1
            print(f"FAIL {loaded.rule_id} {loaded.name}: {'; '.join(outcome.problems)}")
        elif args.verbose:
            print(f"ok   {loaded.rule_id} {loaded.name}")
    print(f"{len(cases) - failed} passed, {failed} failed")
    return EXIT_FAILED if failed else 0


def cmd_rules_facts(args: argparse.Namespace) -> int:
    from cds.facts.schema import FACT_TYPES

    for fact in FACT_TYPES.values():
        print(f"{fact.name}: {fact.doc}")
        for name, spec in fact.fields.items():
            kind = f"enum({', '.join(spec.values)})" if spec.kind == "enum" else spec.kind
            print(f"    {name} [{kind}]: {spec.doc}")
    return 0


def cmd_rules_report(args: argparse.Namespace) -> int:
    from cds.report.cli import report_text

    settings = _settings()
    with progress.status("running every rule's fixtures for the report"):
        text, summary = report_text(settings, args.format, args.since, examples_dir(settings))
    _write(text, args.output)
    if args.output != "-":
        print(f"wrote {args.output} ({summary})")
    return 0


def cmd_rules_diff(args: argparse.Namespace) -> int:
    from cds.report.cli import diff_command

    return diff_command(args.old, args.new, sys.stdout)


# ---- audit ------------------------------------------------------------------------------


def cmd_audit_export(args: argparse.Namespace) -> int:
    from cds.audit.cli import export_command

    return export_command(_settings(), args.since, args.format, sys.stdout, issuer=args.issuer)


def cmd_audit_summary(args: argparse.Namespace) -> int:
    from cds.audit.cli import summary_command

    return summary_command(
        _settings(), args.since, args.until, args.format, sys.stdout, issuer=args.issuer
    )


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from cds.audit.cli import upgrade_command

    return upgrade_command(_settings(), sys.stdout)


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


class VersionAction(argparse.Action):
    """``--version``: the package and the rule set it would load (digest, rule count)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show package and rule-set versions")

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        def show() -> int:
            settings = _settings()
            ruleset = _ruleset(settings)
            print(
                f"kap-cds {__version__}\n"
                f"rule set {ruleset.digest[:12]} ({len(ruleset.active_rules)} active rules, "
                f"digest {ruleset.digest}) from {ruleset.directory}"
            )
            return 0

        parser.exit(run_guarded(show))


def _sub(commands: Any, name: str, help_text: str, fields: list[str]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=settings_epilog(fields) if fields else None,
        formatter_class=HelpFormatter,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kap-cds",
        description=__doc__.split("\n")[0] if __doc__ else None,
        epilog=settings_epilog(),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action=VersionAction)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = _sub(commands, "serve", "run the CDS Hooks service", [])
    serve.epilog = settings_epilog()
    serve.add_argument("--host", help=setting_help("address to listen on", "host"))
    serve.add_argument("--port", type=int, help=setting_help("TCP port", "port"))
    serve.add_argument("--workers", type=int, help=setting_help("worker processes", "workers"))
    serve.set_defaults(func=cmd_serve)

    evaluate = _sub(
        commands,
        "evaluate",
        "evaluate one request offline and print the cards",
        RULE_SETTINGS + ["fhir_timeout_seconds", "allow_insecure_fhir_server"],
    )
    evaluate.add_argument("request", nargs="?", help="a full CDS Hooks request (JSON)")
    evaluate.add_argument("--service", help="service id, e.g. kap-order-sign")
    evaluate.add_argument("--bundle", help="the patient's data as a FHIR Bundle")
    evaluate.add_argument("--order", help="the draft MedicationRequest (order hooks)")
    evaluate.add_argument("--appointment", help="the Appointment being booked (appointment-book)")
    evaluate.add_argument("--encounter", help="the Encounter id in the bundle (encounter hooks)")
    evaluate.add_argument("--at", help="evaluation time, ISO 8601 with offset (default: now)")
    evaluate.add_argument("--facts", action="store_true", help="print the facts, not the cards")
    evaluate.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="text for people (default), json: the CDS Hooks response",
    )
    evaluate.set_defaults(func=cmd_evaluate)

    _rules_parser(commands)
    _audit_parser(commands)
    db = _sub(commands, "db", "the audit database schema", ["database_url"])
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    _sub(
        db_sub, "upgrade", "migrate the audit database to this version's schema", ["database_url"]
    ).set_defaults(func=cmd_db_upgrade)
    _replay_parser(commands)
    return parser


def _rules_parser(commands: Any) -> None:
    rules = _sub(commands, "rules", "lint, test, report on the rule set", RULE_SETTINGS)
    sub = rules.add_subparsers(dest="rules_command", required=True, metavar="COMMAND")
    _sub(
        sub, "lint", "validate every rule, value set and policy; check versions", RULE_SETTINGS
    ).set_defaults(func=cmd_rules_lint)
    test = _sub(sub, "test", "run every rule's fixtures (fhir_examples/cases/)", RULE_SETTINGS)
    test.add_argument("rule", nargs="*", help="only these rule ids (default: every rule)")
    test.add_argument("-v", "--verbose", action="store_true", help="list passing fixtures too")
    test.set_defaults(func=cmd_rules_test)
    _sub(sub, "catalog", "regenerate rules/CATALOG.json", ["rules_dir"]).set_defaults(
        func=cmd_rules_catalog
    )
    _sub(sub, "facts", "list the fact types rules can use", []).set_defaults(func=cmd_rules_facts)
    report = _sub(
        sub,
        "report",
        "the compliance report of the loaded rule set",
        RULE_SETTINGS + ["database_url"],
    )
    report.add_argument("--format", choices=["html", "md"], default="html", help="(default: html)")
    report.add_argument("-o", "--output", required=True, help="file to write, - for stdout")
    report.add_argument("--since", help="audit period start for behaviour figures (ISO 8601)")
    report.set_defaults(func=cmd_rules_report)
    diff = _sub(sub, "diff", "what changed between two rule sets (dirs or git revisions)", [])
    diff.add_argument("old", help="directory or git revision, e.g. main")
    diff.add_argument("new", help="directory or git revision, e.g. HEAD")
    diff.set_defaults(func=cmd_rules_diff)


def _audit_parser(commands: Any) -> None:
    audit = _sub(commands, "audit", "the audit trail", ["database_url"])
    sub = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    export = _sub(sub, "export", "every decision and feedback item", ["database_url"])
    export.add_argument("--since", help="ISO 8601; a time without offset is UTC (default: all)")
    export.add_argument(
        "--format", choices=["jsonl", "csv"], default="jsonl", help="(default: jsonl)"
    )
    export.add_argument("--issuer", help="only calls from this JWT issuer (iss)")
    export.set_defaults(func=cmd_audit_export)
    summary = _sub(sub, "summary", "per-rule fired/accepted/overridden counts", ["database_url"])
    summary.add_argument("--since", help="ISO 8601 (default: all)")
    summary.add_argument("--until", help="ISO 8601 (default: now)")
    summary.add_argument(
        "--format", choices=["text", "json"], default="text", help="(default: text)"
    )
    summary.add_argument("--issuer", help="only calls from this JWT issuer (iss)")
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
    return run_guarded(lambda: int(args.func(args)))


if __name__ == "__main__":
    raise SystemExit(main())
