"""What the simulator counts, and the frozen snapshot tests assert against (``sim.stats``)."""

from __future__ import annotations

import msgspec

__all__ = ["ConnectionInfo", "Counters", "SimStats"]


class Counters:
    """Mutable counters, bumped on the hot paths (plain attributes: cheaper than a dict)."""

    __slots__ = (
        "bench_streams_done", "connections_rejected", "connections_total", "disconnects", "error_frames",
        "frames_corrupted",
        "frames_delayed", "frames_dropped", "frames_duplicated", "frames_reordered", "frames_sent",
        "idle_closes", "pings", "pongs", "rebind_error", "rebind_failures", "rest_by_group", "rest_by_status",
        "rest_requests", "slow_drops", "status_frames", "ws_messages",
    )

    def __init__(self) -> None:
        self.connections_total = 0
        self.connections_rejected = 0
        self.disconnects = 0
        self.idle_closes = 0
        self.slow_drops = 0
        self.ws_messages = 0
        self.frames_sent = 0
        self.frames_dropped = 0
        self.frames_corrupted = 0
        self.frames_duplicated = 0
        self.frames_reordered = 0
        self.frames_delayed = 0
        self.status_frames = 0
        self.error_frames = 0
        self.pings = 0
        self.pongs = 0
        self.rest_requests = 0
        self.rest_by_group: dict[str, int] = {}
        self.rest_by_status: dict[int, int] = {}
        self.bench_streams_done = 0
        self.rebind_failures = 0
        self.rebind_error: str | None = None


class ConnectionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One open WebSocket connection.

    Attributes:
        id: connection number (1, 2, ... in accept order).
        remote: the client's ``host:port``.
        ticket: the ticket of its last request (``None`` before any).
        format: ``DEFAULT``, ``SIMPLE``, ``JSON_LIST`` or ``SIMPLE_LIST``.
        subscriptions: per stream type, the codes it receives realtime frames for.
        requests: subscription/list requests it sent.
        frames_sent: data frames written to it.
    """

    id: int
    remote: str
    ticket: str | None
    format: str
    subscriptions: dict[str, tuple[str, ...]]
    requests: int
    frames_sent: int


class SimStats(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of the simulator's counters.

    Attributes:
        connections: WebSocket connections open now.
        connections_total: WebSocket connections accepted since start.
        connections_rejected: upgrades answered with an HTTP error (refuse, limits, ban, 5xx).
        open: the open connections, in accept order.
        ws_messages: client messages received (subscriptions, list requests; not ``PING``).
        frames_sent: data frames sent (snapshots, realtime, duplicates).
        frames_dropped: data frames swallowed by ``silence``.
        frames_corrupted: frames ``corrupt`` spoiled.
        frames_duplicated: extra copies ``duplicate`` sent.
        frames_reordered: frame pairs ``reorder`` swapped.
        frames_delayed: frames ``latency`` held back.
        status_frames: ``{"status":"UP"}`` frames sent.
        error_frames: error frames sent.
        pings: RFC 6455 pings received.
        pongs: pongs sent back.
        disconnects: sockets dropped by the ``disconnect`` fault.
        idle_closes: sockets dropped for idleness.
        slow_drops: sockets dropped because their queue overflowed.
        rest_requests: REST requests received (all outcomes).
        rest_by_group: REST requests per rate-limit group.
        rest_by_status: REST answers per HTTP status.
        trades: trades made since start (not counting the prefilled history).
        bench_streams_done: bench-mode streams that ran to their frame or time budget.
        listening: the listening socket is open (``False`` before start, after close, while a hard
            ``refuse`` holds it closed, and after a failed re-bind).
        rebind_failures: times the port could not be bound again when a hard ``refuse`` ended.
        rebind_error: the last such failure, e.g. ``OSError: [Errno 98] ... address already in use``
            (``None`` if none).
    """

    connections: int
    connections_total: int
    connections_rejected: int
    open: tuple[ConnectionInfo, ...]
    ws_messages: int
    frames_sent: int
    frames_dropped: int
    frames_corrupted: int
    frames_duplicated: int
    frames_reordered: int
    frames_delayed: int
    status_frames: int
    error_frames: int
    pings: int
    pongs: int
    disconnects: int
    idle_closes: int
    slow_drops: int
    rest_requests: int
    rest_by_group: dict[str, int]
    rest_by_status: dict[int, int]
    trades: int
    bench_streams_done: int = 0
    listening: bool = False
    rebind_failures: int = 0
    rebind_error: str | None = None

    def subscriptions(self, kind: str | None = None) -> list[dict[str, tuple[str, ...]]]:
        """Per open connection, its subscriptions (only ``kind`` if given)."""
        if kind is None:
            return [c.subscriptions for c in self.open]
        return [{kind: c.subscriptions[kind]} for c in self.open if kind in c.subscriptions]
