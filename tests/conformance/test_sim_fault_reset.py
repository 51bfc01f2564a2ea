"""``clear()`` really turns every fault off, and a failed re-bind after a hard refuse is never silent.

Plain clients over real loopback sockets, as in ``test_sim_faults``. The failed re-bind is made by taking
the simulator's port with a plain listening socket while a hard refuse holds it closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import msgspec
import pytest

from rxmarket.sim import UpbitSimulator

from ._helpers import fast_options, get_json

Sim = UpbitSimulator
Http = aiohttp.ClientSession

#: How long a check that something does *not* happen waits: a deadline, not a sleep.
QUIET = 0.2


def fresh_state() -> Any:
    """The fault snapshot of a simulator nobody touched, as JSON (what the control endpoint reports)."""
    untouched = UpbitSimulator(markets=1, rate=0, options=fast_options())
    return json.loads(msgspec.json.encode(untouched.faults.state()))


@contextmanager
def occupied(port: int) -> Iterator[None]:
    """Listen on 127.0.0.1:``port`` with a plain socket, so nobody else can bind it; release it after.

    SO_REUSEADDR lets this bind succeed even if the simulator's old connections linger in TIME_WAIT;
    listening is what makes the simulator's own bind (with SO_REUSEADDR too) fail with EADDRINUSE.
    """
    taker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        taker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taker.bind(("127.0.0.1", port))
        taker.listen()
        yield
    finally:
        taker.close()


async def hard_refuse_and_steal_the_port(sim: Sim) -> None:
    """Close the listening socket by a hard refuse, take the port, end the refuse, then free the port."""
    sim.faults.refuse(30, hard=True)
    await sim.wait_for(lambda: not sim.stats.listening)
    with occupied(sim.port):
        sim.faults.clear()
        await sim.wait_for(lambda: sim.stats.rebind_failures == 1)


async def test_clear_resets_refuse_hard_in_the_snapshot(sim: Sim) -> None:
    """After refuse(hard=True) + clear(), the snapshot says no refuse and refuse_hard False."""
    sim.faults.refuse(30, hard=True)
    assert sim.faults.state().refuse_hard
    sim.faults.clear()
    state = sim.faults.state()
    assert (state.active, state.refuse_hard, sim.faults.refusing_hard) == ((), False, False)


async def test_clear_returns_the_snapshot_to_a_fresh_one(sim: Sim, http: Http) -> None:
    """After every kind of fault and clear(), GET /_sim/faults equals a fresh simulator's snapshot."""
    sim.faults.refuse(30, hard=True)
    sim.faults.server_error(30, status=502)
    sim.faults.latency(1.0)
    sim.faults.stale(3, age=5)
    sim.faults.corrupt(2)
    sim.faults.ban(30)
    sim.faults.clear()
    await sim.wait_for(lambda: sim.stats.listening)
    _, state, _ = await get_json(http, f"{sim.control_url}/faults")
    assert state == fresh_state()


async def test_soft_refuse_after_hard_refuse_and_clear_keeps_listening(sim: Sim, http: Http) -> None:
    """refuse(hard) + clear() + refuse(): the socket stays open and upgrades and REST get 503."""
    sim.faults.refuse(30, hard=True)
    sim.faults.clear()
    sim.faults.refuse(30)
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await http.ws_connect(sim.ws_url)
    status, _, _ = await get_json(http, f"{sim.rest_url}/ticker?markets=KRW-BTC")
    assert (info.value.status, status) == (503, 503)
    assert sim.stats.listening
    assert not sim.faults.state().refuse_hard


async def test_soft_refuse_replaces_a_hard_one(sim: Sim, http: Http) -> None:
    """A soft refuse during a hard one reopens the listening socket and answers 503."""
    sim.faults.refuse(30, hard=True)
    await sim.wait_for(lambda: not sim.stats.listening)
    sim.faults.refuse(30)
    await sim.wait_for(lambda: sim.stats.listening)
    status, _, _ = await get_json(http, f"{sim.rest_url}/market/all")
    assert status == 503
    assert sim.faults.active == frozenset({"refuse"})


async def test_hard_refuse_during_the_rebind_keeps_the_socket_closed(sim: Sim) -> None:
    """clear() then refuse(hard) at once: the reopening pause sees the new refuse and stays closed."""
    sim.faults.refuse(30, hard=True)
    await sim.wait_for(lambda: not sim.stats.listening)
    sim.faults.clear()
    sim.faults.refuse(30, hard=True)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(QUIET):
            await sim.wait_for(lambda: sim.stats.listening)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(sim.host, sim.port)


