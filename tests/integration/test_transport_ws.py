"""WebSocket transport over real loopback sockets, against an in-test aiohttp server.

Every test runs once per implementation (``ws_client`` is parametrized over aiohttp and websockets):
both must behave the same. Backoff and pacing waits go through a fake ``sleep`` (they are recorded and
return at once); idle timeouts, keep-alives and pings run on the loop's real timers, kept short.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

import pytest

from rxmarket.errors import ConfigError, GaveUp, TransportError
from rxmarket.policy.backoff import BackoffPolicy
from rxmarket.policy.ratelimit import SlidingWindowLimiter
from rxmarket.transport import AiohttpWsClient, ReconnectingWebSocket, WsClient

if TYPE_CHECKING:
    from conftest import FakeTime, Peer, Recorder, ScriptedWsServer

SUBSCRIBE = '[{"ticket":"t"},{"type":"ticker","codes":["KRW-BTC"]}]'
NO_JITTER = BackoffPolicy(initial=0.5, multiplier=2.0, max_delay=4.0, jitter=0.0, immediate_first=True)


def sender(*frames: str | bytes, then_drop: bool = False, after: int = 1) -> Any:
    """A server script: once ``after`` messages (the subscription) arrived, send ``frames`` in order, then
    (optionally) drop the TCP connection abruptly, as Upbit's data flows only after a subscription."""

    async def script(peer: Peer) -> None:
        await peer.wait_received(after)
        for frame in frames:
            await peer.send(frame)
        if then_drop:
            peer.drop()
        await asyncio.Event().wait()

    return script


def make(
    url: str,
    client: WsClient,
    ws_recorder: Recorder,
    fake_time: FakeTime,
    *,
    frame: str | None = SUBSCRIBE,
    **options: Any,
) -> ReconnectingWebSocket:
    options.setdefault("backoff", NO_JITTER)
    options.setdefault("ping_interval", None)
    options.setdefault("idle_timeout", None)
    return ReconnectingWebSocket(
        url,
        client=client,
        subscription_frame=lambda: frame,
        on_frame=ws_recorder.on_frame,
        on_event=ws_recorder.on_event,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        **options,
    )


def our_tasks() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task.get_name().startswith("rxmarket")}


# -- the WsClient / WsConn seam ---------------------------------------------------------------------


async def test_conn_receives_text_and_binary_frames_in_order(
    ws_server: ScriptedWsServer, ws_client: WsClient
) -> None:
    """recv() returns each frame in order: str for text frames, bytes for binary frames."""
    ws_server.script = sender("one", b"\x00two", "three", after=0)
    conn = await ws_client.connect(ws_server.url, ping_interval=None)
    try:
        assert [await conn.recv() for _ in range(3)] == ["one", b"\x00two", "three"]
    finally:
        await conn.close()


async def test_conn_sends_text_and_binary_frames(ws_server: ScriptedWsServer, ws_client: WsClient) -> None:
    """send() of str arrives as a text frame, of bytes as a binary frame."""
    conn = await ws_client.connect(ws_server.url, ping_interval=None, headers={"X-Test": "yes"})
    try:
        await conn.send("hello")
        await conn.send(b"\x01\x02")
        peer = await ws_server.wait_peers(1)
        assert await ws_server.wait_received(peer, 2) == ["hello", b"\x01\x02"]
        assert peer.request.headers["X-Test"] == "yes"
    finally:
        await conn.close()


async def test_conn_close_is_seen_by_the_server(ws_server: ScriptedWsServer, ws_client: WsClient) -> None:
    """close() performs the closing handshake: the server sees code 1000."""
    conn = await ws_client.connect(ws_server.url, ping_interval=None)
    peer = await ws_server.wait_peers(1)
    await conn.close()
    await peer.ended.wait()
    assert peer.close_code == 1000
    assert conn.closed


