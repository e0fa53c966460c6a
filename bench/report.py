"""Budgets, growth, ratios to the floor, and the Markdown report of a benchmark run."""

from __future__ import annotations

import math
from typing import Any

Json = dict[str, Any]

COLD = "cold-"
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
    """Per scenario, kap-cds relative to the floor on the same bodies: p50 and server CPU per
    request (1 worker), and req/s (1 and 2 workers)."""
    out: Json = {}
    names = list(dict.fromkeys([*(get(http, "kap-1w") or {}), *(get(http, "kap-2w") or {})]))
    for name in names:

        def both(server: str, phase: str, key: str, name: str = name) -> tuple[Any, Any]:
            return get(http, f"kap-{server}", name, phase, key), get(
                http, f"floor-{server}", name, phase, key
            )

        out[name] = {
            "p50_x_floor": ratio(*both("1w", "latency", "p50_ms")),
            "cpu_x_floor": ratio(*both("1w", "latency", "server_cpu_ms_per_request")),
            "rps_1w_share_of_floor": ratio(*both("1w", "throughput", "rps")),
            "rps_2w_share_of_floor": ratio(*both("2w", "throughput", "rps")),
        }
    return out


def growth(http: Json, prefix: str = COLD) -> Json:
    """How cold p50 grows with prefetch size: the log-log slope (1.0 is linear) and ms per
    1,000 resources between the smallest and the largest size."""
    points = []
    for name, result in (get(http, "kap-1w") or {}).items():
        p50 = get(result, "latency", "p50_ms")
        if name.startswith(prefix) and p50:
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


def peak_rss_up_to(http: Json, max_resources: int) -> float | None:
    """The highest kap-cds worker VmHWM seen after scenarios of at most ``max_resources``
    (scenarios run smallest first, the 50,000-resource chart last)."""
    peaks = [
        r["peak_rss_mb_so_far"]
        for server, results in http.items()
        if server.startswith("kap-")
        for r in results.values()
        if r.get("resources", 0) <= max_resources and r.get("peak_rss_mb_so_far")
    ]
    return max(peaks) if peaks else None


def targets(results: Json) -> list[Json]:
    """Each target of issue 15 with the measured value (reported, never asserted). Ratios are
    to the floor measured in the same run on the same bodies."""
    http = results["http"]

    def r(name: str, key: str) -> Any:
        return get(results, "ratios", name, key)

    rows: list[tuple[str, str, Any, float, bool]] = [
        ("cold 200 resources, p50 x floor", "<= 2x", r("cold-200", "p50_x_floor"), 2.0, False),
        ("cold 1,000 resources, p50 x floor", "<= 2x", r("cold-1000", "p50_x_floor"), 2.0, False),
        ("cold 5,000 resources, p50 x floor", "<= 1.5x", r("cold-5000", "p50_x_floor"), 1.5, False),
        ("repeated 200 resources, p50 x floor", "<= 1.5x", r("kap-200", "p50_x_floor"), 1.5, False),
        (
            "not-KAP fast path, no prefetch, p50 x floor",
            "<= 1.2x",
            r("fast-0", "p50_x_floor"),
            1.2,
            False,
        ),
        (
            "not-KAP fast path, 200-resource prefetch, p50 x floor",
            "<= 1.2x",
            r("fast-200", "p50_x_floor"),
            1.2,
            False,
        ),
        (
            "cold 200 resources, req/s 2 workers / floor's",
            ">= 0.70",
            r("cold-200", "rps_2w_share_of_floor"),
            0.7,
            True,
        ),
        (
            "repeated 200 resources, req/s 2 workers / floor's",
            ">= 0.70",
            r("kap-200", "rps_2w_share_of_floor"),
            0.7,
            True,
        ),
        (
            "cold 50,000 resources, p50 ms",
            "< 2,000 ms",
            get(http, "kap-1w", "cold-50000", "latency", "p50_ms"),
            2000.0,
            False,
        ),
        (
            "peak RSS per kap-cds worker, charts up to 5,000 resources",
            f"<= {RSS_BUDGET_MB:.0f} MB",
            peak_rss_up_to(http, 5000),
            RSS_BUDGET_MB,
            False,
        ),
        (
            "peak RSS per kap-cds worker, after the 50,000-resource chart",
            "(reported)",
            peak_rss(results["servers"]),
            math.inf,
            False,
        ),
        (
            "growth exponent of cold p50 vs resources (1 = linear)",
            "<= 1.15",
            get(results, "growth", "exponent"),
            1.15,
            False,
        ),
    ]
    return [
        {
            "target": name,
            "limit": limit_text,
            "measured": value,
            "ok": None
            if value is None or math.isinf(limit)
            else (value >= limit if at_least else value <= limit),
        }
        for name, limit_text, value, limit, at_least in rows
    ]


