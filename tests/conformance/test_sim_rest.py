"""The simulator's REST API against Upbit's captured bodies, errors and headers (plain aiohttp client)."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import aiohttp
import pytest

from rxmarket.sim import UpbitSimulator

from ._helpers import fixture, fixture_lines, get_json

Sim = UpbitSimulator
Http = aiohttp.ClientSession
REMAINING_REQ = re.compile(r"^group=([a-z\-]+); min=([0-9]+); sec=([0-9]+)$")


def keys(obj: dict[str, Any]) -> list[str]:
    return list(obj.keys())


def candle_start_ms(candle: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(candle["candle_date_time_utc"]).replace(tzinfo=UTC).timestamp() * 1000)


async def test_market_all_lists_krw_codes_first_in_fixture_shape(sim: Sim, http: Http) -> None:
    """/market/all lists every market with exactly the captured keys, KRW-BTC, KRW-ETH, KRW-XRP first."""
    status, body, _ = await get_json(http, f"{sim.rest_url}/market/all")
    assert status == 200
    assert [m["market"] for m in body[:3]] == ["KRW-BTC", "KRW-ETH", "KRW-XRP"]
    assert len(body) == 5 + 2
    assert all(keys(m) == keys(fixture("rest_markets.json")[0]) for m in body)


async def test_market_all_details_match_the_2026_capture(sim: Sim, http: Http) -> None:
    """is_details=true adds market_event with the captured warning/caution keys."""
    want = fixture("rest_markets_details_2026.json")[0]
    _, body, _ = await get_json(http, f"{sim.rest_url}/market/all?is_details=true")
    for market in body:
        assert keys(market) == keys(want)
        assert keys(market["market_event"]) == keys(want["market_event"])
        assert keys(market["market_event"]["caution"]) == keys(want["market_event"]["caution"])


async def test_ticker_has_the_2026_capture_keys_in_order(sim: Sim, http: Http) -> None:
    """/ticker answers one item per code with the 2026 capture's keys, in its order."""
    status, body, _ = await get_json(http, f"{sim.rest_url}/ticker?markets=KRW-BTC,KRW-ETH")
    assert status == 200
    assert [t["market"] for t in body] == ["KRW-BTC", "KRW-ETH"]
    assert keys(body[0]) == keys(fixture("rest_ticker_2026.json")[0])


async def test_ticker_accepts_lower_case_codes(sim: Sim, http: Http) -> None:
    """REST accepts lower-case codes (unlike the WebSocket) and answers with the upper-case code."""
    status, body, _ = await get_json(http, f"{sim.rest_url}/ticker?markets=krw-btc")
    assert status == 200
    assert body[0]["market"] == "KRW-BTC"


async def test_ticker_change_fields_agree(sim: Sim, http: Http) -> None:
    """change/change_price/signed_change_price/change_rate agree with trade_price and prev_closing_price."""
    sim.step(20, "KRW-BTC")
    _, (ticker,), _ = await get_json(http, f"{sim.rest_url}/ticker?markets=KRW-BTC")
    diff = ticker["trade_price"] - ticker["prev_closing_price"]
    assert ticker["signed_change_price"] == pytest.approx(diff)
    assert ticker["change_price"] == pytest.approx(abs(diff))
    assert ticker["change"] == ("RISE" if diff > 0 else "FALL" if diff < 0 else "EVEN")
    assert ticker["signed_change_rate"] == pytest.approx(diff / ticker["prev_closing_price"], abs=1e-9)
    assert ticker["low_price"] <= ticker["trade_price"] <= ticker["high_price"]


async def test_ticker_all_filters_by_quote(sim: Sim, http: Http) -> None:
    """/ticker/all?quote_currencies=BTC,USDT answers the non-KRW markets only."""
    _, body, _ = await get_json(http, f"{sim.rest_url}/ticker/all?quote_currencies=BTC,USDT")
    assert sorted(t["market"] for t in body) == ["BTC-ETH", "USDT-BTC"]


async def test_ticker_follows_the_last_trade(sim: Sim, http: Http) -> None:
    """A trade moves the ticker: its price, size and time become the ticker's; day volume grows by it."""
    _, (before,), _ = await get_json(http, f"{sim.rest_url}/ticker?markets=KRW-ETH")
    (trade,) = sim.step(1, "KRW-ETH")
    _, (after,), _ = await get_json(http, f"{sim.rest_url}/ticker?markets=KRW-ETH")
    assert after["trade_price"] == trade.price
    assert after["trade_volume"] == trade.volume
    assert after["trade_timestamp"] == trade.timestamp
    assert after["acc_trade_volume"] == pytest.approx(before["acc_trade_volume"] + trade.volume)


