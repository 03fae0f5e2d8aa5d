"""The Connections page's figures: per Convoso Connect node, what its calls did.

Calls, errors and latency come from the server's own tally of decided leads
(:class:`..metrics.ConnectionTally`); the node's own state (its circuit
breaker, and a limiter or budget where it has them) is whatever its
``health()`` reports, as ``/healthz`` shows it; a node without one shows none.
"""

from __future__ import annotations

from typing import Any

def _state(node: Any) -> dict[str, Any]:
    try:
        health = node.health() or {}  # the node contract: None when it has nothing to show
        return {part: (dict(v) if isinstance(v, dict) else {"state": v}) for part, v in health.items()}
    except Exception as exc:  # noqa: BLE001 - the page must still show the rest
        return {"health": {"error": f"{type(exc).__name__}: {exc}"}}


def connection_views(engine, metrics) -> list[dict[str, Any]]:
    views = []
    for node_id, node in engine.nodes.items():
        adaptor = getattr(node, "adaptor", None)
        if adaptor is None:
            continue
        tally = metrics.connections.get(node_id)
        views.append({
            "id": node_id,
            "adaptor": adaptor.name,
            "crm": adaptor.description or adaptor.name,
            "origin": getattr(node, "origin", None) or "(from the adaptor)",
            "calls": tally.calls if tally else 0,
            "errors": dict(tally.errors) if tally else {},
            "latency": tally.latency() if tally else {},
            "state": _state(node),
        })
    return views