async def test_refuse_hard_is_false_when_the_refuse_ends_by_itself(sim: Sim) -> None:
    """A hard refuse that runs out leaves refuse_hard False in the snapshot, and the port open."""
    sim.faults.refuse(0.05, hard=True)
    await sim.wait_fault_over("refuse")
    await sim.wait_for(lambda: sim.stats.listening)
    assert not sim.faults.state().refuse_hard


async def test_control_clear_ends_a_hard_refuse(sim: Sim, http: Http) -> None:
    """DELETE /_sim/faults over a connection opened before a hard refuse ends it; the port reopens."""
    connector = aiohttp.TCPConnector(limit=1)  # one kept-alive connection, reused past the refuse
    async with aiohttp.ClientSession(connector=connector) as kept:
        await get_json(kept, f"{sim.control_url}/faults")
        sim.faults.refuse(30, hard=True)
        await sim.wait_for(lambda: not sim.stats.listening)
        async with kept.delete(f"{sim.control_url}/faults") as response:
            cleared = await response.json()
    await sim.wait_for(lambda: sim.stats.listening)
    status, _, _ = await get_json(http, f"{sim.rest_url}/market/all")  # a new connection
    assert (cleared["faults"]["active"], cleared["faults"]["refuse_hard"]) == ([], False)
    assert status == 200


async def test_clear_lifts_a_ban(sim: Sim, http: Http) -> None:
    """ban(s) + clear(): REST answers 200 again at once, not 418 until the ban's time is up."""
    sim.faults.ban(30)
    banned, _, _ = await get_json(http, f"{sim.rest_url}/market/all")
    sim.faults.clear()
    status, _, _ = await get_json(http, f"{sim.rest_url}/market/all")
    assert (banned, status) == (418, 200)


async def test_failed_rebind_is_counted_in_stats(sim: Sim) -> None:
    """A re-bind that fails shows in stats: not listening, one failure, the error text."""
    await hard_refuse_and_steal_the_port(sim)
    stats = sim.stats
    assert (stats.listening, stats.rebind_failures) == (False, 1)
    assert stats.rebind_error is not None
    assert "in use" in stats.rebind_error.lower()


async def test_failed_rebind_is_logged_at_warning(sim: Sim, caplog: pytest.LogCaptureFixture) -> None:
    """A re-bind that fails writes one WARNING naming the port on the simulator's logger."""
    with caplog.at_level(logging.WARNING, logger="rxmarket.sim._server"):
        await hard_refuse_and_steal_the_port(sim)
    records = [r for r in caplog.records if r.name == "rxmarket.sim._server"]
    assert [r.levelno for r in records] == [logging.WARNING]
    assert str(sim.port) in records[0].getMessage()


async def test_failed_rebind_is_reported_by_the_control_endpoint(sim: Sim) -> None:
    """GET /_sim/stats, over a connection opened before the refuse, reports the failure."""
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as http:
        await get_json(http, f"{sim.control_url}/stats")
        await hard_refuse_and_steal_the_port(sim)
        _, stats, _ = await get_json(http, f"{sim.control_url}/stats")
    assert (stats["listening"], stats["rebind_failures"]) == (False, 1)
    assert "in use" in stats["rebind_error"].lower()


async def test_close_after_a_failed_rebind_leaves_nothing_behind() -> None:
    """close() after a failed re-bind returns cleanly: no task left, the simulator stopped."""
    before = asyncio.all_tasks()
    sim = UpbitSimulator(markets=1, rate=0, options=fast_options())
    await sim.start()
    port = sim.port
    await hard_refuse_and_steal_the_port(sim)
    await sim.close()
    assert asyncio.all_tasks() == before
    assert not sim.running
    assert not sim.stats.listening
    with socket.create_server(("127.0.0.1", port)) as again:
        assert again.getsockname()[1] == port


async def test_next_hard_refuse_binds_again_after_a_failed_rebind(sim: Sim, http: Http) -> None:
    """Once the port is free, the end of the next hard refuse binds it and REST answers 200."""
    await hard_refuse_and_steal_the_port(sim)
    sim.faults.refuse(30, hard=True)
    sim.faults.clear()
    await sim.wait_for(lambda: sim.stats.listening)
    status, _, _ = await get_json(http, f"{sim.rest_url}/market/all")
    assert status == 200
    assert sim.stats.rebind_failures == 1