async def test_orderbook_matches_capture_and_is_never_crossed(sim: Sim, http: Http) -> None:
    """/orderbook: captured keys, 30 units, asks ascending, bids descending, best bid below best ask."""
    want = fixture("rest_orderbook_2023.json")[0]
    _, (book,), _ = await get_json(http, f"{sim.rest_url}/orderbook?markets=KRW-BTC")
    assert keys(book) == keys(want)
    assert all(keys(u) == keys(want["orderbook_units"][0]) for u in book["orderbook_units"])
    units = book["orderbook_units"]
    asks, bids = [u["ask_price"] for u in units], [u["bid_price"] for u in units]
    assert len(units) == 30
    assert asks == sorted(asks)
    assert bids == sorted(bids, reverse=True)
    assert bids[0] < asks[0]
    assert book["total_ask_size"] == pytest.approx(sum(u["ask_size"] for u in units))
    assert book["level"] == 0


@pytest.mark.parametrize(("count", "units"), [("5", 5), ("1", 1), ("30", 30), ("99", 30)])
async def test_orderbook_count_is_clamped_to_30(
    sim: Sim, http: Http, count: str, units: int
) -> None:
    """count picks the depth; anything above 30 gets 30."""
    _, (book,), _ = await get_json(http, f"{sim.rest_url}/orderbook?markets=KRW-BTC&count={count}")
    assert len(book["orderbook_units"]) == units


async def test_orderbook_level_on_non_krw_market_is_empty(sim: Sim, http: Http) -> None:
    """level on a BTC- market answers 200 with []."""
    status, body, _ = await get_json(http, f"{sim.rest_url}/orderbook?markets=BTC-ETH&level=10000")
    assert (status, body) == (200, [])


async def test_orderbook_level_groups_prices(sim: Sim, http: Http) -> None:
    """level=100000 on KRW-BTC gives prices on multiples of the level, still uncrossed."""
    _, (book,), _ = await get_json(http, f"{sim.rest_url}/orderbook?markets=KRW-BTC&level=100000&count=5")
    units = book["orderbook_units"]
    assert book["level"] == 100000
    assert all(u["ask_price"] % 100000 == 0 and u["bid_price"] % 100000 == 0 for u in units)
    assert units[0]["bid_price"] < units[0]["ask_price"]


async def test_orderbook_instruments_match_capture(sim: Sim, http: Http) -> None:
    """/orderbook/instruments: captured keys; KRW-BTC's tick is 1000 with the captured levels."""
    want = fixture("rest_orderbook_instruments.json")[0]
    _, (item,), _ = await get_json(http, f"{sim.rest_url}/orderbook/instruments?markets=KRW-BTC")
    assert keys(item) == keys(want)
    assert item["tick_size"] == want["tick_size"]
    assert item["supported_levels"] == want["supported_levels"]


@pytest.mark.parametrize("case", fixture_lines("http/rest_error_responses.jsonl"), ids=lambda c: c["request"])
async def test_error_answers_match_the_probe_log(
    sim: Sim, http: Http, case: dict[str, Any]
) -> None:
    """Each error the 2026 probe recorded comes back with the same status and body."""
    path = case["request"].removeprefix("GET /v1")
    status, body, headers = await get_json(http, sim.rest_url + path)
    assert status == case["http_status"]
    assert body == case["body"]
    # An unrouted path carries no Remaining-Req; a routed one always does.
    assert ("Remaining-Req" in headers) == (body["error"]["name"] != "not_found")


@pytest.mark.parametrize(
    ("path", "group"),
    [
        ("/market/all", "market"),
        ("/ticker?markets=KRW-BTC", "ticker"),
        ("/orderbook?markets=KRW-BTC", "orderbook"),
        ("/trades/ticks?market=KRW-BTC", "crix-trades"),
        ("/candles/minutes/1?market=KRW-BTC", "candles"),
        ("/candles/days?market=KRW-BTC", "candles"),
    ],
)
async def test_remaining_req_names_the_group_and_counts_down(
    sim: Sim, http: Http, path: str, group: str
) -> None:
    """Remaining-Req has Upbit's format and group name; sec drops by one per request in the second."""
    _, _, first = await get_json(http, sim.rest_url + path)
    _, _, second = await get_json(http, sim.rest_url + path)
    a, b = REMAINING_REQ.match(first["Remaining-Req"]), REMAINING_REQ.match(second["Remaining-Req"])
    assert a is not None
    assert b is not None
    assert a.group(1) == b.group(1) == group
    assert int(b.group(3)) == int(a.group(3)) - 1
    assert first["limit-by-ip"] == "Yes"


async def test_trades_have_the_2026_capture_keys(sim: Sim, http: Http) -> None:
    """/trades/ticks items carry the 2026 capture's keys in order; count defaults to 1."""
    _, body, _ = await get_json(http, f"{sim.rest_url}/trades/ticks?market=KRW-BTC")
    assert len(body) == 1
    assert keys(body[0]) == keys(fixture("rest_trades_2026.json")[0])


