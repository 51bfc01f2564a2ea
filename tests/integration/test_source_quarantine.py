"""Bad frames, error frames and faulty subscribers are counted and reported, never the end of a stream."""

from __future__ import annotations

import asyncio
from typing import Any

from _recorder import Recorder
from test_source_support import running


async def test_malformed_frames_are_quarantined_and_the_stream_goes_on() -> None:
    """Two corrupted frames: counted, two quarantined status events, later trades still arrive."""
    async with running() as (sim, source):
        trades, status = Recorder(), Recorder()
        source.status.subscribe(status)
        source.stream("trade", "KRW-BTC").subscribe(trades)
        await trades.wait_count(1)
        sim.faults.corrupt(2)
        made = sim.step(5, "KRW-BTC")
        await trades.wait(lambda: trades.items[-1].sequential_id == made[-1].sequential_id)
        await status.wait_kind("quarantined", 2)
        assert [t.sequential_id for t in trades.items[1:]] == [t.sequential_id for t in made[2:]]
        assert source.stats().quarantined == 2
        assert all(s.connection == 0 and s.detail for s in status.kinds("quarantined"))
        assert not trades.errors
        assert not trades.completed


async def test_a_too_many_requests_error_frame_is_reported_and_the_subscription_resent() -> None:
    """A subscription refused with an error frame: rate_limited status; it is sent again and then served."""
    async with running() as (sim, source):
        first, second, status = Recorder(), Recorder(), Recorder()
        source.status.subscribe(status)
        source.stream("trade", "KRW-BTC").subscribe(first)
        await first.wait_count(1)
        sim.faults.rate_limit(0.1)
        source.stream("trade", "KRW-ETH").subscribe(second)  # this re-send is refused
        await status.wait_kind("rate_limited")
        await sim.wait_fault_over("rate_limit")
        await sim.wait_subscribed(["KRW-BTC", "KRW-ETH"], "trade")
        (made,) = sim.step(1, "KRW-ETH")
        await second.wait(lambda: bool(second.items) and second.items[-1].sequential_id == made.sequential_id)
        assert source.stats().rate_limited >= 1
        assert sim.stats.error_frames >= 1
        assert not first.errors
        assert not second.errors


async def test_a_failing_subscriber_is_counted_and_the_others_still_receive() -> None:
    """on_next raising in one subscriber: the loop's exception handler hears of it; the others go on."""
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        async with running() as (sim, source):

            def broken(_item: Any) -> None:
                raise ValueError("my bug")

            good = Recorder()
            source.stream("ticker", "KRW-BTC").subscribe(broken)
            source.stream("ticker", "KRW-BTC").subscribe(good)
            await good.wait_count(1)
            sim.step(2, "KRW-BTC")
            await good.wait_count(3)
            assert source.stats().callback_errors == 3
            assert all(isinstance(c["exception"], ValueError) for c in reported)
    finally:
        loop.set_exception_handler(None)