# ---- Markdown ------------------------------------------------------------------------------


def markdown(results: Json) -> str:
    parts = [
        _header(results),
        _target_table(results),
        _http_table(results),
        _inprocess_table(results),
        _builders_table(results),
        _third_party_table(results),
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
    names = list(dict.fromkeys([*(get(http, "kap-1w") or {}), *(get(http, "kap-2w") or {})]))
    for name in names:
        kap = get(http, "kap-1w", name) or get(http, "kap-2w", name) or {}
        floor = get(http, "floor-1w", name) or {}
        rows.append(
            [
                name,
                kap.get("traffic"),
                kap.get("resources"),
                round(kap.get("request_bytes", 0) / 1024),
            ]
            + [get(kap, "latency", k) for k in ("p50_ms", "p95_ms", "server_mean_ms")]
            + [get(floor, "latency", "p50_ms"), get(results, "ratios", name, "p50_x_floor")]
            + [get(kap, "latency", "server_cpu_ms_per_request")]
            + [get(floor, "latency", "server_cpu_ms_per_request")]
            + [get(results, "ratios", name, "cpu_x_floor")]
            + [get(kap, "throughput", "rps"), get(http, "floor-1w", name, "throughput", "rps")]
            + [get(http, "kap-2w", name, "throughput", "rps")]
            + [get(http, "floor-2w", name, "throughput", "rps")]
            + [get(results, "ratios", name, "rps_2w_share_of_floor")]
        )
    headers = [
        "scenario", "traffic", "resources", "KB", "p50 ms", "p95 ms", "server ms", "floor p50",
        "p50 x floor", "CPU ms/req", "floor CPU ms/req", "CPU x floor", "req/s 1w",
        "floor req/s 1w", "req/s 2w", "floor req/s 2w", "2w share of floor",
    ]  # fmt: skip
    return (
        "## HTTP, kap-order-sign\n\n"
        "cold: every request a patient never seen before (own ids and values), so no cache keyed "
        "on content helps; repeated (kap-*): the same body every time; fast-*: an amoxicillin "
        "order (not KAP). The floor gets the very same bodies in the same run. p50/p95: one "
        "request in flight, 1 worker; server ms: the service's own histogram; CPU ms/req: "
        "user+system time of the server processes per request (robust on a busy machine); "
        "req/s: several in flight.\n\n" + _table(headers, rows)
    )


def _target_table(results: Json) -> str:
    rows = [[t["target"], t["limit"], t["measured"], t["ok"]] for t in results["targets"]]
    return (
        "## Targets of issue 15 (ratios to the floor in the same run; reported, not asserted)\n\n"
        + _table(["target", "limit", "measured", "met"], rows)
    )


def _inprocess_table(results: Json) -> str:
    headers = [
        "request", "parse", "triage", "gather", "facts", "engine", "cards",
        "evaluate (all)", "audit", "serialize", "cold parse", "cold evaluate",
    ]  # fmt: skip
    out = []
    for key, title in (("median_ms", "wall clock"), ("cpu_median_ms", "CPU time of the thread")):
        rows = [_inprocess_row(name, stages, key) for name, stages in results["inprocess"].items()]
        out.append(
            f"## In process, median ms, {title} (no HTTP; fast-* rows: parse + triage)\n\n"
            "Stages repeat one body (caches warm); the cold columns are one new patient per "
            "call.\n\n" + _table(headers, rows)
        )
    return "\n".join(out)


def _inprocess_row(name: str, stages: Json, key: str) -> list[Any]:
    if "parse_and_triage" in stages:
        return [name, get(stages, "parse_and_triage", key)] + [None] * 10
    breakdown = stages.get("evaluate_breakdown") or {}
    return (
        [name]
        + [get(stages, s, key) for s in ("parse", "triage", "gather")]
        + [get(breakdown, s, key) for s in ("facts", "engine", "cards")]
        + [get(stages, s, key) for s in ("evaluate", "audit", "serialize")]
        + [get(stages, "cold", s, key) for s in ("parse", "evaluate")]
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


def _profile_section(results: Json) -> str:
    profiles = results.get("profile") or {}
    if not profiles:
        return ""
    out = ["## Profile (cProfile through the ASGI app, in process, cold traffic)\n"]
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
