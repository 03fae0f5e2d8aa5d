"""Send one rendered request; retry what is transient; classify the outcome.

Transient: the CRM's declared over-limit answers (and any 429), connection
errors, timeouts and 5xx. They are retried with exponential back-off (a
``Retry-After`` header wins) up to ``attempts``; what is still failing then
becomes a typed error on the :class:`CrmAnswer`, never an answer the rules
read as "not a duplicate".
"""

from __future__ import annotations

import asyncio
import errno
import json
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from contextlib import nullcontext
from typing import Any, AsyncContextManager, Callable, Mapping, Protocol, Sequence
from urllib.parse import urlencode

import httpx
import orjson

from ..adaptor.model import RateLimitRule
from ..adaptor.render import Rendered
from ..errors import DupcheckError
from ..frozen import one_step_init
from ..rules.match import equal
from ..rules.paths import MISSING, lookup, split_path
from ..types import CrmAnswer
from .client import CrmClient, unsendable_headers
from .deadlines import POOL_WAIT_CUT, within
from .response import UnparsableBody, parse_body
from .wire import param_str, request_json, sent_url


class CallRefused(DupcheckError):
    """Raised on the way out (by an ``httpx.Auth``, say) when a call cannot be
    made; ``kind`` is one of ``CRM_ERRORS``. Not retried."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind, self.detail = kind, detail


_NO_GATE = nullcontext()
# a connect that failed for want of a file in this process (or the system): not the CRM's doing
_OUT_OF_FILES = frozenset({errno.EMFILE, errno.ENFILE})


def out_of_files(exc: BaseException) -> bool:
    """Whether ``exc`` (an httpx error, whichever transport raised it) comes of this
    process having no file left to open a socket with (EMFILE, ENFILE)."""
    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 8:  # the transports chain the OSError a step or two down
        if isinstance(cause, OSError) and cause.errno in _OUT_OF_FILES:
            return True
        os_error = getattr(cause, "os_error", None)  # aiohttp's ClientConnectorError keeps it so
        if isinstance(os_error, OSError) and os_error.errno in _OUT_OF_FILES:
            return True
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return False


def out_of_files_detail() -> str:
    try:
        import resource
        limit = f" (this process may open {resource.getrlimit(resource.RLIMIT_NOFILE)[0]})"
    except (ImportError, ValueError, OSError):
        limit = ""
    return (f"no connection made: too many open files in dupcheck's process{limit}, not the CRM's "
            "fault; lower the concurrency or max_connections, or raise the limit (ulimit -n)")


def pool_wait_detail(timeout: float, busy: int) -> str:
    return (f"not sent: no connection was free within {timeout:g}s (all {busy} of this node's max_connections "
            "were in use), so this says nothing of the CRM's own time; raise max_connections, or lower the "
            "concurrency")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff: float = 0.2
    max_wait: float = 30.0


def is_rate_limited(status: int, body: Any, rules: Sequence[RateLimitRule]) -> RateLimitRule | None:
    for rule in rules:
        if rule.status != status:
            continue
        if rule.key is None or equal(lookup(body, split_path(rule.key)), rule.value):
            return rule
    if status == 429:
        return RateLimitRule(status=429)
    return None


def retry_after_seconds(headers: httpx.Headers, name: str | None) -> float | None:
    if not name:
        return None
    value = headers.get(name)
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def encode_body(req: Rendered) -> tuple[bytes | None, str | None]:
    """(body bytes, their Content-Type) as httpx's ``json=``/``data=`` would
    encode them; encoded once per lead, whatever the attempts."""
    if req.body is None or req.body_format == "none":
        return None, None
    if req.body_format == "form":
        pairs = [(k, param_str(item)) for k, v in req.body.items()
                 for item in (v if isinstance(v, (list, tuple)) else (v,))]
        return urlencode(pairs, doseq=True).encode(), "application/x-www-form-urlencoded"
    return json_body(req.body), "application/json"


# what json.dumps refuses or writes its own way (a date from TOML, a str or int subclass) orjson must not
# write: it raises instead, and json says what it says
_ORJSON_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def json_body(body: Any) -> bytes:
    """``json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)`` in
    UTF-8 (what httpx's ``json=`` sends), by orjson (0.7 us against json's 6.6 on a HubSpot search body).
    What orjson refuses goes through json, which encodes it or says why (a key that is not a
    string, an int over 64 bits, a lone surrogate (UnicodeEncodeError), a type JSON has not).
    orjson writes NaN and Infinity as ``null``: a body with a ``null`` goes through json too,
    which refuses NaN and Infinity (ValueError). The one difference left is how a float with
    a small exponent is written (``1e-7``, json ``1e-07``): the same number."""
    try:
        data = orjson.dumps(body, option=_ORJSON_STRICT)
    except orjson.JSONEncodeError:
        data = None
    if data is None or b"null" in data:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    return data


async def _call(client: httpx.AsyncClient, method: str, url: httpx.URL, headers: Any, content: bytes | None,
                content_type: str | None, auth: httpx.Auth | None) -> httpx.Response:
    """One HTTP exchange, the answer read: a connection's CrmClient sends it
    lean; any other ``httpx.AsyncClient`` (a host's, a test's) its own way."""
    if isinstance(client, CrmClient):
        return await client.send_lean(client.build(method, url, headers, content, content_type), auth)
    headers = httpx.Headers(headers)
    if content_type is not None and "Content-Type" not in headers:
        headers["Content-Type"] = content_type
    resp = await client.request(method, url, headers=headers, content=content,
                                auth=httpx.USE_CLIENT_DEFAULT if auth is None else auth)
    await resp.aread()
    return resp


@one_step_init  # one per attempt
@dataclass(frozen=True)
class Interpreted:
    """What an HTTP answer means to the pipeline (pure; also used by ``explain``)."""

    body: Any
    error: str | None
    detail: str | None
    retry_after: float | None = None
    stops: bool = False  # an over-limit answer that does not clear in seconds (Salesforce's 403)


def interpret(status: int, headers: Any, content: bytes, response_format: str,
              rate_limits: Sequence[RateLimitRule] = ()) -> Interpreted:
    """Parse the body and classify: over the rate limit, 5xx, unparsable 2xx,
    or an answer (2xx, or a 4xx that rules with ``http_status`` may read)."""
    try:
        body = parse_body(content, response_format, status)
    except UnparsableBody as exc:
        if 200 <= status < 300:
            return Interpreted(None, "unparsable", str(exc))
        body = content.decode("utf-8", "replace")
    if status >= 400:
        limited = is_rate_limited(status, body, rate_limits)
        if limited is not None:
            after = retry_after_seconds(headers, limited.retry_after_header or "Retry-After")
            return Interpreted(body, "rate_limited", f"HTTP {status}", after, stops=not limited.clears)
        if status >= 500:
            return Interpreted(body, "http_status", f"HTTP {status}")
    return Interpreted(body, None, None)


def find_record_id(body: Any, paths: str | Sequence[str] | None) -> str | None:
    """The first scalar found at one of ``paths`` (into the whole answer)."""
    for path in [paths] if isinstance(paths, str) else (paths or ()):
        found = lookup(body, split_path(path))
        if found is not MISSING and found is not None and not isinstance(found, (dict, list)):
            return str(found)
    return None


def finish_answer(*, status: int | None, headers: Any, it: Interpreted | None, error: str | None,
                  detail: str | None, latency_ms: float, request: Any, attempts: int,
                  response_key: str | None, record_id_key: str | Sequence[str] | None, batch_size: int = 1,
                  response_of: Callable[[Any], Mapping[str, Any] | None] | None = None,
                  parts: tuple[Any, str | None, Any] | None = None) -> CrmAnswer:
    """The lead's answer, made once: ``response_of`` turns the body the rules read into the
    record's ``response`` (the connection's secrets masked: ``wire.response_json``). ``parts``:
    :func:`answer_parts` of this body, made already (for another lead of the same batch)."""
    body = it.body if it else None
    if error is not None:
        record_id, response = None, (response_of(body) if response_of is not None and body is not None else None)
    else:
        body, record_id, response = parts or answer_parts(body, response_key, record_id_key, response_of)
    # the answer's headers as they came (an httpx.Headers is a read-only mapping): copying them
    # into a dict cost more per lead than parsing the body
    # positionally, in CrmAnswer's field order (tests/test_finish_answer.py): one per lead, and
    # keywords cost 60% more (13,561 against 8,418 instructions)
    return CrmAnswer(status, headers if headers is not None else {}, body, round(latency_ms, 3), error, detail,
                     request, attempts, record_id, batch_size if attempts else 0, False, it.retry_after if it else None, response)


def answer_parts(body: Any, response_key: str | None, record_id_key: str | Sequence[str] | None,
                 response_of: Callable[[Any], Mapping[str, Any] | None] | None = None) -> tuple[Any, str | None, Any]:
    """What a CRM's answer body (not an error) gives a lead's answer: (the body the rules read,
    the CRM's record id, the record's ``response``)."""
    record_id = find_record_id(body, record_id_key)
    if response_key:
        found = lookup(body, split_path(response_key))
        body = None if found is MISSING else found
    return body, record_id, (response_of(body) if response_of is not None and body is not None else None)


class Gate(Protocol):
    """What stands between a lead and the CRM (a connection's limiter): one
    slot per HTTP attempt, and a look at every answer."""

    def slot(self) -> AsyncContextManager[None]: ...

    def observe(self, status: int | None, headers: Any, it: "Interpreted | None") -> None: ...


class Refused(DupcheckError):
    """The gate would not let the call go: ``error`` names why (a CRM error kind)."""

    def __init__(self, error: str, detail: str):
        super().__init__(detail)
        self.error, self.detail = error, detail


@dataclass
class Exchange:
    """The outcome of one request with its retries, before any answer is built."""

    status: int | None
    headers: Any
    it: Interpreted | None
    error: str | None
    detail: str | None
    attempts: int
    latency_ms: float
    url: httpx.URL | None = None  # where it was sent


def not_sent(problem: str) -> str:
    """The detail of a request the client refused to write (crm.error ``render``)."""
    return f"request not sent: {problem}"


async def exchange(client: httpx.AsyncClient, req: Rendered, *, response_format: str,
                   rate_limits: Sequence[RateLimitRule] = (), retry: RetryPolicy = RetryPolicy(),
                   timeout: float = 10.0, gate: Gate | None = None, breaker: Any = None,
                   auth: httpx.Auth | None = None, url: httpx.URL | None = None) -> Exchange:
    """Send ``req``, retrying what is transient. Each attempt takes a slot of
    ``gate`` (the connection's limiter); ``breaker`` (a
    :class:`~dupcheck_plugin.connection.breaker.CircuitBreaker`) is asked
    before every attempt and told its outcome; ``auth`` adds the OAuth token
    to the request (and refreshes it on a 401); ``url``: ``sent_url(req)`` when the caller
    has it already (a batch, whose URL length it checked)."""
    started = time.perf_counter()
    content, content_type = encode_body(req)
    if url is None:
        url = sent_url(req)  # httpx's params= would replace a query written in the URL
    lean = isinstance(client, CrmClient)
    if not lean:  # a host's own client: the rule CrmClient.build applies, before a slot or a breaker ticket
        problem = unsendable_headers(req.headers)
        if problem is not None:
            return Exchange(None, {}, None, "render", not_sent(problem), 0,
                            (time.perf_counter() - started) * 1000.0, url)
    attempt = 0
    give_up = False
    status, headers, it, error, detail = None, {}, None, None, None
    while True:
        ticket = None
        if breaker is not None:
            ticket = breaker.admitted() or await breaker.admit()  # closed: no coroutine to make
        if breaker is not None and ticket is None:
            if attempt == 0:  # not called at all: the lead goes to on_error at once
                status, headers, it, error, detail = None, {}, None, "circuit_open", breaker.why()
            else:  # keep the last attempt's failure; say why it was not retried
                detail = f"{detail}; not retried: circuit breaker open"
            break
        attempt += 1
        status, headers, it = None, {}, None
        wait = retry.backoff * (2 ** (attempt - 1)) * (0.5 + random.random())
        error, refused = "cancelled", False  # until an outcome is known (a cancelled call gives the breaker none)
        held_back = False  # the limiter refused: no call, nothing for the breaker to learn
        local = False  # failed in this process (no file for a socket): retried, the breaker not told
        if POOL_WAIT_CUT.get() is not None:  # a cut wait this task survived (a cancel caught): not this attempt's
            POOL_WAIT_CUT.set(None)
        try:
            # built before its slot is taken: a request the client refuses (a header no transport may
            # send) costs no slot of the CRM's quota (its check is made once per distinct header set)
            request = client.build(req.method, url, req.headers, content, content_type) if lean else None
            async with (gate.slot() if gate is not None else _NO_GATE):
                async with within(timeout):  # asyncio.timeout's, one timer for many calls
                    if lean:  # one coroutine less per lead than through _call
                        resp = await client.send_lean(request, auth)
                    else:
                        resp = await _call(client, req.method, url, req.headers, content, content_type, auth)
                status, headers = resp.status_code, resp.headers
                it = interpret(status, headers, resp.content, response_format, rate_limits)
                if gate is not None:
                    gate.observe(status, headers, it)
            error, detail = it.error, it.detail
            if it.retry_after is not None:
                if it.retry_after > retry.max_wait:
                    give_up = True  # too long to wait: give up now (attempts still says how many were made)
                wait = it.retry_after
            if it.stops and gate is None:
                give_up = True  # it does not clear in seconds: no retry
            elif it.stops:
                wait = 0.0  # the gate holds the next attempt until the connection may call again
        except Refused as exc:
            error, detail, held_back = exc.error, exc.detail, True
            attempt -= 1  # this attempt never reached the CRM
        except (TimeoutError, httpx.TimeoutException):
            busy = POOL_WAIT_CUT.get()
            if busy is None:
                error, detail = "timeout", f"no answer within {timeout:g}s"
            else:  # all the pool's connections were in use: not sent, the breaker learns nothing of the CRM
                POOL_WAIT_CUT.set(None)
                error, detail, local = "timeout", pool_wait_detail(timeout, busy), True
        except httpx.LocalProtocolError as exc:
            # the request cannot be written as rendered (a lead's control character in a header):
            # nothing reached the CRM, sending it again would fail the same way, the CRM is not at fault
            error, detail, refused = "render", not_sent(str(exc)), True
            attempt -= 1
        except httpx.TransportError as exc:
            if out_of_files(exc):  # this process's limit: the breaker learns nothing of the CRM
                error, detail, local = "connection", out_of_files_detail(), True
            else:
                error, detail = "connection", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except CallRefused as exc:  # the call could not be made (no OAuth token): not retried
            error, detail, refused = exc.kind, exc.detail, True
        finally:
            if ticket is not None:
                if error == "cancelled" or refused or held_back or local:  # says nothing about the CRM
                    breaker.release(ticket)
                else:
                    breaker.record(ticket, error, detail)
        if error is None or error == "unparsable" or refused or held_back or give_up or attempt >= retry.attempts:
            break
        if wait > 0:
            await asyncio.sleep(min(wait, retry.max_wait))
    return Exchange(status, headers, it, error, detail, attempt, (time.perf_counter() - started) * 1000.0, url)


def recorded_url(real: Rendered, masked: Rendered, x: Exchange) -> str | None:
    """The URL ``x`` was sent to, for the record of ``masked``, when the two are the same (no
    secret in the URL or its query): the query is then not written twice. None otherwise."""
    if x.url is not None and real.query and masked.query == real.query and masked.url == real.url:
        return str(x.url)
    return None


async def send(client: httpx.AsyncClient, req: Rendered, masked: Rendered, *, response_format: str,
               rate_limits: Sequence[RateLimitRule] = (), retry: RetryPolicy = RetryPolicy(),
               timeout: float = 10.0, response_key: str | None = None,
               record_id_key: str | Sequence[str] | None = None, gate: Gate | None = None,
               breaker: Any = None, auth: httpx.Auth | None = None,
               response_of: Callable[[Any], Mapping[str, Any] | None] | None = None) -> CrmAnswer:
    x = await exchange(client, req, response_format=response_format, rate_limits=rate_limits, retry=retry,
                       timeout=timeout, gate=gate, breaker=breaker, auth=auth)
    return answer_of(x, req, masked, response_key=response_key, record_id_key=record_id_key,
                     response_of=response_of)


def answer_of(x: Exchange, req: Rendered, masked: Rendered, *, response_key: str | None = None,
              record_id_key: str | Sequence[str] | None = None,
              response_of: Callable[[Any], Mapping[str, Any] | None] | None = None) -> CrmAnswer:
    """The lead's answer for the exchange of ``req`` (``masked``: as the record shows it)."""
    return finish_answer(status=x.status, headers=x.headers, it=x.it, error=x.error, detail=x.detail,
                         latency_ms=x.latency_ms, request=request_json(masked, recorded_url(req, masked, x)),
                         attempts=x.attempts,
                         response_key=response_key, record_id_key=record_id_key, response_of=response_of)
