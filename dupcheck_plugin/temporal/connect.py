"""Connecting to Temporal, with an error a user can act on: the server is
not there, or it has no such namespace (the SDK's own errors are a Rust
transport dump, or nothing until the first workflow starts)."""

from __future__ import annotations

import re

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from ..host import DupcheckError


class TemporalUnavailable(DupcheckError):
    """Temporal cannot be reached at the address, or has no such namespace."""


def reason(exc: BaseException) -> str:
    """'Connection refused' out of the SDK's transport error, else its text."""
    found = re.search(r'message: "([^"]+)"', str(exc))
    return found.group(1) if found else str(exc)


async def connect(target: str, namespace: str) -> Client:
    """A client for ``namespace`` at ``target``; raises TemporalUnavailable."""
    try:
        client = await Client.connect(target, namespace=namespace)
    except RuntimeError as exc:
        raise TemporalUnavailable(f"cannot reach Temporal at {target}: {reason(exc)} "
                                  "(is the server running? --temporal HOST:PORT is its frontend)") from None
    try:
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise TemporalUnavailable(f"Temporal at {target} has no namespace {namespace!r}: create it "
                                      f"(temporal operator namespace create --namespace {namespace}) "
                                      "or pass --namespace") from None
        raise TemporalUnavailable(f"Temporal at {target} refused namespace {namespace!r}: {exc.message}") from None
    return client


async def check_reachable(target: str, namespace: str) -> None:
    """Raise TemporalUnavailable now rather than on the first lead (serve
    checks before it listens; its own client connects in its event loop)."""
    await connect(target, namespace)
