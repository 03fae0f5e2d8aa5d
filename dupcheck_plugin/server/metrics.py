"""Prometheus metrics, one CollectorRegistry per app (tests run many apps)."""

from __future__ import annotations

from collections import Counter as Tally, deque
from typing import Any, Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, StateSetMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from ..connection.registry import all_of

CRM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# serve's own part of an insert: fine below the few milliseconds it should take, coarse above
OWN_BUCKETS = (0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.025, 0.1, 1.0)


class ConnectionTally:
    """One connection's calls since start, for the console's Connections page."""

    def __init__(self, window: int = 1000):
        self.calls = 0
        self.errors: Tally = Tally()
        self._latencies: deque[float] = deque(maxlen=window)  # the last calls: percentiles of recent traffic

    def add(self, crm: Mapping[str, Any]) -> None:
        self.calls += 1
        if crm.get("error"):
            self.errors[crm["error"]] += 1
        if crm.get("latency_ms") is not None:
            self._latencies.append(float(crm["latency_ms"]))

    def latency(self) -> dict[str, float]:
        data = sorted(self._latencies)
        if not data:
            return {}
        pick = lambda q: round(data[min(len(data) - 1, int(q * len(data)))], 1)  # noqa: E731
        return {"p50_ms": pick(0.5), "p95_ms": pick(0.95), "max_ms": round(data[-1], 1), "of_last": len(data)}


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, health: Callable[[], Mapping[str, Mapping[str, Any]]] = dict,
                 alarm: Callable[[], tuple[str, Mapping[str, Any]] | None] = lambda: None) -> None:
        """``health``: node id -> state (``Host.health``); ``alarm``: (workflow,
        ``Host.alarm.status()``); both read at each scrape."""
        self.registry = CollectorRegistry()
        r = self.registry
        r.register(_ConnectionCollector(health))
        r.register(_AlarmCollector(alarm))
        self.leads = Counter("dupcheck_leads", "Lead decisions made by the insert API, by action",
                             ["action"], registry=r)
        self.crm_latency = Histogram("dupcheck_crm_latency_seconds", "CRM duplicate check round trip (all attempts)",
                                     buckets=CRM_BUCKETS, registry=r)
        self.insert_own = Histogram(
            "dupcheck_insert_own_seconds", "leads/insert: time serve spent on a decided lead itself, from the "
            "request reaching its handler to its answer, the CRM round trip left out", buckets=OWN_BUCKETS, registry=r)
        self.crm_errors = Counter("dupcheck_crm_errors", "CRM calls that failed, by kind", ["kind"], registry=r)
        self.in_flight = Gauge("dupcheck_inserts_in_flight", "leads/insert requests being decided", registry=r)
        self.requests = Counter("dupcheck_http_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=r)
        r.register(LimiterCollector())
        self.connections: dict[str, ConnectionTally] = {}

    def decision(self, record: Mapping[str, Any], connection: str | None = None) -> None:
        """Count one stored decision record (``connection``: the node that asked the CRM)."""
        self.leads.labels(record.get("action") or "unknown").inc()
        crm = record.get("crm") or {}
        if crm.get("called") and connection is not None:
            tally = self.connections.get(connection)
            if tally is None:
                tally = self.connections[connection] = ConnectionTally()
            tally.add(crm)
        if crm.get("called") and crm.get("latency_ms") is not None:
            self.crm_latency.observe(crm["latency_ms"] / 1000)
        if crm.get("error"):
            self.crm_errors.labels(crm["error"]).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


BREAKER_STATES = ("closed", "open", "half_open")


class _ConnectionCollector:
    """Each connection's circuit breaker, read from the engine when scraped."""

    def __init__(self, health: Callable[[], Mapping[str, Mapping[str, Any]]]):
        self.health = health

    def collect(self) -> Iterator[Any]:
        state = StateSetMetricFamily("dupcheck_crm_breaker_state",
                                     "Circuit breaker of each CRM connection: closed, open or half_open (one probe out)",
                                     labels=["connection"])
        opened = CounterMetricFamily("dupcheck_crm_breaker_opened", "Times the circuit breaker opened",
                                     labels=["connection"])
        refused = CounterMetricFamily("dupcheck_crm_breaker_refused", "Calls refused while the breaker was open",
                                      labels=["connection"])
        for node_id, node in sorted(self.health().items()):
            breaker = node.get("breaker")
            if breaker is None:
                continue
            state.add_metric([node_id], {s: breaker["state"] == s for s in BREAKER_STATES})
            opened.add_metric([node_id], breaker["times_opened"])
            refused.add_metric([node_id], breaker["calls_refused"])
        yield from (state, opened, refused)


class _AlarmCollector:
    """The "everything is a duplicate" alarm, read from the engine when scraped."""

    def __init__(self, alarm: Callable[[], tuple[str, Mapping[str, Any]] | None]):
        self.alarm = alarm

    def collect(self) -> Iterator[Any]:
        found = self.alarm()
        active = GaugeMetricFamily("dupcheck_duplicate_alarm", "1 while the share of duplicates (or of one row) "
                                   "is far above its usual level, or one row matches every CRM answer",
                                   labels=["workflow"])
        raised = CounterMetricFamily("dupcheck_duplicate_alarms_raised", "Times the duplicate alarm was raised",
                                     labels=["workflow"])
        share = GaugeMetricFamily("dupcheck_duplicate_share", "Share of duplicates among the last CRM answers "
                                  "(the alarm's window)", labels=["workflow"])
        usual = GaugeMetricFamily("dupcheck_duplicate_share_usual", "The usual share of duplicates (moving average)",
                                  labels=["workflow"])
        if found is not None:
            workflow, status = found
            active.add_metric([workflow], 1.0 if status["active"] else 0.0)
            raised.add_metric([workflow], status["times_raised"])
            share.add_metric([workflow], status["duplicate_share"])
            if status["usual_duplicate_share"] is not None:
                usual.add_metric([workflow], status["usual_duplicate_share"])
        yield from (active, raised, share, usual)


class LimiterCollector:
    """The CRM connections' limiters, read when /metrics is scraped."""

    GAUGES = (
        ("dupcheck_crm_budget_used_ratio", "Share of the connection's daily request budget used (ours or the CRM's headers)",
         "budget_share"),
        ("dupcheck_crm_budget_warning", "1 when the connection has used warn_at (80%) of its daily budget", "budget_warning"),
        ("dupcheck_crm_stopped", "1 while the connection makes no call (budget spent, a lasting over-limit answer)", "stopped"),
        ("dupcheck_crm_waiting_leads", "Leads waiting for the connection's limiter", "waiting"),
    )
    COUNTERS = (
        ("dupcheck_crm_requests", "Requests the connection sent", "requests"),
        ("dupcheck_crm_over_limit_answers", "Over-limit answers (429/403) the connection got", "over_limit"),
        ("dupcheck_crm_refused_calls", "Calls its limiter refused (budget spent, waited too long)", "refused"),
    )

    def collect(self):
        states = [limiter.state() for limiter in all_of("limiter")]
        for kind, table in ((GaugeMetricFamily, self.GAUGES), (CounterMetricFamily, self.COUNTERS)):
            for name, help_text, key in table:
                family = kind(name, help_text, labels=["connection"])
                for st in states:
                    family.add_metric([st["connection"]], float(st[key]))
                yield family
