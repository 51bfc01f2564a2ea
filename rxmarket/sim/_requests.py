"""Parsing of client WebSocket requests (sans-I/O): a JSON array -> :class:`Request`, or an error code.

The request is ``[{"ticket": ...}, {type object}, ..., {"format": ...}]`` (``upbit-protocol.md`` section
4.2); an operation such as ``{"method": "LIST_SUBSCRIPTIONS"}`` may stand instead of the type objects.
Errors follow section 4.5: ``WRONG_FORMAT`` (not a JSON array of objects), ``NO_TICKET``, ``NO_TYPE``,
``NO_CODES`` and ``INVALID_PARAM`` (unknown type, method or format; empty codes; bad flags or level).
Unknown or lower-case codes are *not* errors: Upbit ignores them silently, and so does the hub.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from rxmarket.sim._wire import CANDLE_TYPES, ORDERBOOK_DEPTHS

__all__ = ["FORMATS", "TYPES", "Request", "RequestError", "Subscription", "parse_code", "parse_request"]

TYPES: Final = frozenset(("ticker", "trade", "orderbook", *CANDLE_TYPES))
FORMATS: Final = frozenset(("DEFAULT", "SIMPLE", "JSON_LIST", "SIMPLE_LIST"))
METHODS: Final = frozenset(("LIST_SUBSCRIPTIONS",))
_DECODE: Final = msgspec.json.Decoder().decode


class RequestError(Exception):
    """A request Upbit would answer with an error frame.

    Args:
        name: the error code for the frame.
        detail: the offending value (quoted in ``INVALID_PARAM`` messages).
    """

    def __init__(self, name: str, detail: str = "") -> None:
        super().__init__(f"{name}: {detail}" if detail else name)
        self.name = name
        self.detail = detail


class Subscription(msgspec.Struct, frozen=True, kw_only=True):
    """One type object of a request.

    Attributes:
        type: ``ticker``, ``trade``, ``orderbook`` or ``candle.<unit>``.
        codes: the codes as the client sent them (``KRW-BTC.15`` keeps its suffix).
        level: orderbook grouping step (0: none).
        only_snapshot: send the snapshot and nothing after it.
        only_realtime: send no snapshot.
    """

    type: str
    codes: tuple[str, ...]
    level: float = 0.0
    only_snapshot: bool = False
    only_realtime: bool = False


class Request(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed client request.

    Attributes:
        ticket: the client's ticket.
        subscriptions: the type objects (empty for a method call).
        method: ``LIST_SUBSCRIPTIONS`` or ``None``.
        format: ``DEFAULT``, ``SIMPLE``, ``JSON_LIST`` or ``SIMPLE_LIST``.
    """

    ticket: str
    subscriptions: tuple[Subscription, ...]
    method: str | None
    format: str


def _flag(obj: dict[str, Any], snake: str, camel: str, accept_camel: bool) -> bool:
    value = obj.get(snake)
    if value is None and accept_camel:
        value = obj.get(camel)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestError("INVALID_PARAM", snake)
    return value


def _subscription(obj: dict[str, Any], accept_camel: bool) -> Subscription:
    kind = obj.get("type")
    if kind is None:
        raise RequestError("NO_TYPE")
    if not isinstance(kind, str) or kind not in TYPES:
        raise RequestError("INVALID_PARAM", str(kind))
    if "codes" not in obj:
        raise RequestError("NO_CODES")
    codes = obj["codes"]
    if not isinstance(codes, list) or not codes or not all(isinstance(c, str) for c in codes):
        raise RequestError("INVALID_PARAM", "codes")
    level_raw = obj.get("level")
    level = 0.0
    if level_raw is not None:
        if kind != "orderbook" or isinstance(level_raw, bool) or not isinstance(level_raw, int | float | str):
            raise RequestError("INVALID_PARAM", "level")
        try:
            level = float(level_raw)
        except ValueError as exc:
            raise RequestError("INVALID_PARAM", "level") from exc
        if level < 0 or level != level:
            raise RequestError("INVALID_PARAM", "level")
    return Subscription(
        type=kind,
        codes=tuple(codes),
        level=level,
        only_snapshot=_flag(obj, "is_only_snapshot", "isOnlySnapshot", accept_camel),
        only_realtime=_flag(obj, "is_only_realtime", "isOnlyRealtime", accept_camel),
    )


def parse_request(raw: str | bytes, *, accept_camel: bool = True) -> Request:
    """Parse one client message.

    Args:
        raw: the message text or bytes.
        accept_camel: also read ``isOnlySnapshot``/``isOnlyRealtime``.

    Returns:
        The request.

    Raises:
        RequestError: the message is not a valid request (its ``name`` is the error frame's code).
    """
    try:
        items = _DECODE(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise RequestError("WRONG_FORMAT") from exc
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise RequestError("WRONG_FORMAT")
    ticket: str | None = None
    fmt = "DEFAULT"
    method: str | None = None
    subs: list[Subscription] = []
    type_objects: list[dict[str, Any]] = []
    for item in items:
        if "ticket" in item:
            value = item["ticket"]
            if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
                raise RequestError("NO_TICKET")
            ticket = str(value)
        elif "format" in item:
            value = item["format"]
            if not isinstance(value, str) or value not in FORMATS:
                raise RequestError("INVALID_PARAM", str(value))
            fmt = value
        elif "method" in item:
            value = item["method"]
            if not isinstance(value, str) or value not in METHODS:
                raise RequestError("INVALID_PARAM", str(value))
            method = value
        else:
            type_objects.append(item)
    if ticket is None:
        raise RequestError("NO_TICKET")
    if method is None:
        if not type_objects:
            raise RequestError("NO_TYPE")
        accept = accept_camel
        subs = [_subscription(obj, accept) for obj in type_objects]
    return Request(ticket=ticket, subscriptions=tuple(subs), method=method, format=fmt)


def parse_code(kind: str, code: str) -> tuple[str, int] | None:
    """Split ``KRW-BTC.15`` into the market code and the orderbook depth.

    Args:
        kind: the subscription type (only orderbooks take a ``.n`` suffix).
        code: the code as sent.

    Returns:
        ``(code, depth)``; depth is 30 unless an orderbook code asks for 1, 5, 15 or 30 (other numbers
        get 30, as since 2025-07-02). ``None`` for a code Upbit would ignore (lower case, bad suffix).
    """
    if code != code.upper():
        return None
    if kind != "orderbook" or "." not in code:
        return (code, 30) if "." not in code else None
    base, _, suffix = code.partition(".")
    if not suffix.isdigit():
        return None
    depth = int(suffix)
    return base, depth if depth in ORDERBOOK_DEPTHS else 30
