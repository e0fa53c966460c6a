"""HTTP scenarios against one running server: warm-up, a latency run (one request in flight) and
a throughput run (several in flight), each bounded in requests and seconds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.loadgen import Body, BodyPool, new_client, run_load
from bench.servers import Server, server_latency
from bench.synthetic import SERVICE_ID

Json = dict[str, Any]


@dataclass(frozen=True)
class Phase:
    requests: int
    concurrency: int
    max_seconds: float


@dataclass(frozen=True)
class Scenario:
    """One request shape and how hard to drive it."""

    name: str
    request: Json
    resources: int
    warmup: Phase
    latency: Phase | None  # one in flight: the latency figures
    throughput: Phase | None  # several in flight: requests/s
    # Cold traffic: request i is a patient never seen before (``request`` is only its shape).
    distinct: Callable[[int], Json] | None = None

    def bodies(self, latency: bool, throughput: bool) -> Body | BodyPool:
        """One body for repeated traffic; for cold traffic a body per request the phases may
        send (built before the phases run, so building costs no measured time)."""
        if self.distinct is None:
            return Body(self.request)
        phases = [self.warmup]
        phases += [self.latency] if latency and self.latency else []
        phases += [self.throughput] if throughput and self.throughput else []
        return BodyPool([self.distinct(i) for i in range(sum(p.requests for p in phases))])


def run_scenarios(
    server: Server, scenarios: list[Scenario], *, latency: bool = True, throughput: bool = True
) -> dict[str, Json]:
    return run_paired([server], scenarios, latency=latency, throughput=throughput)[0]


def run_paired(
    servers: list[Server],
    scenarios: list[Scenario],
    *,
    latency: bool = True,
    throughput: bool = True,
) -> list[dict[str, Json]]:
    """Each scenario on each server in turn, before the next scenario: the floor and kap-cds
    see the same bodies within seconds of each other, so a change in the machine's load
    between them (other work on a shared machine) skews their ratio far less."""
    return asyncio.run(_run_paired(servers, scenarios, latency, throughput))


async def _run_paired(
    servers: list[Server], scenarios: list[Scenario], latency: bool, throughput: bool
) -> list[dict[str, Json]]:
    results: list[dict[str, Json]] = [{} for _ in servers]
    for scenario in scenarios:
        if not ((latency and scenario.latency) or (throughput and scenario.throughput)):
            continue
        body = scenario.bodies(latency, throughput)  # built once, replayed to each server
        for server, by_name in zip(servers, results, strict=True):
            if isinstance(body, BodyPool):
                body.rewind()
            by_name[scenario.name] = await _run_scenario(
                server, scenario, body, latency, throughput
            )
    return results


async def _run_scenario(
    server: Server, scenario: Scenario, body: Body | BodyPool, latency: bool, throughput: bool
) -> Json:
    url = f"{server.base_url}/cds-services/{SERVICE_ID}"
    result: Json = {
        "resources": scenario.resources,
        "request_bytes": body.size,
        "traffic": "repeated" if isinstance(body, Body) else "cold",
    }
    await _phase(url, body, scenario.warmup)
    if latency and scenario.latency:
        before = _server_time(server)
        result["latency"] = await _measured_phase(server, url, body, scenario.latency)
        result["latency"]["server_mean_ms"] = _server_mean(before, _server_time(server))
    if throughput and scenario.throughput:
        result["throughput"] = await _measured_phase(server, url, body, scenario.throughput)
    if isinstance(body, BodyPool):
        result["distinct_bodies"], result["bodies_reused"] = len(body.bodies), body.reused
    # VmHWM so far: scenarios run smallest first, so this is the peak up to this size.
    result["peak_rss_mb_so_far"] = max(
        (m["peak_rss_mb"] or 0.0 for m in server.memory_mb().values()), default=None
    )
    return result


async def _measured_phase(server: Server, url: str, body: Body | BodyPool, phase: Phase) -> Json:
    """A phase plus the server's CPU time per request (not inflated by a busy machine)."""
    cpu_before = server.cpu_seconds()
    summary = await _phase(url, body, phase)
    cpu = server.cpu_seconds() - cpu_before
    done = summary["requests"] + summary["errors"]
    summary["server_cpu_ms_per_request"] = round(cpu / done * 1000, 3) if done else None
    return summary


async def _phase(url: str, body: Body | BodyPool, phase: Phase) -> Json:
    async with new_client(phase.concurrency) as client:
        load = await run_load(
            client,
            url,
            body,
            requests=phase.requests,
            concurrency=phase.concurrency,
            max_seconds=phase.max_seconds,
        )
    summary = load.summary()
    summary["concurrency"] = phase.concurrency
    return summary


def _server_time(server: Server) -> tuple[float, int] | None:
    """The service's own latency histogram (kap-cds, one worker only)."""
    if server.kind != "kap" or server.workers != 1:
        return None
    return server_latency(server)


def _server_mean(before: tuple[float, int] | None, after: tuple[float, int] | None) -> float | None:
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]) * 1000, 3)