async def test_conn_recv_after_an_abrupt_drop_raises_transport_error(
    ws_server: ScriptedWsServer, ws_client: WsClient
) -> None:
    """A TCP connection dropped without a close frame surfaces as TransportError from recv()."""
    ws_server.script = sender("last words", then_drop=True, after=0)
    conn = await ws_client.connect(ws_server.url, ping_interval=None)
    try:
        assert await conn.recv() == "last words"
        with pytest.raises(TransportError):
            await conn.recv()
    finally:
        await conn.close()


async def test_conn_send_after_close_raises_transport_error(
    ws_server: ScriptedWsServer, ws_client: WsClient
) -> None:
    """Sending on a closed connection is a TransportError, not a library exception."""
    conn = await ws_client.connect(ws_server.url, ping_interval=None)
    await conn.close()
    with pytest.raises(TransportError):
        await conn.send("too late")


def held_sockets_on_port(port: int) -> set[str]:
    """Inodes of the TCP sockets bound to local ``port`` that this process still holds an fd of (Linux).

    Only the one socket is looked at, so other tests' sockets opening or closing meanwhile change nothing.
    """
    bound: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as rows:
            for row in rows.readlines()[1:]:
                fields = row.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    bound.add(fields[9])
    held: set[str] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed between the listing and the look
            continue
        if link.startswith("socket:["):
            held.add(link[len("socket:[") : -1])
    return bound & held


async def test_conn_close_cut_short_still_releases_the_socket(
    ws_server: ScriptedWsServer, ws_client: WsClient
) -> None:
    """A close() cancelled while it waits for a peer that never answers the close frame (the owner shuts
    down meanwhile) still releases the client's socket instead of leaving it open."""
    conn = await ws_client.connect(ws_server.url, ping_interval=None, close_timeout=60.0)
    peer = await ws_server.wait_peers(1)
    server_end = peer.request.transport
    assert server_end is not None
    server_end.pause_reading()  # the server reads nothing more: the close is never answered
    client_port = server_end.get_extra_info("peername")[1]
    try:
        assert held_sockets_on_port(client_port)  # the client's socket, as the test starts
        closing = asyncio.create_task(conn.close())
        await asyncio.sleep(0)  # one turn of the loop: the close starts and waits for the peer
        assert conn.closed
        closing.cancel()
        await asyncio.wait([closing])
        # A transport closes its socket in a callback queued before the task ended, so it has run by now.
        assert closing.cancelled()
        assert held_sockets_on_port(client_port) == set()  # the client's socket is gone
    finally:
        server_end.abort()  # else the server's shutdown would wait for this handler


async def test_connect_refused_raises_transport_error(refused_url: str, ws_client: WsClient) -> None:
    """Nothing listening: connect() raises TransportError (library errors do not leak)."""
    with pytest.raises(TransportError, match=r"127\.0\.0\.1"):
        await ws_client.connect(refused_url)


@pytest.mark.parametrize("url", ["ws://127.0.0.1:99999/ws", "ws://[::1/ws"])
async def test_connect_to_a_malformed_url_is_a_config_error(url: str, ws_client: WsClient) -> None:
    """A URL with a port out of range or a broken IPv6 host is a ConfigError, not the library's ValueError."""
    with pytest.raises(ConfigError, match="not a WebSocket URL"):
        await ws_client.connect(url, open_timeout=2.0)


async def test_connect_upgrade_refused_raises_transport_error_with_status(
    ws_server: ScriptedWsServer, ws_client: WsClient
) -> None:
    """An upgrade answered with HTTP 503 is a TransportError that names the status."""
    ws_server.reject_status = 503
    with pytest.raises(TransportError, match="HTTP 503") as info:
        await ws_client.connect(ws_server.url)
    assert info.value.status == 503


# -- ReconnectingWebSocket --------------------------------------------------------------------------


