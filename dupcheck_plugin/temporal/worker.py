"""``dupcheck worker``: run lead workflows and their activities for one
workflow file, on one task queue, until SIGTERM / Ctrl-C.

Two Temporal workers share the process: the main task queue (workflows,
the local check, the store write) and ``<queue>.crm`` (CRM calls only), so
the task-queue activity rate limit caps the CRM calls of all workers at the
connection's limit and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta
from typing import Any, Mapping

from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from ..host import CRM_ANSWER, Host, Registry, Workflow
from .activities import LeadActivities, SendPace
from .connect import connect
from .lead import DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE, crm_queue
from .workflow import WORKFLOWS, DecideLead, with_crm_activities

log = logging.getLogger(__name__)

# Temporal's task-queue limit is an average: its token bucket (one per task-queue
# partition) lets short bursts through, and a worker that stalls on a busy machine
# sends what it was handed meanwhile at once (measured: 31 requests in one second
# at a 14/s limit). So Temporal is asked for 70% of the CRM's limit, which keeps
# workers from queueing, and each worker also paces its own sends strictly at its
# share, evenly spaced (SendPace): the shares add up to the limit in every second.
CRM_RATE_SHARE = 0.7
# a CRM activity's heartbeats reach Temporal this often (the SDK's default, 80% of the
# heartbeat timeout, would leave a starved machine little margin)
HEARTBEAT_SENT_EVERY = timedelta(seconds=3)


def open_host(workflow: str, *, db: str, crm_url: str | None = None, registry: Registry | None = None,
              environ: Mapping[str, str] | None = None, max_connections: int | None = None) -> Host:
    """The worker's host: the workflow's nodes and the shared store. Each
    CRM node makes one attempt per activity: Temporal's retry policy (from
    the same ``retry`` table) does the rest, so a retry survives a worker
    that dies. Raises ConfigError, StoreError."""
    return Host.open(workflow, db=db, crm_url=crm_url, registry=registry, environ=environ,
                     max_connections=max_connections, single_attempt=True)


def declared_crm_rate(workflow: Workflow) -> float | None:
    """The requests/s the workflow's CRM connections declare (their
    ``limits``): the strictest, since one CRM task queue carries the calls
    of all of them. None: no limit declared."""
    rates = [rate for nid in workflow.node_ids(CRM_ANSWER) if (rate := workflow.nodes[nid].declared_rate)]
    return min(rates) if rates else None


async def run_worker(host: Host, *, target: str, namespace: str = DEFAULT_NAMESPACE,
                     task_queue: str = DEFAULT_TASK_QUEUE, crm_rate: float | None = None,
                     crm_workers: int = 1, concurrency: int = 100, stop: asyncio.Event | None = None,
                     on_ready: Any = None) -> None:
    """Poll both task queues until ``stop`` is set (or SIGTERM/SIGINT).
    ``crm_rate``: the CRM's limit in requests/s, for all ``crm_workers``
    workers of this task queue together."""
    name = host.workflow.name
    try:
        client = await connect(target, namespace)  # raises TemporalUnavailable
        WORKFLOWS[name] = with_crm_activities(host.workflow)
        acts = LeadActivities(host, SendPace(crm_rate / crm_workers) if crm_rate else None)
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        # the rules nodes run inside the workflow; they are built once by this worker from
        # the plugins' node types, which the sandbox would re-import per workflow run
        main = Worker(client, task_queue=task_queue, workflows=[DecideLead],
                      activities=[acts.local_check, acts.store_decision], workflow_runner=UnsandboxedWorkflowRunner(),
                      max_concurrent_activities=concurrency, max_concurrent_workflow_tasks=concurrency)
        crm = Worker(client, task_queue=crm_queue(task_queue), activities=[acts.call_crm],
                     max_concurrent_activities=concurrency, max_heartbeat_throttle_interval=HEARTBEAT_SENT_EVERY,
                     max_task_queue_activities_per_second=crm_rate * CRM_RATE_SHARE if crm_rate else None)
        async with main, crm:
            log.info("worker for %s on %s (namespace %s, task queue %s, CRM rate %s/s)", name,
                     target, namespace, task_queue, crm_rate or "unlimited")
            if on_ready is not None:
                on_ready()
            await stop.wait()
    finally:
        WORKFLOWS.pop(name, None)
        await host.aclose()
