"""REST polls as Observables: one batched request per interval, errors reported, never fatal when transient.

``/ticker`` and ``/orderbook`` take many markets in one call (``markets=KRW-BTC,KRW-ETH,...``), so a poll of
N markets costs one request per interval, not N. The loop keeps a fixed rhythm (``interval`` from the start
of one request to the start of the next); when a request takes longer than the interval, the next one starts
at once rather than piling up.

What can happen to one request, and what the subscriber sees:

=========================================  ==================================================================
answer                                     effect
=========================================  ==================================================================
items                                      one ``on_next`` per item, in the answer's order
``RateLimited`` (429)                      ``Status(kind="rate_limited")``; the HTTP client's limiter holds
                                           the group back for ``retry_after``; the poll goes on
``Banned`` (418)                           ``Status(kind="circuit", detail="open")`` for the ban's length;
                                           every group is held back; the poll goes on after it
5xx, network failure, undecodable body     counted, ``Status(kind="backoff")``; the poll goes on
``NotFound`` / other 4xx (caller's fault)  ``on_error``: retrying a request for an unknown market is useless
=========================================  ==================================================================
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from rxmarket.errors import Banned, ConfigError, ExchangeRejected, RateLimited, RxMarketError
from rxmarket.exchanges.upbit.endpoints import RestRequest
from rxmarket.exchanges.upbit.history import SOURCE_CLOSED, get_rest
from rxmarket.exchanges.upbit.protocol import UpbitProtocolConfig
from rxmarket.models import Status
from rxmarket.transport.http import HttpClient

__all__ = ["PollCounters", "poll_observable"]


class PollCounters:
    """Where a poll counts its requests and failures (the source's counters).

    Attributes:
        requests: requests made.
        errors: requests that failed (every kind).
        rate_limited: failed requests answered 429 (also counted in ``errors``).
    """

    __slots__ = ("errors", "rate_limited", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.rate_limited = 0


def poll_observable(
    *,
    http: Callable[[], HttpClient],
    request: RestRequest,
    interval: float,
    channel: str,
    publish: Callable[[Status], None],
    counters: PollCounters,
    tasks: set[asyncio.Task[None]],
    config: UpbitProtocolConfig,
    closed: Callable[[], bool],
) -> Observable[Any]:
    """A cold Observable that polls ``request`` every ``interval`` seconds while subscribed.

    Args:
        http: gives the HTTP client (looked up at subscribe time).
        request: the REST request to repeat.
        interval: seconds between the starts of two requests.
        channel: the label of status events (e.g. ``"rest:ticker"``).
        publish: where status events go.
        counters: incremented per request and per failure.
        tasks: the owner's task set (the poll task is kept there until it ends).
        config: protocol knobs for decoding.
        closed: whether the owner is closed (a subscription then fails at once).

    Returns:
        The Observable; each subscription runs its own loop in a task; disposing cancels it. The owner
        cancelling the task (closing) completes the subscription.
    """

    def subscribe(observer: abc.ObserverBase[Any], _scheduler: abc.SchedulerBase | None = None) -> Disposable:
        if closed():
            observer.on_error(ConfigError(SOURCE_CLOSED))
            return Disposable()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            observer.on_error(ConfigError("subscribe to a REST poll from inside a running event loop"))
            return Disposable()

        def status(kind: str, **fields: Any) -> None:
            publish(Status(kind=kind, timestamp=time.time(), channel=channel, **fields))

        async def run() -> None:
            client = http()
            next_at = loop.time()
            while True:
                counters.requests += 1
                try:
                    items = await get_rest(client, request, retries=0, config=config)
                except asyncio.CancelledError:
                    raise
                except RateLimited as exc:
                    counters.errors += 1
                    counters.rate_limited += 1
                    status("rate_limited", delay=exc.retry_after, detail=str(exc))
                except Banned as exc:
                    counters.errors += 1
                    status("circuit", delay=exc.duration, detail=f"open: {exc}")
                except ExchangeRejected as exc:  # unknown market, bad parameter: the caller must fix it
                    observer.on_error(exc)
                    return
                except RxMarketError as exc:  # 5xx, network, undecodable body: transient
                    counters.errors += 1
                    status("backoff", delay=interval, detail=str(exc))
                else:
                    try:
                        for item in items:
                            observer.on_next(item)
                    except Exception as exc:  # the subscriber's on_next failed: Rx sends it to on_error
                        observer.on_error(exc)
                        return
                next_at += interval
                delay = next_at - loop.time()
                if delay < 0:
                    next_at = loop.time()
                    delay = 0.0
                await asyncio.sleep(delay)

        def ended(task: asyncio.Task[None]) -> None:
            # Cancelled by the owner closing (a dispose stops the observer first, which then ignores this):
            # the poll completes, like every stream of a closed source. Anything that escaped ``run`` is a
            # bug, and still reaches the subscriber rather than dying in the task.
            if task.cancelled():
                observer.on_completed()
            elif (exc := task.exception()) is not None:
                observer.on_error(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))

        task = loop.create_task(run(), name=f"rxmarket-upbit-poll {channel}")
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(ended)
        return Disposable(lambda: _cancel(task))

    return reactivex.create(subscribe)


def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