async def test_connects_subscribes_and_delivers_frames_in_order(
    ws_server: ScriptedWsServer, ws_client: WsClient, ws_recorder: Recorder, fake_time: FakeTime
) -> None:
    """After connecting, the subscription frame is sent first, then every frame reaches on_frame in order."""
    ws_server.script = sender(b'{"n":1}', b'{"n":2}', "text too")
    async with make(ws_server.url, ws_client, ws_recorder, fake_time) as rws:
        await ws_recorder.wait_for(lambda: len(ws_recorder.frames) == 3)
        peer = ws_server.peers[0]
        assert await ws_server.wait_received(peer, 1) == [SUBSCRIBE]
        assert ws_recorder.frames == [b'{"n":1}', b'{"n":2}', "text too"]
        assert ws_recorder.kinds()[:2] == ["connecting", "live"]
        assert rws.live
        assert rws.stats().frames == 3
        assert rws.stats().messages_sent == 1


async def test_abrupt_drop_reconnects_and_resends_the_subscription(
    ws_server: ScriptedWsServer, ws_client: WsClient, ws_recorder: Recorder, fake_time: FakeTime
) -> None:
    """A dropped TCP connection: immediate retry, the subscription re-sent, frames flow again."""
    ws_server.scripts = [sender("before", then_drop=True)]
    ws_server.script = sender("after")
    async with make(ws_server.url, ws_client, ws_recorder, fake_time) as rws:
        await ws_recorder.wait_for(lambda: ws_recorder.frames == ["before", "after"])
        await ws_server.wait_for(lambda: all(peer.received for peer in ws_server.peers))
        assert [peer.received for peer in ws_server.peers] == [[SUBSCRIBE], [SUBSCRIBE]]
        assert ws_recorder.kinds() == [
            "connecting", "live", "dropped", "backoff", "connecting", "reconnected"
        ]
        dropped, backoff, reconnected = (
            ws_recorder.of_kind(kind)[0] for kind in ("dropped", "backoff", "reconnected")
        )
        assert isinstance(dropped.error, TransportError)
        assert (backoff.delay, backoff.attempt) == (0.0, 2)
        assert reconnected.downtime == 0.0  # fake clock: only the recorded sleeps move it
        assert fake_time.sleeps == [0.0]
        stats = rws.stats()
        assert (stats.connects, stats.reconnects, stats.failures) == (2, 1, 1)


