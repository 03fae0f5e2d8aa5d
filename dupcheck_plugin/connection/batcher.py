"""Group the leads waiting behind a connection's limiter into one CRM request.

A lead joins the queue; a dispatcher waits for a limiter slot and, once it
has one, takes everything queued (up to the adaptor's ``max_leads``). So an
idle ``serve`` sends a lone lead at once, as its own single request, and
batches only what piles up behind the limiter; ``run`` (not interactive)
also lets the leads its workers are about to hand over join first.

A batch answer that may have been cut short, or a 4xx (one bad value can
spoil a batch), is asked again in halves, down to single requests: a lead
alone always gets its own single request.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator, Callable, Mapping

import httpx

from ..adaptor.batch import BatchError, BatchLead, BatchShapeError, BatchSpec
from ..adaptor.render import Rendered
from ..http.call import Exchange, Interpreted, Refused, answer_parts, finish_answer, recorded_url
from ..http.wire import request_json, sent_url
from ..types import CrmAnswer
from .limiter import ConnectionLimiter

log = logging.getLogger(__name__)

LINGER_ROUNDS = 3  # run: event-loop turns without a new lead before a batch leaves


@dataclass
class Pending:
    lead: BatchLead  # its batch renderings and match keys (made with its own request: rendered once)
    real: Rendered
    masked: Rendered
    future: asyncio.Future
    cap: int  # the largest batch this lead may join (halved when a batch must be asked again)


class _HeldFirst:
    """A gate whose first slot the dispatcher already holds; retries take new ones."""

    def __init__(self, limiter: ConnectionLimiter):
        self.limiter = limiter
        self.first = True

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.first:
            self.first = False
            try:
                yield
            finally:
                self.limiter.release()
        else:
            async with self.limiter.slot():
                yield

    def observe(self, status: int | None, headers: Any, it: Interpreted | None) -> None:
        self.limiter.observe(status, headers, it)

    def unused(self) -> None:
        if self.first:
            self.first = False
            self.limiter.release()


class Batcher:
    def __init__(self, spec: BatchSpec, limiter: ConnectionLimiter, *, max_leads: int, dispatchers: int,
                 send: Callable[..., Any], finish: Callable[..., CrmAnswer]):
        self.spec = spec
        self.limiter = limiter
        self.max_leads = max_leads
        self.max_dispatchers = dispatchers
        self._send = send  # send(request, its sent_url or None, gate) -> Exchange
        self._finish = finish  # finish(exchange, pending, status, body) -> CrmAnswer
        self.queue: deque[Pending] = deque()
        self.running = 0
        self.waiting = 0  # dispatchers waiting for a slot
        self.requests = 0
        self.leads = 0
        self.unsplit = 0  # batch answers that could not be split (their leads were asked alone)
        self._tasks: set[asyncio.Task] = set()

    async def ask(self, lead: BatchLead, real: Rendered, masked: Rendered) -> CrmAnswer:
        future = asyncio.get_running_loop().create_future()
        self.queue.append(Pending(lead, real, masked, future, self.max_leads))
        self._start()
        return await future

    def _start(self) -> None:
        # one more dispatcher only when those waiting for a slot cannot take the whole queue
        if self.running < self.max_dispatchers and len(self.queue) > self.waiting * self.max_leads:
            self.running += 1
            task = asyncio.create_task(self._dispatch())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _dispatch(self) -> None:
        try:
            while self.queue:
                self.waiting += 1
                try:
                    await self.limiter.acquire()
                except Refused as exc:
                    for p in self._take():
                        self._resolve(p, self._refused(exc, p))
                    continue
                finally:
                    self.waiting -= 1
                gate = _HeldFirst(self.limiter)
                try:
                    # a slot no request went out on (a batch or a lead the client refused, a URL too
                    # long, the breaker open) is not spent: it goes to the next batch
                    while gate.first and self.queue:
                        if not self.limiter.interactive:
                            await self._linger()
                        batch = self._take()
                        if batch:
                            await self._ask(batch, gate)
                finally:
                    gate.unused()
        finally:
            self.running -= 1
            if self.queue:
                self._start()

    async def _linger(self) -> None:
        quiet = 0
        while quiet < LINGER_ROUNDS and len(self.queue) < self.max_leads:
            n = len(self.queue)
            await asyncio.sleep(0)
            quiet = quiet + 1 if len(self.queue) == n else 0

    def _take(self) -> list[Pending]:
        if not self.queue:
            return []
        cap = min(self.max_leads, self.queue[0].cap)
        batch = [self.queue.popleft()]
        while self.queue and len(batch) < cap:
            batch.append(self.queue.popleft())
        return batch

    def _again(self, batch: list[Pending]) -> None:
        """Ask these leads again, in batches half this size, before anyone else."""
        cap = max(1, len(batch) // 2)
        for p in reversed(batch):
            p.cap = min(p.cap, cap)
            self.queue.appendleft(p)

    async def _ask(self, batch: list[Pending], gate: _HeldFirst) -> None:
        try:
            if len(batch) == 1:
                p = batch[0]
                x = await self._send(p.real, None, gate)
                self._resolve(p, self._finish(x, p, x.status, x.it.body if x.it else None, 1))
                return
            made = self._request(batch)
            if made is None:  # too long a URL, or a lead the batch cannot render: smaller batches
                self._again(batch)
                return
            x: Exchange = await self._send(*made, gate)
            if x.error == "render":
                # the request could not be written, nothing was sent (the runtime refuses a lead whose own
                # headers cannot be sent before it joins: a fallback). Its first lead, whose headers it
                # carries, is asked alone; the others go again in halves, in case it was not it
                self._again(batch[1:])
                batch[0].cap = 1
                self.queue.appendleft(batch[0])
                return
            if x.error is not None and not x.attempts:  # nothing went out (the breaker open): no batch
                for p in batch:
                    self._resolve(p, self._finish(x, p, x.status, None, 0))
                return
            self.requests += 1
            self.leads += len(batch)
            if x.error is not None:
                for p in batch:
                    self._resolve(p, self._finish(x, p, x.status, None, len(batch)))
                return
            try:
                parts = self.spec.split(x.status, x.it.body, [p.lead for p in batch])
            except BatchShapeError as exc:
                self._alone(batch, exc)
                return
            if parts is None or not 200 <= x.status < 300:
                self._again(batch)
                return
            for p, (status, body) in zip(batch, parts):
                self._resolve(p, self._finish(x, p, status, body, len(batch)))
        except BaseException as exc:
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            raise

    def _alone(self, batch: list[Pending], exc: BatchShapeError) -> None:
        """Ask these leads again one by one, first: their batch's answer cannot be split."""
        self.unsplit += 1
        if self.unsplit == 1:  # once: every batch of a mistyped path answers the same
            log.warning("connection %s: %s. A batch answered so cannot be split: its leads are asked alone "
                        "(check the adaptor's [batch]; said once)", self.limiter.name, exc)
        for p in reversed(batch):
            p.cap = 1
            self.queue.appendleft(p)

    def _request(self, batch: list[Pending]) -> tuple[Rendered, httpx.URL] | None:
        """The batch's request and the URL it is sent to (written once: it is checked here)."""
        try:
            query, body = self.spec.render([p.lead for p in batch])
        except BatchError:
            return None
        first = batch[0].real
        req = replace(first, query={**first.query, **query} if query is not None else first.query,
                      body=body if body is not None else first.body)
        url = sent_url(req)
        if self.spec.max_url_length and len(str(url)) > self.spec.max_url_length:
            return None
        return req, url

    @staticmethod
    def _resolve(p: Pending, answer: CrmAnswer) -> None:
        if not p.future.done():
            p.future.set_result(answer)

    @staticmethod
    def _refused(exc: Refused, p: Pending) -> CrmAnswer:
        return CrmAnswer(status_code=None, headers={}, body=None, latency_ms=0.0, error=exc.error,
                         error_detail=exc.detail, request=request_json(p.masked), attempts=0)