async def test_trade_change_price_is_signed_over_rest(sim: Sim, http: Http) -> None:
    """REST change_price is trade_price - prev_closing_price, sign included."""
    sim.step(30, "KRW-XRP")
    _, body, _ = await get_json(http, f"{sim.rest_url}/trades/ticks?market=KRW-XRP&count=30")
    for tick in body:
        assert tick["change_price"] == pytest.approx(tick["trade_price"] - tick["prev_closing_price"])


async def test_trades_page_backwards_with_cursor(sim: Sim, http: Http) -> None:
    """Paging with cursor=<oldest sequential_id> walks back through every trade once, newest first."""
    made = sim.step(45, "KRW-BTC")
    seen: list[int] = []
    url = f"{sim.rest_url}/trades/ticks?market=KRW-BTC&count=10"
    _, page, _ = await get_json(http, url)
    while len(seen) < 45:
        seen.extend(t["sequential_id"] for t in page)
        _, page, _ = await get_json(http, f"{url}&cursor={page[-1]['sequential_id']}")
    assert seen[:45] == [t.sequential_id for t in reversed(made)]
    assert all(a > b for a, b in pairwise(seen))


async def test_trades_to_is_an_exclusive_time_bound(sim: Sim, http: Http) -> None:
    """to=HHmmss returns only trades before that second of the day, newest first."""
    made = sim.step(20, "KRW-SOL")
    cut = made[-1].timestamp // 1000 * 1000
    to = datetime.fromtimestamp(cut / 1000, UTC).strftime("%H%M%S")
    _, body, _ = await get_json(http, f"{sim.rest_url}/trades/ticks?market=KRW-SOL&count=50&to={to}")
    assert body, "prefilled history guarantees older trades"
    assert all(t["timestamp"] < cut for t in body)