async def test_refused_connections_follow_the_exact_backoff_then_give_up(
    refused_url: str, ws_client: WsClient, ws_recorder: Recorder, fake_time: FakeTime
) -> None:
    """Refused attempts wait 0, 0.5, 1, 2, 4, 4 s (capped), then give up at the 7th failure: GaveUp."""
    rws = make(refused_url, ws_client, ws_recorder, fake_time, max_failures=7, window=1000.0)
    rws.start()
    with pytest.raises(GaveUp) as info:
        await rws.wait_closed()
    assert fake_time.sleeps == [0.0, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert info.value.failures == 7
    assert isinstance(info.value.last_error, TransportError)
    assert [e.attempt for e in ws_recorder.of_kind("backoff")] == [2, 3, 4, 5, 6, 7]
    assert ws_recorder.kinds()[-2:] == ["gave_up", "closed"]
    assert ws_recorder.events[-1].error is info.value
    assert rws.error is info.value
    assert our_tasks() == set()
    await rws.close()  # closing after giving up is harmless


async def test_failures_spread_wider_than_the_window_never_give_up(
    refused_url: str, ws_client: WsClient, ws_recorder: Recorder, fake_time: FakeTime
) -> None:
    """With 2 failures allowed per 1 s and 1 s between attempts, it keeps trying until closed."""
    steady = BackoffPolicy(initial=1.0, multiplier=1.0, max_delay=1.0, jitter=0.0)
    rws = make(refused_url, ws_client, ws_recorder, fake_time, backoff=steady, max_failures=2, window=1.0)
    rws.start()
    await ws_recorder.wait_for(lambda: len(ws_recorder.of_kind("backoff")) >= 8)
    await rws.close()
    assert "gave_up" not in ws_recorder.kinds()
    assert rws.error is None
    assert fake_time.sleeps[:8] == [1.0] * 8
    await rws.wait_closed()  # a plain close is not an error


async def test_upgrade_refused_is_retried_like_a_refused_connection(
    ws_server: ScriptedWsServer, ws_client: WsClient, ws_recorder: Recorder, fake_time: FakeTime
) -> None:
    """HTTP 503 on the upgrade counts as a failed attempt; once the server accepts, the link is live."""
    ws_server.reject_status = 503
    rws = make(ws_server.url, ws_client, ws_recorder, fake_time)
    rws.start()
    await ws_recorder.wait_for(lambda: len(ws_recorder.of_kind("backoff")) >= 2)
    ws_server.reject_status = None
    await rws.wait_live()
    error = ws_recorder.of_kind("backoff")[0].error
    assert isinstance(error, TransportError)
    assert error.status == 503
    await rws.close()


@pytest.mark.parametrize(("healthy_after", "expected"), [(0.0, [0.0, 0.0, 0.0]), (1e9, [0.0, 0.5, 1.0])])
async def test_a_healthy_link_resets_the_backoff_sequence(
    ws_server: ScriptedWsServer,
    ws_client: WsClient,
    ws_recorder: Recorder,
    fake_time: FakeTime,
    healthy_after: float,
    expected: list[float],
) -> None:
    """Links that stayed up healthy_after seconds restart the sequence (immediate retry each time);
    links that did not continue it."""
    ws_server.script = sender("hi", then_drop=True)
    rws = make(ws_server.url, ws_client, ws_recorder, fake_time, healthy_after=healthy_after)
    rws.start()
    await ws_recorder.wait_for(lambda: len(ws_recorder.of_kind("backoff")) >= 3)
    await rws.close()
    assert fake_time.sleeps[:3] == expected


async def test_idle_link_is_replaced(
    ws_server: ScriptedWsServer, ws_client: WsClient, ws_recorder: Recorder, fake_time: FakeTime
) -> None:
    """No frame for idle_timeout seconds: the link is closed, reported idle, and a new one subscribes."""
    rws = make(ws_server.url, ws_client, ws_recorder, fake_time, idle_timeout=0.2)
    async with rws:
        second = await ws_server.wait_peers(2)
        await ws_server.wait_received(second, 1)
        assert second.received == [SUBSCRIBE]
        (idle, *_) = ws_recorder.of_kind("idle")
        assert idle.silent_for is not None
        assert idle.silent_for >= 0.2
        assert rws.stats().idle_timeouts >= 1
        await ws_server.peers[0].ended.wait()


async def test_frames_keep_an_idle_check_quiet(
    ws_server: ScriptedWsServer, ws_client: WsClient, ws_recorder: Recorder, fake_time: FakeTime
) -> None:
    """A link that keeps delivering frames is never reported idle."""

    async def chatter(peer: Peer) -> None:
        for i in range(40):  # 40 x 25 ms: the link lives twice the idle timeout, never silent for long
            await peer.send(f"tick {i}")
            await asyncio.sleep(0.025)  # the server's pace, not a test wait
        await asyncio.Event().wait()

    ws_server.script = chatter
    async with make(ws_server.url, ws_client, ws_recorder, fake_time, idle_timeout=0.5):
        await ws_recorder.wait_for(lambda: len(ws_recorder.frames) == 40)
        assert "idle" not in ws_recorder.kinds()
        assert len(ws_server.peers) == 1


async def test_missing_pongs_drop_the_link(
    ws_server: ScriptedWsServer, ws_client: WsClient, ws_recorder: Recorder, fake_time: FakeTime
) -> None:
    """Protocol pings every ping_interval: a server that never answers them gets replaced."""
    ws_server.autoping = False
    async with make(ws_server.url, ws_client, ws_recorder, fake_time, ping_interval=0.1):
        await ws_recorder.wait_for(lambda: "dropped" in ws_recorder.kinds())
        assert isinstance(ws_recorder.of_kind("dropped")[0].error, TransportError)
        await ws_server.wait_peers(2)


async def test_keepalive_message_is_sent_periodically(
    ws_server: ScriptedWsServer, ws_client: WsClient, ws_recorder: Recorder, fake_time: FakeTime
) -> None:
    """keepalive="PING" every keepalive_interval seconds, after the subscription."""
    rws = make(ws_server.url, ws_client, ws_recorder, fake_time, keepalive="PING", keepalive_interval=0.05)
    async with rws:
        peer = await ws_server.wait_peers(1)
        received = await ws_server.wait_received(peer, 3)
        assert received[:3] == [SUBSCRIBE, "PING", "PING"]


async def test_resubscribe_sends_the_current_frame_once_paced(
    ws_server: ScriptedWsServer, ws_client: WsClient, ws_recorder: Recorder, fake_time: FakeTime
) -> None:
    """Three resubscribe() calls while the limiter makes the link wait: one frame, the newest, goes out."""
    current = ["A"]
    rws = ReconnectingWebSocket(
        ws_server.url,
        client=ws_client,
        subscription_frame=lambda: current[0],
        on_frame=ws_recorder.on_frame,
        on_event=ws_recorder.on_event,
        ping_interval=None,
        idle_timeout=None,
        message_limits=[(1, 10.0)],
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )
    async with rws:
        await rws.wait_live()
        for frame in ("B", "C", "D"):
            current[0] = frame
            rws.resubscribe()
        peer = ws_server.peers[0]
        await ws_server.wait_received(peer, 2)
        assert peer.received == ["A", "D"]
        assert fake_time.sleeps == [10.0]  # the second message waited for the 1-per-10 s limit
        assert rws.stats().messages_sent == 2


async def test_send_is_paced_and_needs_a_live_link(
    ws_server: ScriptedWsServer, ws_client: WsClient, ws_recorder: Recorder, fake_time: FakeTime
) -> None:
    """send() goes through the message limits; with no live link it raises TransportError."""
    rws = make(ws_server.url, ws_client, ws_recorder, fake_time, message_limits=[(2, 1.0)])
    with pytest.raises(TransportError):
        await rws.send("nothing to send on")
    async with rws:
        await rws.wait_live()
        await rws.send("one")
        await rws.send("two")
        peer = ws_server.peers[0]
        assert await ws_server.wait_received(peer, 3) == [SUBSCRIBE, "one", "two"]
        assert fake_time.sleeps == [1.0]  # subscription + one = 2 in the first second; "two" waited


async def test_each_new_link_starts_a_fresh_message_window(
    ws_server: ScriptedWsServer, ws_client: WsClient, ws_recorder: Recorder, fake_time: FakeTime
) -> None:
    """105 links in a row, each dropped right after its subscription, on Upbit's limits (5/s, 100/min per
    connection): every subscription goes out at once; the only waits are the immediate-retry backoffs."""
    links = 105  # past both the 5-per-second and the 100-per-minute window of one connection
    ws_server.script = sender(then_drop=True)
    rws = make(ws_server.url, ws_client, ws_recorder, fake_time, healthy_after=0.0)
    async with rws:
        await ws_server.wait_for(
            lambda: len(ws_server.peers) >= links and all(p.received for p in ws_server.peers[:links])
        )
        assert [peer.received for peer in ws_server.peers[:links]] == [[SUBSCRIBE]] * links
        sleeps = list(fake_time.sleeps)
    assert len(sleeps) >= links - 1
    assert set(sleeps) == {0.0}  # no pacing wait was ever requested
    assert fake_time.now == 1000.0  # hence the fake clock never moved


async def test_the_connect_limiter_still_paces_across_reconnects(
    ws_server: ScriptedWsServer, ws_client: WsClient, ws_recorder: Recorder, fake_time: FakeTime
) -> None:
    """A shared connect limiter (2 per second here) keeps counting over reconnects, unlike the message
    window: every second link waits for the next second; the drops retry at once."""
    ws_server.script = sender(then_drop=True)
    limiter = SlidingWindowLimiter([(2, 1.0)])
    rws = make(ws_server.url, ws_client, ws_recorder, fake_time, healthy_after=0.0, connect_limiter=limiter)
    async with rws:
        await ws_server.wait_for(lambda: len(ws_server.peers) >= 7)
        sleeps = fake_time.sleeps[:9]
    # link 1 and 2 at t=0; link 3 waits 1 s; link 4 at t=1; link 5 waits 1 s ... (0.0: a drop's backoff)
    assert sleeps == [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]


async def test_nothing_subscribed_sends_nothing(
    ws_server: ScriptedWsServer, ws_client: WsClient, ws_recorder: Recorder, fake_time: FakeTime
) -> None:
    """subscription_frame() returning None: the link comes up but no frame is sent (nor idle-checked)."""
    async with make(ws_server.url, ws_client, ws_recorder, fake_time, frame=None, idle_timeout=0.05) as rws:
        await rws.wait_live()
        await rws.send("probe")  # the first message the server gets is ours, not a subscription
        peer = ws_server.peers[0]
        assert await ws_server.wait_received(peer, 1) == ["probe"]
        assert rws.stats().messages_sent == 1


async def test_close_leaves_no_task_and_the_server_sees_the_close(
    ws_server: ScriptedWsServer, ws_client: WsClient, ws_recorder: Recorder, fake_time: FakeTime
) -> None:
    """close(): a close frame (1000) reaches the server, every task of ours is gone, the end is reported."""
    rws = make(ws_server.url, ws_client, ws_recorder, fake_time, keepalive="PING", idle_timeout=30.0)
    before = asyncio.all_tasks()
    rws.start()
    await rws.wait_live()
    peer = ws_server.peers[0]
    await rws.close()
    await peer.ended.wait()
    assert peer.close_code == 1000
    assert our_tasks() == set()
    await ws_server.stop()  # ends the server's own tasks: what is left would be the client's
    assert asyncio.all_tasks() - before == set()
    assert ws_recorder.kinds()[-1] == "closed"
    assert ws_recorder.events[-1].error is None
    assert rws.closed
    assert not rws.live
    await rws.close()  # idempotent
    assert ws_recorder.kinds().count("closed") == 1


async def test_a_default_client_is_owned_and_closed_with_the_connection(
    ws_server: ScriptedWsServer, ws_recorder: Recorder
) -> None:
    """Without a client argument, the connection makes an aiohttp client and closes its session on close()."""
    rws = ReconnectingWebSocket(
        ws_server.url, subscription_frame=lambda: SUBSCRIBE, on_frame=ws_recorder.on_frame, ping_interval=None
    )
    client = rws.client
    assert isinstance(client, AiohttpWsClient)
    async with rws:
        await rws.wait_live()
        assert not client.closed
    assert client.closed
    assert our_tasks() == set()


async def test_close_during_backoff_stops_at_once(
    refused_url: str, ws_client: WsClient, ws_recorder: Recorder
) -> None:
    """Closing while waiting out a (real, long) backoff delay ends everything without waiting it out."""
    slow = BackoffPolicy(initial=3600.0, multiplier=1.0, max_delay=3600.0, jitter=0.0)
    rws = ReconnectingWebSocket(
        refused_url,
        client=ws_client,
        subscription_frame=lambda: SUBSCRIBE,
        on_frame=ws_recorder.on_frame,
        on_event=ws_recorder.on_event,
        backoff=slow,
    )
    rws.start()
    await ws_recorder.wait_for(lambda: "backoff" in ws_recorder.kinds())
    await rws.close()
    assert our_tasks() == set()
    assert ws_recorder.kinds()[-1] == "closed"


async def test_close_before_the_task_ran_still_ends_cleanly(
    ws_client: WsClient, ws_recorder: Recorder
) -> None:
    """start() then close() at once: the connection ends, reports closed, and wait_closed returns."""
    rws = ReconnectingWebSocket(
        "ws://127.0.0.1:9/never",
        client=ws_client,
        subscription_frame=lambda: None,
        on_frame=ws_recorder.on_frame,
        on_event=ws_recorder.on_event,
    )
    rws.start()
    await rws.close()
    await rws.wait_closed()
    assert ws_recorder.kinds() == ["closed"]
    with pytest.raises(ConfigError):
        rws.start()


async def test_on_frame_errors_are_reported_and_the_stream_goes_on(
    ws_server: ScriptedWsServer, ws_client: WsClient, ws_recorder: Recorder, fake_time: FakeTime
) -> None:
    """An exception in on_frame goes to the loop's exception handler; later frames still arrive."""
    ws_server.script = sender("bad", "good")
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))

    def on_frame(data: str | bytes) -> None:
        if data == "bad":
            raise ValueError("cannot decode")
        ws_recorder.on_frame(data)

    rws = ReconnectingWebSocket(
        ws_server.url,
        client=ws_client,
        subscription_frame=lambda: SUBSCRIBE,
        on_frame=on_frame,
        ping_interval=None,
        sleep=fake_time.sleep,
    )
    try:
        async with rws:
            await ws_recorder.wait_for(lambda: ws_recorder.frames == ["good"])
    finally:
        loop.set_exception_handler(previous)
    assert [type(context["exception"]) for context in reported] == [ValueError]
    assert rws.stats().callback_errors == 1
    assert rws.stats().frames == 2
    assert len(ws_server.peers) == 1  # the link was not dropped for it