def finish_for(response_key: str | None, record_id_key: Any,
               response_of: Callable[[Any], Mapping[str, Any] | None] | None = None) -> Callable[..., CrmAnswer]:
    """How a batcher turns (exchange, lead, its status, its body) into the lead's answer."""
    last: list[Any] = [None, None, None]  # the last body answered, its Interpreted and answer_parts

    def finish(x: Exchange, p: Pending, status: int | None, body: Any, batch_size: int) -> CrmAnswer:
        url = recorded_url(p.real, p.masked, x) if batch_size == 1 else None  # a batch's URL is not this lead's
        it, parts = x.it, None
        if x.error is None and batch_size > 1 and body is not None:
            # the leads of a batch the CRM found nothing for share one body (BatchSpec.split):
            # what is made of it (the record id, the record's response) is made once for all of them
            if last[0] is not body:
                last[:] = (body, Interpreted(body, None, None),
                           answer_parts(body, response_key, record_id_key, response_of))
            it, parts = last[1], last[2]
        elif x.error is None:
            it = Interpreted(body, None, None)
        return finish_answer(status=status, headers=x.headers, it=it, error=x.error, detail=x.detail,
                             latency_ms=x.latency_ms, request=request_json(p.masked, url),
                             attempts=x.attempts,
                             response_key=response_key, record_id_key=record_id_key, batch_size=batch_size,
                             response_of=response_of, parts=parts)

    return finish
