"""ops.cache_replay: write-through, replay of fresh values, counters, and survival of broken caches.

Real diskcache directories under tmp_path; broken caches are really broken (garbage bytes, a foreign
pickle, a file that is not a database, a database that is full), never mocked.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import diskcache
import msgspec
import pytest
import reactivex
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.subscription import Subscription

from rxmarket import ops
from rxmarket.errors import ConfigError
from rxmarket.models import Candle, Orderbook, Ticker, Trade
from rxmarket.operators._cache_replay import (
    DEFAULT_NAMESPACE,
    BytesOnlyDisk,
    CacheDegraded,
    CacheStats,
    cached,
    default_key,
    open_cache,
    warm,
)

on_next, on_error, on_completed = ReactiveTest.on_next, ReactiveTest.on_error, ReactiveTest.on_completed


def ticker(symbol: str = "KRW-BTC", price: float = 100.0, ts: int = 1) -> Ticker:
    return Ticker(
        symbol=symbol,
        price=price,
        open=90.0,
        high=110.0,
        low=80.0,
        prev_close=95.0,
        change="RISE",
        change_price=price - 95.0,
        change_rate=(price - 95.0) / 95.0,
        volume_24h=1.0,
        value_24h=price,
        timestamp=ts,
    )


def as_cache(item: Any) -> Any:
    """The item as a replay delivers it."""
    return msgspec.structs.replace(item, source="cache")


@pytest.fixture
def cache(tmp_path: Path) -> Any:
    c = open_cache(tmp_path / "cache")
    yield c
    c.close()


def test_items_pass_through_and_are_written(cache: Any) -> None:
    """Live items reach the output unchanged and the newest per key lands in the cache."""
    scheduler = TestScheduler()
    a, b = ticker(price=100.0, ts=1), ticker(price=101.0, ts=2)
    xs = scheduler.create_cold_observable(on_next(10, a), on_next(20, b), on_completed(30))
    op = ops.cache_replay(cache, ttl=60)
    results = scheduler.start(lambda: xs.pipe(op))
    assert results.messages == [on_next(210, a), on_next(220, b), on_completed(230)]
    assert cached(cache, "ticker:KRW-BTC", ttl=60, now=230.0) == as_cache(b)
    assert op.stats() == CacheStats(hits=0, misses=1, writes=2, coalesced=0, errors=0)


def test_fresh_values_replay_first_tagged_cache(cache: Any) -> None:
    """A new subscriber gets the fresh cached value at subscribe time, tagged source="cache", then live."""
    scheduler = TestScheduler()
    old, live = ticker(price=99.0), ticker(price=100.0, ts=5)
    warm(cache, [old], now=150.0)
    xs = scheduler.create_cold_observable(on_next(10, live))
    results = scheduler.start(lambda: xs.pipe(ops.cache_replay(cache, ttl=60)))
    assert results.messages == [on_next(200, as_cache(old)), on_next(210, live)]
    assert results.messages[0].value.value.source == "cache"


def test_stale_values_are_not_replayed(cache: Any) -> None:
    """A value older than ttl (200 - 100 > 60) is not replayed and counts as a miss."""
    scheduler = TestScheduler()
    warm(cache, [ticker()], now=100.0)
    xs = scheduler.create_cold_observable()
    op = ops.cache_replay(cache, ttl=60)
    results = scheduler.start(lambda: xs.pipe(op))
    assert results.messages == []
    assert (op.stats().hits, op.stats().misses) == (0, 1)


def test_ttl_boundary_is_inclusive(cache: Any) -> None:
    """A value exactly ttl old is still fresh; one tick more is not."""
    warm(cache, [ticker()], now=140.0)
    assert cached(cache, "ticker:KRW-BTC", ttl=60, now=200.0) is not None
    assert cached(cache, "ticker:KRW-BTC", ttl=60, now=200.5) is None


def test_replay_is_oldest_first_and_newest_per_key(cache: Any) -> None:
    """Values replay in write order; a later value for a key replaced the earlier one (invalidation)."""
    scheduler = TestScheduler()
    eth_old, btc, eth_new = ticker("KRW-ETH", 1.0), ticker("KRW-BTC", 2.0), ticker("KRW-ETH", 3.0)
    warm(cache, [eth_old], now=150.0)
    warm(cache, [btc], now=160.0)
    warm(cache, [eth_new], now=170.0)
    op = ops.cache_replay(cache, ttl=60)
    results = scheduler.start(lambda: scheduler.create_cold_observable().pipe(op))
    assert [m.value.value for m in results.messages] == [as_cache(btc), as_cache(eth_new)]
    assert op.stats().hits == 2


def test_live_item_replaces_cached_value_for_later_subscribers(cache: Any) -> None:
    """What a first subscriber receives live is what the next subscriber is replayed."""
    scheduler = TestScheduler()
    live = ticker(price=123.0)
    op = ops.cache_replay(cache, ttl=200)
    source = scheduler.create_cold_observable(on_next(5, live))
    first = scheduler.create_observer()
    second = scheduler.create_observer()
    scheduler.schedule_absolute(200, lambda *_: source.pipe(op).subscribe(first, scheduler=scheduler))
    scheduler.schedule_absolute(
        300, lambda *_: scheduler.create_cold_observable().pipe(op).subscribe(second, scheduler=scheduler)
    )
    scheduler.start()
    assert second.messages == [on_next(300, as_cache(live))]


def test_all_model_kinds_round_trip(cache: Any) -> None:
    """Tickers, books, trades and candles come back equal but for source."""
    book = Orderbook.from_levels(symbol="KRW-BTC", timestamp=3, asks=[(101.0, 1.0)], bids=[(99.0, 2.0)])
    trade = Trade(symbol="KRW-BTC", price=100.0, volume=0.5, ask_bid="BID", timestamp=4, sequential_id=9)
    candle = Candle(
        symbol="KRW-BTC", unit="1m", start=0, open=1, high=2, low=0.5, close=1.5, volume=3, value=4
    )
    items = [ticker(), book, trade, candle]
    assert warm(cache, items, now=10.0) == 4
    keys = ["ticker:KRW-BTC", "orderbook:KRW-BTC", "trade:KRW-BTC", "candle:KRW-BTC:1m"]
    assert [default_key(i) for i in items] == keys
    assert [cached(cache, k, ttl=1, now=10.0) for k in keys] == [as_cache(i) for i in items]


def test_namespaces_keep_streams_apart(cache: Any) -> None:
    """A subscriber is replayed its own namespace only."""
    scheduler = TestScheduler()
    warm(cache, [ticker("KRW-BTC")], now=200.0, namespace="a:")
    warm(cache, [ticker("KRW-ETH")], now=200.0, namespace="b:")
    op = ops.cache_replay(cache, ttl=60, namespace="b:")
    results = scheduler.start(lambda: scheduler.create_cold_observable().pipe(op))
    assert [m.value.value.symbol for m in results.messages] == ["KRW-ETH"]


def test_keys_restrict_replay_and_count_misses(cache: Any) -> None:
    """With keys=, only those are replayed; absent ones count as misses."""
    scheduler = TestScheduler()
    warm(cache, [ticker("KRW-BTC"), ticker("KRW-ETH")], now=200.0)
    op = ops.cache_replay(cache, ttl=60, keys=["ticker:KRW-ETH", "ticker:KRW-XRP"])
    results = scheduler.start(lambda: scheduler.create_cold_observable().pipe(op))
    assert [m.value.value.symbol for m in results.messages] == ["KRW-ETH"]
    assert (op.stats().hits, op.stats().misses) == (1, 1)


def test_lookup_counts_hits_and_misses(cache: Any) -> None:
    """lookup() serves fresh values and counts each answer."""
    op = ops.cache_replay(cache, ttl=10)
    assert op.warm([ticker()], now=100.0) == 1
    assert op.lookup("ticker:KRW-BTC", now=105.0) == as_cache(ticker())
    assert op.lookup("ticker:KRW-BTC", now=120.0) is None
    assert op.lookup("ticker:KRW-ETH", now=105.0) is None
    assert op.stats() == CacheStats(hits=1, misses=2, writes=1, coalesced=0, errors=0)


def test_invalidate_forgets_values(cache: Any) -> None:
    """invalidate(key) forgets one value; invalidate() the whole namespace, and nothing outside it."""
    op = ops.cache_replay(cache, ttl=60)
    op.warm([ticker("KRW-BTC"), ticker("KRW-ETH")], now=1.0)
    warm(cache, [ticker("KRW-XRP")], now=1.0, namespace="other:")
    op.invalidate("ticker:KRW-BTC")
    assert op.lookup("ticker:KRW-BTC", now=1.0) is None
    assert op.lookup("ticker:KRW-ETH", now=1.0) is not None
    op.invalidate()
    assert op.lookup("ticker:KRW-ETH", now=1.0) is None
    assert cached(cache, "ticker:KRW-XRP", ttl=60, now=1.0, namespace="other:") is not None


def test_key_function_error_is_reported(cache: Any) -> None:
    """A key function that raises ends the output with its error and disposes the source."""
    scheduler = TestScheduler()
    bug = KeyError("no such field")

    def broken(item: Any) -> str:
        raise bug

    xs = scheduler.create_cold_observable(on_next(10, ticker()), on_next(20, ticker()))
    results = scheduler.start(lambda: xs.pipe(ops.cache_replay(cache, key=broken)))
    assert results.messages == [on_error(210, bug)]
    assert xs.subscriptions == [Subscription(200, 210)]


def test_key_function_returning_non_str_is_reported(cache: Any) -> None:
    """A key function that returns a non-str ends the output with a TypeError."""
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_next(10, ticker()))
    results = scheduler.start(lambda: xs.pipe(ops.cache_replay(cache, key=lambda item: 42)))
    assert results.messages[0].time == 210
    assert isinstance(results.messages[0].value.exception, TypeError)


def test_warm_reports_key_function_errors(cache: Any) -> None:
    """warm() does not hide a broken key function: the caller gets a ConfigError."""
    with pytest.raises(ConfigError, match="must return a str"):
        warm(cache, [ticker()], key=lambda item: 1)


def test_garbage_entry_is_skipped_with_warning(cache: Any) -> None:
    """Garbage bytes in an entry: warning, entry skipped and deleted, the stream goes on."""
    scheduler = TestScheduler()
    cache.set(DEFAULT_NAMESPACE + "ticker:KRW-BTC", b"\xc1 not msgpack")
    warm(cache, [ticker("KRW-ETH")], now=200.0)
    xs = scheduler.create_cold_observable(on_next(10, ticker("KRW-XRP")), on_completed(20))
    op = ops.cache_replay(cache, ttl=60)
    with pytest.warns(CacheDegraded, match="ticker:KRW-BTC"):
        results = scheduler.start(lambda: xs.pipe(op))
    assert [m.value.kind for m in results.messages] == ["N", "N", "C"]
    assert results.messages[0].value.value.symbol == "KRW-ETH"
    assert op.stats().errors == 1
    assert DEFAULT_NAMESPACE + "ticker:KRW-BTC" not in cache


def test_pickled_entry_is_never_unpickled(tmp_path: Path) -> None:
    """A pickle planted in the cache (by a plain diskcache writer) is refused, never loaded."""
    marker = tmp_path / "pwned"
    directory = tmp_path / "cache"
    plain = diskcache.Cache(str(directory))
    plain.set(DEFAULT_NAMESPACE + "ticker:KRW-BTC", _Touch(str(marker)))  # diskcache pickles it
    assert pickle.loads(pickle.dumps(_Touch(str(tmp_path / "probe")))) is None  # the payload does work
    assert (tmp_path / "probe").exists()
    scheduler = TestScheduler()
    op = ops.cache_replay(plain, ttl=60)
    with pytest.warns(CacheDegraded, match="refusing a cache entry"):
        results = scheduler.start(lambda: scheduler.create_cold_observable(on_completed(5)).pipe(op))
    assert results.messages == [on_completed(205)]
    assert not marker.exists()
    plain.close()


class _Touch:
    """Unpickling this creates a file: stands in for arbitrary code in a tampered cache."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path(self.path).touch, ())