async def test_wait_live_raises_when_it_gives_up_first(
    refused_url: str, ws_client: WsClient, ws_recorder: Recorder, fake_time: FakeTime
) -> None:
    """wait_live() raises the terminal GaveUp when no link ever came up."""
    rws = make(refused_url, ws_client, ws_recorder, fake_time, max_failures=2)
    rws.start()
    with pytest.raises(GaveUp):
        await rws.wait_live()


async def test_several_connections_share_one_client(
    ws_server: ScriptedWsServer, ws_client: WsClient, ws_recorder: Recorder, fake_time: FakeTime
) -> None:
    """Three connections on one client each send their own subscription and all close cleanly."""
    connections = [
        ReconnectingWebSocket(
            ws_server.url,
            client=ws_client,
            subscription_frame=lambda i=i: f"sub {i}",  # type: ignore[misc]
            on_frame=ws_recorder.on_frame,
            ping_interval=None,
            sleep=fake_time.sleep,
        )
        for i in range(3)
    ]
    for connection in connections:
        connection.start()
    await asyncio.gather(*(connection.wait_live() for connection in connections))
    await ws_server.wait_for(lambda: all(peer.received for peer in ws_server.peers))
    assert sorted(peer.received[0] for peer in ws_server.peers) == ["sub 0", "sub 1", "sub 2"]
    await asyncio.gather(*(connection.close() for connection in connections))
    await ws_server.wait_for(lambda: all(peer.ended.is_set() for peer in ws_server.peers))
    assert [peer.close_code for peer in ws_server.peers] == [1000, 1000, 1000]
    assert our_tasks() == set()


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"max_failures": 0}, "max_failures"),
        ({"window": 0}, "window"),
        ({"idle_timeout": -1.0}, "idle_timeout"),
        ({"ping_interval": 0}, "ping_interval"),
        ({"healthy_after": -1}, "healthy_after"),
        ({"keepalive": 5}, "keepalive"),
        ({"message_limits": []}, "limit"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any], fragment: str) -> None:
    """Invalid options fail at construction, naming the option."""
    with pytest.raises(ConfigError, match=fragment):
        ReconnectingWebSocket(
            "ws://127.0.0.1:1/ws", subscription_frame=lambda: None, on_frame=lambda _: None, **options
        )


def test_url_must_be_a_websocket_url() -> None:
    """An http:// URL is a ConfigError."""
    with pytest.raises(ConfigError, match="ws://"):
        ReconnectingWebSocket("http://127.0.0.1/ws", subscription_frame=lambda: None, on_frame=lambda _: None)
