"""Request frames: build_subscribe and build_list_subscriptions against Upbit's documented frames.

``client/ws_subscribe_requests.jsonl`` holds frames from Upbit's docs and a 2026 probe; each is rebuilt
from Subscription objects and compared as JSON (key order inside an object does not matter to Upbit).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from rxmarket.errors import ConfigError
from rxmarket.exchanges.upbit import protocol
from rxmarket.exchanges.upbit.protocol import Subscription, UpbitProtocolConfig

DATA = Path(__file__).resolve().parent.parent / "data" / "upbit"
REQUESTS = [
    json.loads(line)
    for line in (DATA / "client" / "ws_subscribe_requests.jsonl").read_bytes().splitlines()
    if line.strip()
]

S = Subscription
BTC_BCH = ("KRW-BTC", "BTC-BCH")
SEVEN = ("KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-USDS", "BTC-ETH", "USDT-BTC", "BTC-BERA")

# One builder call per fixture line, in file order: (subscriptions or "list", format).
CALLS: list[tuple[list[Subscription] | str, str | None]] = [
    ([S("ticker", ("KRW-BTC",))], None),
    ([S("trade", BTC_BCH), S("orderbook", BTC_BCH)], "SIMPLE"),
    (
        [S("orderbook", ("KRW-BTC",), level=10000), S("orderbook", ("KRW-ETH",), depth=5, level=10000)],
        "DEFAULT",
    ),
    ([S("orderbook", ("KRW-BTC",), level=10000), S("orderbook", ("KRW-BTT",), level=0)], "DEFAULT"),
    ([S("ticker", ("KRW-BTC", "KRW-ETH"))], "SIMPLE_LIST"),
    ([S("candle.1s", ("KRW-BTC",))], None),
    ("list", None),
    ([S("orderbook", SEVEN), S("ticker", ("KRW-BTC",)), S("trade", ("KRW-BTC",))], "DEFAULT"),
]


def test_every_fixture_frame_has_a_call() -> None:
    """The table below covers each line of the fixture file, no more, no less."""
    assert len(CALLS) == len(REQUESTS) == 8


@pytest.mark.parametrize(("index", "call"), list(enumerate(CALLS)))
def test_rebuilds_documented_frames(index: int, call: tuple[list[Subscription] | str, str | None]) -> None:
    """Each documented request frame is what the builder makes from the same subscriptions."""
    expected = REQUESTS[index]
    ticket = expected[0]["ticket"]
    subs, fmt = call
    if subs == "list":
        built = protocol.build_list_subscriptions(ticket, format=fmt)
    else:
        assert isinstance(subs, list)
        built = protocol.build_subscribe(subs, ticket=ticket, format=fmt)
    assert isinstance(built, bytes)
    assert json.loads(built) == expected


def build(*subs: Subscription, **kwargs: Any) -> list[dict[str, Any]]:
    value = json.loads(protocol.build_subscribe(subs, ticket="t", **kwargs))
    assert isinstance(value, list)
    return value


def test_frame_shape_ticket_first_format_last() -> None:
    """One frame: the ticket object first, the format object last, type objects between."""
    frame = build(S("ticker", ("KRW-BTC",)), S("trade", ("KRW-ETH",)), format="SIMPLE")
    assert frame[0] == {"ticket": "t"}
    assert frame[-1] == {"format": "SIMPLE"}
    assert [o["type"] for o in frame[1:-1]] == ["ticker", "trade"]


def test_default_ticket_is_a_fresh_uuid4() -> None:
    """Without a ticket each frame gets a new UUID4."""
    a, b = (json.loads(protocol.build_subscribe([S("ticker", ("KRW-BTC",))]))[0]["ticket"] for _ in range(2))
    assert a != b
    assert uuid.UUID(a).version == 4


def test_same_channel_merges_into_one_object() -> None:
    """Two subscriptions to one channel share one type object; codes keep first-seen order, no duplicates."""
    frame = build(S("ticker", ("KRW-BTC", "KRW-ETH")), S("ticker", ("krw-eth", " KRW-XRP ")))
    assert frame[1:-1] == [{"type": "ticker", "codes": ["KRW-BTC", "KRW-ETH", "KRW-XRP"]}]


def test_codes_are_upper_cased() -> None:
    """Lower-case codes (ignored by Upbit's WebSocket) are sent upper-case."""
    assert build(S("trade", ("krw-btc",)))[1]["codes"] == ["KRW-BTC"]


def test_depth_suffix_and_deepest_wins() -> None:
    """Depth is the ``.n`` suffix; one code asked at 5 and 15 gets 15; asked without depth gets none (30)."""
    frame = build(
        S("orderbook", ("KRW-BTC", "KRW-ETH"), depth=5),
        S("orderbook", ("KRW-BTC",), depth=15),
        S("orderbook", ("KRW-ETH",)),
    )
    assert frame[1]["codes"] == ["KRW-BTC.15", "KRW-ETH"]


def test_different_levels_stay_separate_objects() -> None:
    """Orderbook subscriptions with different levels are separate type objects (as in the docs)."""
    frame = build(S("orderbook", ("KRW-BTC",), level=10000), S("orderbook", ("KRW-ETH",)))
    assert frame[1:-1] == [
        {"type": "orderbook", "codes": ["KRW-BTC"], "level": 10000},
        {"type": "orderbook", "codes": ["KRW-ETH"]},
    ]


def test_flags_snake_case_by_default() -> None:
    """Flags are sent only when set, spelled ``is_only_snapshot``/``is_only_realtime`` by default."""
    frame = build(S("ticker", ("KRW-BTC",), only_snapshot=True), S("trade", ("KRW-BTC",), only_realtime=True))
    assert frame[1] == {"type": "ticker", "codes": ["KRW-BTC"], "is_only_snapshot": True}
    assert frame[2] == {"type": "trade", "codes": ["KRW-BTC"], "is_only_realtime": True}


def test_flags_camel_case_when_configured() -> None:
    """The older camelCase spelling is one config field away."""
    config = UpbitProtocolConfig(subscribe_flag_style="camelCase")
    frame = build(S("ticker", ("KRW-BTC",), only_snapshot=True), S("trade", ("KRW-BTC",), only_realtime=True),
                  config=config)
    assert frame[1]["isOnlySnapshot"] is True
    assert frame[2]["isOnlyRealtime"] is True
    assert "is_only_snapshot" not in frame[1]


def test_list_subscriptions_frame() -> None:
    """LIST_SUBSCRIPTIONS is ticket, method, format."""
    frame = json.loads(protocol.build_list_subscriptions("abc", format="SIMPLE"))
    assert frame == [{"ticket": "abc"}, {"method": "LIST_SUBSCRIPTIONS"}, {"format": "SIMPLE"}]


@pytest.mark.parametrize(
    ("subs", "needle"),
    [
        ([], "at least one"),
        ([S("tickers", ("KRW-BTC",))], "unknown channel"),
        ([S("candle.2m", ("KRW-BTC",))], "unknown channel"),
        ([S("ticker", ())], "non-empty"),
        ([S("ticker", "KRW-BTC")], "non-empty"),  # type: ignore[arg-type]  # a str is the mistake tested
        ([S("ticker", ("BTC",))], "QUOTE-BASE"),
        ([S("orderbook", ("KRW-BTC.15",))], "depth="),
        ([S("orderbook", ("KRW-BTC",), depth=10)], "depth"),
        ([S("orderbook", ("KRW-BTC",), depth=True)], "depth"),  # type: ignore[arg-type]  # bool is not a depth
        ([S("ticker", ("KRW-BTC",), depth=5)], "orderbook channel only"),
        ([S("trade", ("KRW-BTC",), level=0)], "orderbook channel only"),
        ([S("orderbook", ("KRW-BTC",), level=-1)], "level"),
        ([S("ticker", ("KRW-BTC",), only_snapshot=True, only_realtime=True)], "choose one"),
        (["ticker"], "Subscription"),
    ],
)
def test_bad_subscriptions_are_config_errors(subs: list[Any], needle: str) -> None:
    """What Upbit would reject (closing the socket) or silently ignore is refused up front."""
    with pytest.raises(ConfigError, match=needle):
        protocol.build_subscribe(subs, ticket="t")


@pytest.mark.parametrize(("ticket", "fmt"), [("", "DEFAULT"), ("t", "simple"), ("t", "XML")])
def test_bad_ticket_or_format_is_config_error(ticket: str, fmt: str) -> None:
    """An empty ticket or an unknown format is refused by both builders."""
    with pytest.raises(ConfigError):
        protocol.build_subscribe([S("ticker", ("KRW-BTC",))], ticket=ticket, format=fmt)
    with pytest.raises(ConfigError):
        protocol.build_list_subscriptions(ticket, format=fmt)
