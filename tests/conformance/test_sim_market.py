"""The simulated market: deterministic from its seed, on the tick grid, never crossed, ids increasing."""

from __future__ import annotations

import re
from itertools import pairwise

import aiohttp
import pytest

from rxmarket.sim import UpbitSimulator

from ._helpers import fast_options, get_json, receive_many, subscribe

Http = aiohttp.ClientSession
FIXED_CLOCK = 1_785_397_260.0  # 2026-07-30T07:41:00Z, the day of the 2026 captures


def quiet(seed: int = 7, markets: int = 5) -> UpbitSimulator:
    options = fast_options()
    return UpbitSimulator(markets=markets, seed=seed, rate=0, options=options, clock=lambda: FIXED_CLOCK)


async def test_same_seed_same_market() -> None:
    """Two simulators with one seed (and one clock) make the same trades and the same history."""
    async with quiet(7) as a, quiet(7) as b, aiohttp.ClientSession() as http:
        assert a.step(200) == b.step(200)
        _, days_a, _ = await get_json(http, f"{a.rest_url}/candles/days?market=KRW-ETH&count=50")
        _, days_b, _ = await get_json(http, f"{b.rest_url}/candles/days?market=KRW-ETH&count=50")
    assert days_a == days_b


async def test_other_seed_other_market() -> None:
    """A different seed gives different prices."""
    async with quiet(7) as a, quiet(8) as b:
        prices_a = [t.price for t in a.step(50, "KRW-BTC")]
        prices_b = [t.price for t in b.step(50, "KRW-BTC")]
    assert prices_a != prices_b


async def test_prices_walk_on_the_tick_grid(sim: UpbitSimulator) -> None:
    """Trade prices move (a random walk) but stay positive and on KRW-BTC's 1000 KRW grid."""
    trades = sim.step(500, "KRW-BTC")
    prices = [t.price for t in trades]
    assert len(set(prices)) > 10
    assert all(p > 0 and p % 1000 == 0 for p in prices)


async def test_books_are_never_crossed_and_sorted(sim: UpbitSimulator, http: Http) -> None:
    """Over many trades every book has asks ascending, bids descending and best bid < best ask."""
    async with http.ws_connect(sim.ws_url) as ws:
        codes = ["KRW-BTC", "KRW-XRP", "KRW-DOGE"]
        await subscribe(ws, {"type": "orderbook", "codes": codes, "is_only_realtime": True})
        await sim.wait_subscribed(codes, "orderbook")
        for code in codes:
            sim.step(100, code)
        books = await receive_many(ws, 300)
    for book in books:
        units = book["orderbook_units"]
        asks = [u["ask_price"] for u in units]
        bids = [u["bid_price"] for u in units if u["bid_price"] > 0]
        assert asks == sorted(asks)
        assert bids == sorted(bids, reverse=True)
        assert bids[0] < asks[0]


async def test_trade_frames_carry_the_book_after_the_trade(sim: UpbitSimulator, http: Http) -> None:
    """A trade frame's best_* equal the best levels of the book frame that follows the same trade."""
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(
            ws,
            {"type": "trade", "codes": ["KRW-ETH"], "is_only_realtime": True},
            {"type": "orderbook", "codes": ["KRW-ETH"], "is_only_realtime": True},
        )
        await sim.wait_subscribed(["KRW-ETH"], "orderbook")
        sim.step(1, "KRW-ETH")
        trade, book = await receive_many(ws, 2)
    best = book["orderbook_units"][0]
    assert (trade["best_ask_price"], trade["best_bid_price"]) == (best["ask_price"], best["bid_price"])


async def test_sequential_ids_increase_per_market(sim: UpbitSimulator, http: Http) -> None:
    """Across markets traded in random order, each market's sequential_id strictly increases."""
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(ws, {"type": "trade", "codes": sim.markets, "is_only_realtime": True})
        await sim.wait_subscribed(sim.markets, "trade")
        sim.step(300)
        frames = await receive_many(ws, 300)
    per_market: dict[str, list[int]] = {}
    for frame in frames:
        per_market.setdefault(frame["code"], []).append(frame["sequential_id"])
    assert len(per_market) > 3
    assert all(a < b for ids in per_market.values() for a, b in pairwise(ids))


async def test_ticker_frames_follow_trade_frames(sim: UpbitSimulator, http: Http) -> None:
    """Each trade is followed by a ticker whose last trade it is."""
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(
            ws,
            {"type": "trade", "codes": ["KRW-BTC"], "is_only_realtime": True},
            {"type": "ticker", "codes": ["KRW-BTC"], "is_only_realtime": True},
        )
        await sim.wait_subscribed(["KRW-BTC"], "ticker")
        sim.step(5, "KRW-BTC")
        frames = await receive_many(ws, 10)
    for trade, ticker in zip(frames[::2], frames[1::2], strict=True):
        assert (trade["type"], ticker["type"]) == ("trade", "ticker")
        assert ticker["trade_price"] == trade["trade_price"]
        assert ticker["trade_timestamp"] == trade["trade_timestamp"]
        assert ticker["ask_bid"] == trade["ask_bid"]


async def test_candle_frames_follow_trades(sim: UpbitSimulator, http: Http) -> None:
    """candle.1s frames update with each trade: close is the last price, volume adds up."""
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(ws, {"type": "candle.1s", "codes": ["KRW-XRP"], "is_only_realtime": True})
        await sim.wait_subscribed(["KRW-XRP"], "candle.1s")
        made = sim.step(3, "KRW-XRP")
        frames = await receive_many(ws, 3)
    assert [f["trade_price"] for f in frames] == [t.price for t in made]
    same_second = [f for f in frames if f["candle_date_time_utc"] == frames[-1]["candle_date_time_utc"]]
    assert all(a["candle_acc_trade_volume"] < b["candle_acc_trade_volume"] for a, b in pairwise(same_second))


async def test_candle_frames_are_paced_once_a_second(http: Http) -> None:
    """With candle pacing on (Upbit: one per second) a burst of trades gives one candle frame, not three."""
    sim = UpbitSimulator(markets=2, rate=0, options=fast_options(candle_interval=60.0))
    async with sim, http.ws_connect(sim.ws_url) as ws:
        await subscribe(
            ws,
            {"type": "candle.1m", "codes": ["KRW-BTC"], "is_only_realtime": True},
            {"type": "trade", "codes": ["KRW-BTC"], "is_only_realtime": True},
        )
        await sim.wait_subscribed(["KRW-BTC"], "trade")
        sim.step(3, "KRW-BTC")
        frames = await receive_many(ws, 4)
    assert [f["type"] for f in frames] == ["trade", "candle.1m", "trade", "trade"]


def test_catalog_has_real_codes_then_generated_ones() -> None:
    """markets=30 gives the 26 real-looking KRW codes then KRW-SIM* ones; quote markets come last."""
    sim = UpbitSimulator(markets=30, quote_markets=3, rate=0)
    codes = sim.markets
    assert codes[:3] == ["KRW-BTC", "KRW-ETH", "KRW-XRP"]
    assert codes[26:30] == ["KRW-SIMAAA", "KRW-SIMAAB", "KRW-SIMAAC", "KRW-SIMAAD"]
    assert codes[30:] == ["BTC-ETH", "USDT-BTC", "BTC-XRP"]
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"(KRW|BTC|USDT)-[A-Z0-9]+", c) for c in codes)


@pytest.mark.parametrize("markets", [1, 50, 200])
def test_catalog_size_follows_markets(markets: int) -> None:
    """The KRW market count is what was asked for."""
    assert len(UpbitSimulator(markets=markets, rate=0).markets) == markets
