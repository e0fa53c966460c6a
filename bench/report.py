"""Budgets, growth, ratios to the floor, and the Markdown report of a benchmark run."""

from __future__ import annotations

import math
from typing import Any

Json = dict[str, Any]

KAP_SIZES_KEY = "kap-"
RSS_BUDGET_MB = 200.0


def get(data: Any, *path: str) -> Any:
    """``data[p0][p1]...`` or None when any step is missing."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def ratio(value: float | None, floor: float | None) -> float | None:
    if value is None or not floor:
        return None
    return round(value / floor, 2)


# ---- derived figures -------------------------------------------------------------------------


def floor_ratios(http: Json) -> Json:
    """Per scenario, kap-cds relative to the floor: p50 and server CPU per request (1 worker),
    and req/s (2 workers)."""
    out: Json = {}
    for name in get(http, "kap-1w") or {}:

        def both(server: str, phase: str, key: str, name: str = name) -> tuple[Any, Any]:
            return get(http, f"kap-{server}", name, phase, key), get(
                http, f"floor-{server}", name, phase, key
            )

        out[name] = {
            "p50_x_floor": ratio(*both("1w", "latency", "p50_ms")),
            "cpu_x_floor": ratio(*both("1w", "latency", "server_cpu_ms_per_request")),
            "rps_2w_share_of_floor": ratio(*both("2w", "throughput", "rps")),
        }
    return out


def growth(http: Json) -> Json:
    """How p50 grows with prefetch size: the log-log slope (1.0 is linear) and ms per 1,000
    resources between the smallest and the largest size."""
    points = []
    for name, result in (get(http, "kap-1w") or {}).items():
        p50 = get(result, "latency", "p50_ms")
        if name.startswith(KAP_SIZES_KEY) and p50:
            points.append((result["resources"], p50))
    points.sort()
    if len(points) < 2:
        return {"exponent": None, "ms_per_1000_resources": None, "points": points}
    (n0, t0), (n1, t1) = points[0], points[-1]
    return {
        "exponent": round(_slope(points), 2),
        "ms_per_1000_resources": round((t1 - t0) / (n1 - n0) * 1000, 2),
        "points": points,
    }


def _slope(points: list[tuple[int, float]]) -> float:
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(t) for _, t in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    num = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    den = sum((x - mean_x) ** 2 for x in xs)
    return num / den if den else 0.0


def peak_rss(servers: Json, kind: str = "kap") -> float | None:
    peaks = [
        w["peak_rss_mb"]
        for name, s in servers.items()
        if name.startswith(kind)
        for w in (s.get("memory") or {}).values()
        if w.get("peak_rss_mb") is not None
    ]
    return max(peaks) if peaks else None


def budgets(results: Json) -> list[Json]:
    """Each budget of issue 8 with the measured value (reported, never asserted)."""
    http, inproc, servers = results["http"], results["inprocess"], results["servers"]
    rows = [
        (
            "fast path (amoxicillin, no prefetch) p50, 1 worker",
            "<= 1 ms",
            get(http, "kap-1w", "fast-0", "latency", "p50_ms"),
            1.0,
        ),
        (
            "fast path with a 200-resource prefetch p50",
            "<= 1 ms",
            get(http, "kap-1w", "fast-200", "latency", "p50_ms"),
            1.0,
        ),
        (
            "KAP 200 resources p50, 1 worker",
            "<= 5 ms",
            get(http, "kap-1w", "kap-200", "latency", "p50_ms"),
            5.0,
        ),
        (
            "KAP 200 resources p50 / floor p50",
            "<= 3x",
            get(results, "ratios", "kap-200", "p50_x_floor"),
            3.0,
        ),
        (
            "KAP 5,000 resources p50, 1 worker",
            "<= 100 ms",
            get(http, "kap-1w", "kap-5000", "latency", "p50_ms"),
            100.0,
        ),
        (
            "growth exponent of p50 vs resources (1 = linear)",
            "<= 1.15",
            get(results, "growth", "exponent"),
            1.15,
        ),
        (
            "in-process evaluate, 200 resources, median",
            "<= 3 ms",
            get(inproc, "kap-200", "evaluate", "median_ms"),
            3.0,
        ),
        (
            "  same, CPU time of the thread (not inflated by a busy machine)",
            "<= 3 ms",
            get(inproc, "kap-200", "evaluate", "cpu_median_ms"),
            3.0,
        ),
        (
            "KAP 200 resources, server CPU per request, 1 worker",
            "<= 5 ms",
            get(http, "kap-1w", "kap-200", "latency", "server_cpu_ms_per_request"),
            5.0,
        ),
        (
            "in-process parse + validate, 200 resources, median",
            "<= 5 ms",
            get(inproc, "kap-200", "parse", "median_ms"),
            5.0,
        ),
        (
            "peak RSS per kap-cds worker (VmHWM)",
            f"<= {RSS_BUDGET_MB:.0f} MB",
            peak_rss(servers),
            RSS_BUDGET_MB,
        ),
        (
            "start-up, process start -> /readyz 200, 1 worker",
            "<= 2 s",
            get(servers, "kap-1w", "startup_s"),
            2.0,
        ),
    ]
    out = [
        {
            "budget": name,
            "target": target,
            "measured": value,
            "ok": None if value is None else value <= limit,
        }
        for name, target, value, limit in rows
    ]
    rps = get(http, "kap-2w", "kap-200", "throughput", "rps")
    out.insert(
        5,
        {
            "budget": "KAP 200 resources requests/s, 2 workers",
            "target": ">= 500",
            "measured": rps,
            "ok": None if rps is None else rps >= 500,
        },
    )
    return out


# ---- Markdown ------------------------------------------------------------------------------


def markdown(results: Json) -> str:
    parts = [
        _header(results),
        _http_table(results),
        _inprocess_table(results),
        _builders_table(results),
        _third_party_table(results),
        _budget_table(results),
        _profile_section(results),
    ]
    return "\n".join(p for p in parts if p)


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "**NO**"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _header(results: Json) -> str:
    meta, servers = results["meta"], results["servers"]
    ruleset = meta.get("ruleset") or {}
    startups = ", ".join(f"{name} {_fmt(s.get('startup_s'))} s" for name, s in servers.items())
    rss = "; ".join(
        f"{name} " + "/".join(_fmt(w.get("peak_rss_mb"), 0) for w in s["memory"].values())
        for name, s in servers.items()
        if s.get("memory")
    )
    return (
        f"# kap-cds benchmark ({meta['mode']})\n\n"
        f"- date: {meta['date']}; run took {_fmt(meta.get('duration_s'), 0)} s\n"
        f"- machine: {meta['cores']} cores, {meta['platform']}; Python {meta['python']}\n"
        f"- load average (1/5/15 min) at start {_load(meta, 'start')}, at end "
        f"{_load(meta, 'end')}{_busy_warning(meta)}\n"
        f"- kap-cds {meta['version']} at {meta.get('git_commit') or '?'}; rule set "
        f"`{str(ruleset.get('digest', '?'))[:16]}` ({ruleset.get('rules', '?')} active rules)\n"
        f"- start-up (process start -> /readyz 200): {startups}\n"
        f"- peak RSS per worker, MB (VmHWM): {rss}\n"
        f"- client: httpx asyncio on the same machine over loopback; latency = one request in "
        f"flight; req/s = several in flight\n"
    )


def _load(meta: Json, when: str) -> str:
    values = meta.get(f"load_average_at_{when}") or []
    return "/".join(f"{v:.2f}" for v in values) or "?"


def _busy_warning(meta: Json) -> str:
    start = meta.get("load_average_at_start") or [0.0]
    if start[0] > 1.0:  # the run itself loads the machine, so only the start tells
        return " — **the machine was busy with other work before the run: figures are pessimistic**"
    return ""


def _http_table(results: Json) -> str:
    http = results["http"]
    rows = []
    for name, kap in (get(http, "kap-1w") or {}).items():
        floor = get(http, "floor-1w", name) or {}
        rows.append(
            [name, kap["resources"], round(kap["request_bytes"] / 1024)]
            + [get(kap, "latency", k) for k in ("p50_ms", "p95_ms", "p99_ms", "server_mean_ms")]
            + [get(kap, "latency", "server_cpu_ms_per_request"), get(floor, "latency", "p50_ms")]
            + [get(floor, "latency", "server_cpu_ms_per_request")]
            + [get(results, "ratios", name, k) for k in ("p50_x_floor", "cpu_x_floor")]
            + [get(kap, "throughput", "rps"), get(http, "kap-2w", name, "throughput", "rps")]
            + [get(http, "floor-2w", name, "throughput", "rps")]
        )
    headers = [
        "scenario", "resources", "KB", "p50 ms", "p95 ms", "p99 ms", "server ms",
        "server CPU ms/req", "floor p50", "floor CPU ms/req", "p50 x floor", "CPU x floor",
        "req/s 1w", "req/s 2w", "floor req/s 2w",
    ]  # fmt: skip
    return (
        "## HTTP, kap-order-sign (1 worker unless noted)\n\n"
        "p50/p95/p99: one request in flight; server ms: the service's own histogram; server CPU: "
        "user+system time of the server processes per request (robust on a busy machine).\n\n"
        + _table(headers, rows)
    )


def _inprocess_table(results: Json) -> str:
    headers = [
        "request", "parse", "triage", "gather", "facts", "engine", "cards",
        "evaluate (all)", "audit", "serialize",
    ]  # fmt: skip
    out = []
    for key, title in (("median_ms", "wall clock"), ("cpu_median_ms", "CPU time of the thread")):
        rows = [_inprocess_row(name, stages, key) for name, stages in results["inprocess"].items()]
        out.append(
            f"## In process, median ms, {title} (no HTTP; fast-* rows: parse + triage)\n\n"
            + _table(headers, rows)
        )
    return "\n".join(out)


def _inprocess_row(name: str, stages: Json, key: str) -> list[Any]:
    if "parse_and_triage" in stages:
        return [name, get(stages, "parse_and_triage", key)] + [None] * 8
    breakdown = stages.get("evaluate_breakdown") or {}
    return (
        [name]
        + [get(stages, s, key) for s in ("parse", "triage", "gather")]
        + [get(breakdown, s, key) for s in ("facts", "engine", "cards")]
        + [get(stages, s, key) for s in ("evaluate", "audit", "serialize")]
    )


def _builders_table(results: Json) -> str:
    by_size: Json = results.get("facts_builders_cpu_ms") or {}
    if not by_size:
        return ""
    sizes = list(by_size)
    names = list(dict.fromkeys(n for v in by_size.values() for n in v))
    rows = [[name] + [get(by_size, size, name) for size in sizes] for name in names]
    headers = ["fact builder"] + [f"{size} resources" for size in sizes]
    return "## Fact builders, CPU ms median, each alone on a fresh context\n\n" + _table(
        headers, rows
    )


def _third_party_table(results: Json) -> str:
    cases = results.get("third_party") or []
    if not cases:
        return ""
    rows = [
        [
            c["name"],
            c["bundle_resources"],
            c["sent_resources"],
            round(c["request_bytes"] / 1024),
            get(c, "kap", "p50_ms"),
            get(c, "kap", "p95_ms"),
            get(c, "kap", "requests"),
            get(c, "floor", "p50_ms"),
            c.get("p50_x_floor"),
        ]
        for c in cases
    ]
    headers = ["bundle", "in bundle", "sent", "KB", "p50 ms", "p95 ms", "n", "floor p50", "x floor"]
    return (
        "## Third-party bundles (../shared/fhir/third-party), ketamine IV order, 1 worker\n\n"
        + _table(headers, rows)
    )


def _budget_table(results: Json) -> str:
    rows = [[b["budget"], b["target"], b["measured"], b["ok"]] for b in results["budgets"]]
    return "## Budgets (reported, not asserted)\n\n" + _table(
        ["budget", "target", "measured", "met"], rows
    )


def _profile_section(results: Json) -> str:
    profiles = results.get("profile") or {}
    if not profiles:
        return ""
    out = ["## Profile (cProfile through the ASGI app, in process)\n"]
    for label, prof in profiles.items():
        if "error" in prof:
            out.append(f"- {label}: {prof['error']}\n")
            continue
        out.append(
            f"### {label} resources: {prof['iterations']} calls, "
            f"{_fmt(prof['profiled_ms_per_call'])} ms per call under the profiler "
            f"(full listing: `{prof['listing']}`)\n"
        )
        rows = [
            [r["function"], r["ms_per_call"], r["share"], r["ncalls_per_call"]]
            for r in prof["top_kap_cds_cumulative"][:10]
        ]
        out.append(
            _table(["kap-cds function (cumulative)", "ms/call", "share", "calls/call"], rows)
        )
        rows = [
            [r["function"], r["ms_per_call"], r["share"], r["ncalls_per_call"]]
            for r in prof["top_own_time"][:8]
        ]
        out.append(_table(["own time", "ms/call", "share", "calls/call"], rows))
    return "\n".join(out)