def test_plain_cache_is_reopened_bytes_only(tmp_path: Path) -> None:
    """A plain diskcache.Cache works: values are written as bytes and read through BytesOnlyDisk."""
    plain = diskcache.Cache(str(tmp_path / "cache"))
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_next(1, ticker()))
    scheduler.start(lambda: xs.pipe(ops.cache_replay(plain, ttl=60)))
    assert isinstance(plain.get(DEFAULT_NAMESPACE + "ticker:KRW-BTC"), bytes)
    assert isinstance(open_cache(tmp_path / "cache").disk, BytesOnlyDisk)
    plain.close()


def test_bytes_only_disk_refuses_other_values(cache: Any) -> None:
    """The bytes-only disk will not store a value diskcache would pickle."""
    with pytest.raises(TypeError, match="bytes only"):
        cache.set("x", {"a": 1})


def test_corrupt_database_degrades_to_pass_through(tmp_path: Path) -> None:
    """A cache directory whose database is garbage: warning, and every item still flows."""
    directory = tmp_path / "cache"
    directory.mkdir()
    (directory / "cache.db").write_bytes(b"this is not sqlite" * 100)
    scheduler = TestScheduler()
    items = [ticker(price=float(p)) for p in range(3)]
    xs = scheduler.create_cold_observable(
        *[on_next(10 + i, t) for i, t in enumerate(items)], on_completed(20)
    )
    op = ops.cache_replay(directory, ttl=60)
    with pytest.warns(CacheDegraded, match="open failed"):
        results = scheduler.start(lambda: xs.pipe(op))
    assert [m.value.value for m in results.messages[:-1]] == items
    assert results.messages[-1] == on_completed(220)
    assert op.stats().errors == 1
    op.close()


