"""The benchmark run behind ``make bench`` (``bench/run.py``): see bench/README.md."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from bench import report
from bench.hotpath import profile_request
from bench.inprocess import (
    Budget,
    bench_runtime,
    measure_builders,
    measure_cold,
    measure_fast_path,
    measure_stages,
    ruleset_info,
)
from bench.scenarios import Phase, Scenario, run_paired
from bench.servers import Server, start_server
from bench.synthetic import cold_kap_request, fast_path_request, kap_request, resource_count
from bench.thirdparty import ThirdPartyCase, load_cases, third_party_dir

Json = dict[str, Any]
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "bench" / "results"


@dataclass(frozen=True)
class Plan:
    mode: str
    cold_sizes: tuple[int, ...]  # every request a new patient: the headline
    kap_sizes: tuple[int, ...]  # the same body again and again (caches help)
    fast_sizes: tuple[int, ...]
    workers: tuple[int, ...]
    scale: float  # multiplies request counts
    max_seconds: float  # per phase
    third_party_limit: int | None  # None: every bundle
    third_party: Phase
    profile_sizes: tuple[int, ...]
    inprocess_main: Budget  # the 200-resource request the budgets are about
    inprocess_other: Budget
    inprocess_sizes: tuple[int, ...] = field(default=(50, 200, 1000, 5000))
    builder_sizes: tuple[int, ...] = field(default=(200, 5000))


FULL = Plan(
    "full",
    (50, 200, 1000, 5000, 50_000),
    (50, 200, 1000, 5000),
    (0, 200),
    (1, 2),
    1.0,
    4.0,
    None,
    Phase(20, 1, 0.75),
    (200, 5000),
    Budget(500, 3.0),
    Budget(100, 0.5),
)
QUICK = Plan(
    "quick",
    (200,),
    (200,),
    (0,),
    (1,),
    0.1,
    1.5,
    3,
    Phase(3, 1, 1.0),
    (200,),
    Budget(50, 0.5),
    Budget(10, 0.3),
    (200,),
    (200,),
)


# ---- scenarios -------------------------------------------------------------------------------


def _phases(resources: int, plan: Plan, cold: bool) -> tuple[Phase, Phase, Phase | None]:
    """(warm-up, latency, throughput) for a request of this size. Cold traffic builds one body
    per request, so its counts are smaller; 50,000 resources (~40 MB a body) get a latency
    run only."""
    if resources > 10_000:
        warm, lat = (max(1, round(c * plan.scale)) for c in (1, 3))
        limit = plan.max_seconds * 5
        return Phase(warm, 1, limit), Phase(lat, 1, limit), None
    if resources <= 200:
        counts, concurrency = ((20, 200, 300) if cold else (40, 400, 800)), 8
    elif resources <= 1000:
        counts, concurrency = ((3, 40, 60) if cold else (5, 60, 100)), 4
    else:
        counts, concurrency = ((2, 12, 12) if cold else (2, 15, 16)), 2
    warm, lat, thr = (max(2, round(c * plan.scale)) for c in counts)
    limit = plan.max_seconds * (1.5 if resources > 1000 else 1.0)
    return (
        Phase(warm, concurrency, limit / 2),
        Phase(lat, 1, limit),
        Phase(thr, concurrency, limit),
    )


def build_scenarios(plan: Plan) -> list[Scenario]:
    """Cold traffic first (the headline), then repeated bodies, the not-KAP fast path, and the
    50,000-resource chart last (it sets the process's peak memory)."""
    scenarios = []
    for n in plan.cold_sizes:
        shape = kap_request(min(n, 50), seed=1)  # a small stand-in; bodies come from `distinct`
        warm, lat, thr = _phases(n, plan, cold=True)
        distinct = partial(cold_kap_request, n)
        scenarios.append(Scenario(f"cold-{n}", shape, n, warm, lat, thr, distinct))
    requests = [(f"kap-{n}", kap_request(n)) for n in plan.kap_sizes]
    requests += [(f"fast-{n}", fast_path_request(n)) for n in plan.fast_sizes]
    for name, request in requests:
        warm, lat, thr = _phases(resource_count(request), plan, cold=False)
        scenarios.append(Scenario(name, request, resource_count(request), warm, lat, thr))
    return sorted(scenarios, key=lambda s: s.resources > 10_000)  # stable: the huge one last


# ---- servers -------------------------------------------------------------------------------


def run_servers(
    workers: int, scenarios: list[Scenario], state: Path, third_party: list[Scenario]
) -> dict[str, tuple[Json, Json, Json]]:
    """Start the floor and kap-cds with ``workers`` workers side by side, drive both scenario
    by scenario, stop them: ``{name: (server facts, scenario results, third-party)}``."""
    servers = {}
    try:
        for kind in ("floor", "kap"):
            name = f"{kind}-{workers}w"
            _say(f"HTTP: starting {name}")
            servers[name] = start_server(kind, workers, state / name)
        facts = {name: _server_facts(s) for name, s in servers.items()}
        one = workers == 1
        pair = list(servers.values())
        http = run_paired(pair, scenarios, latency=one, throughput=True)
        tp = run_paired(pair, third_party, throughput=False) if one and third_party else []
        out = {}
        for i, (name, server) in enumerate(servers.items()):
            facts[name]["memory"] = server.memory_mb()
            facts[name]["ruleset"] = server.ready_body.get("rules")
            out[name] = (facts[name], http[i], tp[i] if tp else {})
        return out
    finally:
        for server in servers.values():
            server.stop()


def _server_facts(server: Server) -> Json:
    return {
        "kind": server.kind,
        "workers": server.workers,
        "startup_s": server.startup_s,
        "memory_at_ready": server.memory_mb(),
    }


def third_party_scenarios(plan: Plan, cases: list[ThirdPartyCase]) -> list[Scenario]:
    warm = Phase(1, 1, plan.third_party.max_seconds)
    return [
        Scenario(c.name, c.request, c.sent_resources, warm, plan.third_party, None) for c in cases
    ]


def third_party_rows(cases: list[ThirdPartyCase], kap: Json, floor: Json) -> list[Json]:
    rows = []
    for case in cases:
        kap_lat = report.get(kap, case.name, "latency") or {}
        floor_lat = report.get(floor, case.name, "latency") or {}
        rows.append(
            {
                "name": case.name,
                "bundle_resources": case.bundle_resources,
                "sent_resources": case.sent_resources,
                "request_bytes": report.get(kap, case.name, "request_bytes") or 0,
                "kap": kap_lat,
                "floor": floor_lat,
                "p50_x_floor": report.ratio(kap_lat.get("p50_ms"), floor_lat.get("p50_ms")),
            }
        )
    return rows


# ---- in process ------------------------------------------------------------------------------


def run_inprocess(plan: Plan) -> tuple[Json, Json, Json]:
    results: Json = {}
    with bench_runtime() as (settings, evaluator, store):
        info = ruleset_info(evaluator)
        for size in plan.inprocess_sizes:
            budget = plan.inprocess_main if size == 200 else plan.inprocess_other
            results[f"kap-{size}"] = measure_stages(
                kap_request(size), settings, evaluator, store, budget
            )
            cold = [cold_kap_request(size, 10_000 + i) for i in range(_cold_count(size, plan))]
            results[f"kap-{size}"]["cold"] = measure_cold(cold, settings, evaluator)
        builders = {
            str(size): measure_builders(kap_request(size), evaluator, plan.inprocess_other)
            for size in plan.builder_sizes
        }
        for size in plan.fast_sizes:
            results[f"fast-{size}"] = measure_fast_path(
                fast_path_request(size), evaluator, plan.inprocess_main
            )
    return results, builders, info


def _cold_count(size: int, plan: Plan) -> int:
    """Distinct patients for the in-process cold figures: ~1 million resources at most."""
    return max(3, min(200, round(1_000_000 * plan.scale / size / 5)))


def run_profiles(plan: Plan, out_dir: Path) -> Json:
    """cProfile through the ASGI app on cold traffic (one new patient per call): what a
    first call costs, which is what most EHR traffic is."""
    profiles: Json = {}
    for size in plan.profile_sizes:
        iterations, seconds = (200, 4.0) if size <= 200 else (10, 5.0)
        requests = [cold_kap_request(size, 20_000 + i) for i in range(iterations + 1)]
        try:
            profiles[str(size)] = profile_request(
                requests, str(size), out_dir, iterations=iterations, max_seconds=seconds
            )
        except Exception as exc:  # a profile that fails must not cost the measurements
            profiles[str(size)] = {"error": f"{type(exc).__name__}: {exc}"}
    return profiles


# ---- the run ---------------------------------------------------------------------------------


def meta(plan: Plan, ruleset: Json, commit: str | None) -> Json:
    from cds import __version__

    return {
        "mode": plan.mode,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "version": __version__,
        "git_commit": commit,
        "ruleset": ruleset,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def _git_commit() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return head.strip() + ("+local changes" if dirty.strip() else "")


def run(plan: Plan, out_dir: Path, *, profile: bool, third_party_dir_: Path | None) -> Json:
    started, load_before = time.perf_counter(), [round(x, 2) for x in os.getloadavg()]
    commit = _git_commit()  # now: the run writes its own files under bench/results
    _say(f"kap-cds benchmark ({plan.mode}): in-process stages")
    inprocess, builders, ruleset = run_inprocess(plan)
    profiles = run_profiles(plan, out_dir) if profile else {}
    scenarios = build_scenarios(plan)
    cases = _third_party_cases(plan, third_party_dir_)
    tp_scenarios = third_party_scenarios(plan, cases)
    servers, http, tp = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="kap-bench-") as tmp:
        for workers in plan.workers:
            for name, (facts, scenario_results, third) in run_servers(
                workers, scenarios, Path(tmp), tp_scenarios
            ).items():
                servers[name], http[name], tp[name] = facts, scenario_results, third
    results: Json = {
        "meta": meta(plan, ruleset, commit),
        "servers": servers,
        "http": http,
        "inprocess": inprocess,
        "facts_builders_cpu_ms": builders,
        "profile": profiles,
        "third_party": third_party_rows(cases, tp.get("kap-1w", {}), tp.get("floor-1w", {})),
    }
    results["ratios"] = report.floor_ratios(http)
    results["growth"] = report.growth(http)
    results["targets"] = report.targets(results)
    results["meta"]["duration_s"] = round(time.perf_counter() - started, 1)
    results["meta"]["load_average_at_start"] = load_before
    return results


def _third_party_cases(plan: Plan, directory: Path | None) -> list[ThirdPartyCase]:
    directory = directory or third_party_dir()
    if not directory.is_dir():
        _say(f"no third-party bundles at {directory}: skipped")
        return []
    cases = load_cases(directory)
    if plan.third_party_limit is not None:
        cases = sorted(cases, key=lambda c: c.sent_resources)[: plan.third_party_limit]
    return cases


def write(results: Json, out_dir: Path) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    )
    text = report.markdown(results)
    (out_dir / "latest.md").write_text(text, encoding="utf-8")
    return text


def _say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: few requests, sizes")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile pass")
    parser.add_argument("--profile", action="store_true", help="profile even with --quick")
    parser.add_argument("--no-third-party", action="store_true", help="skip shared bundles")
    parser.add_argument("--third-party-dir", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.no_third_party:
        plan = Plan(**{**plan.__dict__, "third_party_limit": 0})
    profile = args.profile or (not args.quick and not args.no_profile)
    results = run(plan, args.out, profile=profile, third_party_dir_=args.third_party_dir)
    print(write(results, args.out))
    return 0