async def test_trades_sequential_ids_strictly_increase(sim: Sim, http: Http) -> None:
    """sequential_id grows strictly with every trade of a market (timestamp * 10000 + n)."""
    made = sim.step(300, "KRW-ETH")
    ids = [t.sequential_id for t in made]
    assert all(a < b for a, b in pairwise(ids))
    assert all(t.sequential_id // 10_000 >= t.timestamp for t in made)


@pytest.mark.parametrize(
    ("path", "capture"),
    [
        ("/candles/seconds", "rest_candles_seconds_2024.json"),
        ("/candles/minutes/1", "rest_candles_minutes_2021.json"),
        ("/candles/minutes/240", "rest_candles_minutes_2021.json"),
        ("/candles/days", "rest_candles_days_2021.json"),
        ("/candles/weeks", "rest_candles_weeks_2021.json"),
        ("/candles/months", "rest_candles_months_2021.json"),
        ("/candles/years", "rest_candles_years_2026.json"),
    ],
)
async def test_candles_have_the_captured_keys(
    sim: Sim, http: Http, path: str, capture: str
) -> None:
    """Every candle endpoint answers with its capture's keys, in order."""
    sim.step(3, "KRW-BTC")
    status, body, _ = await get_json(http, f"{sim.rest_url}{path}?market=KRW-BTC&count=3")
    assert status == 200
    assert body
    assert all(keys(c) == keys(fixture(capture)[0]) for c in body)


async def test_minute_candles_carry_their_unit(sim: Sim, http: Http) -> None:
    """/candles/minutes/{unit} sets unit and aligns candle starts to it."""
    _, body, _ = await get_json(http, f"{sim.rest_url}/candles/minutes/15?market=KRW-BTC&count=20")
    assert {c["unit"] for c in body} == {15}
    assert all(candle_start_ms(c) % (15 * 60_000) == 0 for c in body)


async def test_days_converted_price_only_when_asked(sim: Sim, http: Http) -> None:
    """converting_price_unit=KRW adds converted_trade_price (the 2023 capture's keys); without it, absent."""
    _, plain, _ = await get_json(http, f"{sim.rest_url}/candles/days?market=USDT-BTC")
    url = f"{sim.rest_url}/candles/days?market=USDT-BTC"
    _, converted, _ = await get_json(http, f"{url}&converting_price_unit=KRW")
    assert "converted_trade_price" not in plain[0]
    assert keys(converted[0]) == keys(fixture("rest_candles_days_converted_2023.json")[0])
    assert converted[0]["converted_trade_price"] > converted[0]["trade_price"]


async def test_day_candles_chain_prev_close(sim: Sim, http: Http) -> None:
    """A day's prev_closing_price is the previous day's close; change_price is the signed difference."""
    _, days, _ = await get_json(http, f"{sim.rest_url}/candles/days?market=KRW-ETH&count=10")
    for newer, older in pairwise(days):
        assert newer["prev_closing_price"] == older["trade_price"]
        assert newer["change_price"] == pytest.approx(newer["trade_price"] - older["trade_price"])


async def test_candles_page_backwards_with_exclusive_to(sim: Sim, http: Http) -> None:
    """Candles come newest first; to=<oldest start> returns the page strictly before it, count <= 200."""
    url = f"{sim.rest_url}/candles/minutes/1?market=KRW-BTC&count=500"
    _, first, _ = await get_json(http, url)
    assert len(first) == 200
    starts = [candle_start_ms(c) for c in first]
    assert all(a > b for a, b in pairwise(starts))
    _, second, _ = await get_json(http, f"{url}&to={first[-1]['candle_date_time_utc']}")
    assert candle_start_ms(second[0]) < starts[-1]
    _, same, _ = await get_json(http, f"{url}&to={first[-1]['candle_date_time_utc']}Z")
    assert same == second


async def test_minute_history_has_gaps(sim: Sim, http: Http) -> None:
    """Generated minute history skips minutes where nothing traded, as Upbit's series do."""
    _, body, _ = await get_json(http, f"{sim.rest_url}/candles/minutes/1?market=KRW-BTC&count=200")
    starts = [candle_start_ms(c) for c in body]
    steps = {a - b for a, b in pairwise(starts)}
    assert 60_000 in steps
    assert any(step > 60_000 for step in steps)


async def test_candles_before_history_are_empty(sim: Sim, http: Http) -> None:
    """Asking before the generated history answers []."""
    status, body, _ = await get_json(
        http, f"{sim.rest_url}/candles/minutes/1?market=KRW-BTC&to=2001-01-01T00:00:00"
    )
    assert (status, body) == (200, [])


async def test_second_candles_aggregate_the_trades(sim: Sim, http: Http) -> None:
    """Each 1-second candle is the OHLCV of the trades in its second (as /trades/ticks lists them)."""
    sim.step(120, "KRW-DOGE")
    _, trades, _ = await get_json(http, f"{sim.rest_url}/trades/ticks?market=KRW-DOGE&count=500")
    _, candles, _ = await get_json(http, f"{sim.rest_url}/candles/seconds?market=KRW-DOGE&count=200")
    by_second: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for trade in reversed(trades):  # oldest first
        by_second[trade["timestamp"] // 1000 * 1000].append(trade)
    assert candles
    for candle in candles:
        group = by_second[candle_start_ms(candle)]
        prices = [t["trade_price"] for t in group]
        assert candle["opening_price"] == prices[0]
        assert candle["trade_price"] == prices[-1]
        assert candle["high_price"] == max(prices)
        assert candle["low_price"] == min(prices)
        assert candle["candle_acc_trade_volume"] == pytest.approx(sum(t["trade_volume"] for t in group))
        assert candle["timestamp"] == group[-1]["timestamp"]


async def test_minute_candle_of_the_last_trade_aggregates_its_minute(
    sim: Sim, http: Http
) -> None:
    """The 1-minute candle holding the latest trade sums exactly the trades of that minute."""
    made = sim.step(60, "KRW-SOL")
    minute = made[-1].timestamp // 60_000 * 60_000
    to = datetime.fromtimestamp((minute + 60_000) / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    _, (candle,), _ = await get_json(http, f"{sim.rest_url}/candles/minutes/1?market=KRW-SOL&to={to}")
    _, trades, _ = await get_json(http, f"{sim.rest_url}/trades/ticks?market=KRW-SOL&count=500")
    inside = [t for t in trades if minute <= t["timestamp"] < minute + 60_000]
    assert candle_start_ms(candle) == minute
    assert candle["candle_acc_trade_volume"] == pytest.approx(sum(t["trade_volume"] for t in inside))
    assert candle["trade_price"] == made[-1].price


@pytest.mark.parametrize(
    "path",
    [
        "/candles/minutes/2?market=KRW-BTC",
        "/candles/days?market=KRW-BTC&to=yesterday",
        "/trades/ticks?market=KRW-BTC&days_ago=9",
        "/trades/ticks?market=KRW-BTC&to=25:00:00",
        "/market/all?is_details=maybe",
    ],
)
async def test_bad_parameters_are_400(sim: Sim, http: Http, path: str) -> None:
    """Malformed or out-of-range parameters answer 400 with an integer error name."""
    status, body, _ = await get_json(http, sim.rest_url + path)
    assert status == 400
    assert body["error"]["name"] == 400
    assert isinstance(body["error"]["message"], str)


async def test_missing_market_is_400(sim: Sim, http: Http) -> None:
    """A candle or trade call without market is Upbit's 400 missing-parameter error."""
    for path in ("/candles/minutes/1", "/trades/ticks", "/ticker"):
        status, body, _ = await get_json(http, sim.rest_url + path)
        assert status == 400
        assert body == fixture_lines("http/rest_error_responses.jsonl")[2]["body"]