def test_unopenable_path_degrades_to_pass_through(tmp_path: Path) -> None:
    """A cache path that is a regular file: warning, pass-through."""
    path = tmp_path / "not-a-directory"
    path.write_text("x")
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_next(10, ticker()), on_completed(20))
    with pytest.warns(CacheDegraded):
        results = scheduler.start(lambda: xs.pipe(ops.cache_replay(path)))
    assert results.messages == [on_next(210, ticker()), on_completed(220)]


def test_full_disk_degrades_to_pass_through(tmp_path: Path) -> None:
    """A database that cannot grow (SQLite's max_page_count reached: "database or disk is full"): the
    first failing write warns, the subscription stops writing, every item still flows."""
    directory = tmp_path / "cache"
    open_cache(directory).close()
    # SQLite never lowers max_page_count below the current size: the database is full as it stands.
    full = open_cache(directory, sqlite_max_page_count=1)
    scheduler = TestScheduler()
    items = [ticker(symbol=f"KRW-{i:04d}") for i in range(50)]
    xs = scheduler.create_cold_observable(
        *[on_next(10 + i, t) for i, t in enumerate(items)], on_completed(100)
    )
    op = ops.cache_replay(full, ttl=60)
    with pytest.warns(CacheDegraded, match="full"):
        results = scheduler.start(lambda: xs.pipe(op))
    assert [m.value.value for m in results.messages[:-1]] == items
    assert results.messages[-1] == on_completed(300)
    assert op.stats().errors == 1
    full.close()


def test_coalescing_writes_newest_per_key_per_interval(cache: Any) -> None:
    """flush_interval=10: values held back, one write per key per interval, the rest counted coalesced."""
    scheduler = TestScheduler()
    prices = [on_next(1 + i, ticker(price=float(i))) for i in range(5)]  # 201..205
    xs = scheduler.create_cold_observable(*prices, on_next(20, ticker("KRW-ETH")))
    op = ops.cache_replay(cache, ttl=60, flush_interval=10)
    seen: list[Any] = []

    def probe(*_: Any) -> None:
        seen.append(cached(cache, "ticker:KRW-BTC", ttl=60, now=scheduler.clock))

    scheduler.schedule_absolute(209, probe)  # before the first flush (at 211)
    scheduler.schedule_absolute(212, probe)  # after it
    scheduler.start(lambda: xs.pipe(op), disposed=215)
    assert seen == [None, as_cache(ticker(price=4.0))]
    assert op.stats().writes == 1
    assert op.stats().coalesced == 4


def test_coalesced_values_are_written_on_dispose(cache: Any) -> None:
    """Values still held back when the subscription ends are written, not lost."""
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_next(1, ticker(price=7.0)))
    scheduler.start(lambda: xs.pipe(ops.cache_replay(cache, ttl=60, flush_interval=1000)), disposed=210)
    assert cached(cache, "ticker:KRW-BTC", ttl=60, now=210.0) == as_cache(ticker(price=7.0))


def test_path_cache_is_opened_and_closed_by_operator(tmp_path: Path) -> None:
    """A directory path is opened on first use; close() closes it; the values persist."""
    op = ops.cache_replay(tmp_path / "cache", ttl=60)
    assert op.warm([ticker()], now=1.0) == 1
    op.close()
    reopened = open_cache(tmp_path / "cache")
    assert cached(reopened, "ticker:KRW-BTC", ttl=60, now=1.0) == as_cache(ticker())
    reopened.close()


@pytest.mark.parametrize("kwargs", [{"ttl": -1}, {"flush_interval": 0}])
def test_bad_knobs_fail_at_build_time(cache: Any, kwargs: dict[str, Any]) -> None:
    """Nonsense knobs raise ConfigError when the operator is made."""
    with pytest.raises(ConfigError):
        ops.cache_replay(cache, **kwargs)


def test_cache_of_wrong_type_is_a_config_error() -> None:
    """Only a diskcache.Cache or a path will do."""
    with pytest.raises(ConfigError, match=r"diskcache\.Cache or a directory path"):
        ops.cache_replay({"not": "a cache"})  # type: ignore[arg-type]  # deliberately wrong


async def test_default_clock_is_the_wall_clock(cache: Any) -> None:
    """Under the running loop, writes are stamped with wall-clock time (readable by `cached` later)."""
    done: list[bool] = []
    reactivex.of(ticker()).pipe(ops.cache_replay(cache, ttl=60)).subscribe(
        on_completed=lambda: done.append(True)
    )
    assert done == [True]
    assert cached(cache, "ticker:KRW-BTC", ttl=60) == as_cache(ticker())
