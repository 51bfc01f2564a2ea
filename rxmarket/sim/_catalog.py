"""The simulated market list: real-looking KRW codes first, then generated ones, plus optional BTC-/USDT-.

Prices are integers of ticks inside the simulator (``ticks * tick_size``), so a random walk never drifts
off the price grid and a book can never show a price Upbit could not quote.
"""

from __future__ import annotations

import math
import random
from typing import Final

import msgspec

__all__ = ["MarketInfo", "build_catalog", "krw_tick_size", "price_decimals"]

# (code, korean_name, english_name, typical price in its quote currency)
_KRW: Final[tuple[tuple[str, str, str, float], ...]] = (
    ("KRW-BTC", "비트코인", "Bitcoin", 140_000_000.0),
    ("KRW-ETH", "이더리움", "Ethereum", 5_000_000.0),
    ("KRW-XRP", "엑스알피(리플)", "XRP", 3_000.0),
    ("KRW-SOL", "솔라나", "Solana", 250_000.0),
    ("KRW-DOGE", "도지코인", "Dogecoin", 500.0),
    ("KRW-ADA", "에이다", "Cardano", 1_000.0),
    ("KRW-USDT", "테더", "Tether", 1_450.0),
    ("KRW-TRX", "트론", "TRON", 350.0),
    ("KRW-AVAX", "아발란체", "Avalanche", 50_000.0),
    ("KRW-LINK", "체인링크", "Chainlink", 30_000.0),
    ("KRW-DOT", "폴카닷", "Polkadot", 10_000.0),
    ("KRW-SUI", "수이", "Sui", 5_000.0),
    ("KRW-BCH", "비트코인캐시", "Bitcoin Cash", 700_000.0),
    ("KRW-ETC", "이더리움클래식", "Ethereum Classic", 35_000.0),
    ("KRW-XLM", "스텔라루멘", "Stellar Lumens", 500.0),
    ("KRW-NEAR", "니어프로토콜", "NEAR Protocol", 7_000.0),
    ("KRW-HBAR", "헤데라", "Hedera", 300.0),
    ("KRW-APT", "앱토스", "Aptos", 12_000.0),
    ("KRW-SHIB", "시바이누", "Shiba Inu", 0.035),
    ("KRW-PEPE", "페페", "Pepe", 0.025),
    ("KRW-AAVE", "에이브", "Aave", 400_000.0),
    ("KRW-ATOM", "코스모스", "Cosmos", 9_000.0),
    ("KRW-SAND", "샌드박스", "The Sandbox", 600.0),
    ("KRW-ARB", "아비트럼", "Arbitrum", 1_100.0),
    ("KRW-ZIL", "질리카", "Zilliqa", 30.0),
    ("KRW-AERGO", "아르고", "Aergo", 150.0),
)

_QUOTED: Final[tuple[tuple[str, str, str, float], ...]] = (
    ("BTC-ETH", "이더리움", "Ethereum", 0.035),
    ("USDT-BTC", "비트코인", "Bitcoin", 95_000.0),
    ("BTC-XRP", "엑스알피(리플)", "XRP", 0.000021),
    ("USDT-ETH", "이더리움", "Ethereum", 3_400.0),
    ("BTC-SOL", "솔라나", "Solana", 0.0018),
    ("USDT-XRP", "엑스알피(리플)", "XRP", 2.1),
)

# Upbit's KRW price bands (lower bound, tick size), highest first.
_KRW_TICKS: Final = (
    (2_000_000, 1000.0), (1_000_000, 500.0), (500_000, 100.0), (100_000, 50.0), (10_000, 10.0),
    (1_000, 1.0), (100, 0.1), (10, 0.01), (1, 0.001), (0.1, 0.0001), (0.01, 0.00001), (0.001, 0.000001),
)


class MarketInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Static facts about one simulated market.

    Attributes:
        index: position in the catalog (the per-market RNG streams derive from it).
        code: ``QUOTE-BASE``, upper case.
        korean_name: as ``/market/all`` gives it.
        english_name: as ``/market/all`` gives it.
        quote: ``KRW``, ``BTC`` or ``USDT``.
        tick: price step.
        decimals: digits kept when a tick count is turned into a price.
        start_ticks: the price at start, in ticks.
        notional: typical value of one trade, in the quote currency.
        warning: ``market_event.warning`` of ``/market/all?is_details=true``.
        caution: the ``market_event.caution`` flags that are set.
    """

    index: int
    code: str
    korean_name: str
    english_name: str
    quote: str
    tick: float
    decimals: int
    start_ticks: int
    notional: float
    warning: bool = False
    caution: tuple[str, ...] = ()

    def price(self, ticks: int) -> float:
        """The price of ``ticks`` ticks, rounded so the float prints as Upbit would send it."""
        return round(ticks * self.tick, self.decimals)

    def snap(self, price: float) -> float:
        """``price`` moved to the nearest tick."""
        return self.price(max(1, round(price / self.tick)))

    @property
    def supported_levels(self) -> list[str]:
        """``/orderbook/instruments`` levels: grouping steps, KRW markets only."""
        if self.quote != "KRW":
            return ["0"]
        return ["0", *(_number_text(self.tick * 10**k) for k in range(1, 6))]


def _number_text(value: float) -> str:
    return str(int(value)) if value >= 1 else f"{value:.8f}".rstrip("0")


def krw_tick_size(price: float) -> float:
    """The KRW tick size for ``price`` (Upbit's band table)."""
    for lower, tick in _KRW_TICKS:
        if price >= lower:
            return tick
    return 0.0000001


def price_decimals(tick: float) -> int:
    """Decimal digits needed to print multiples of ``tick`` exactly."""
    return max(0, -math.floor(math.log10(tick) + 1e-9))


def _tick_for(quote: str, price: float) -> float:
    if quote == "KRW":
        return krw_tick_size(price)
    if quote == "BTC":
        return 0.00000001
    return max(10.0 ** (math.floor(math.log10(price)) - 5), 0.00000001)


_CAUTIONS: Final = (
    "PRICE_FLUCTUATIONS",
    "TRADING_VOLUME_SOARING",
    "DEPOSIT_AMOUNT_SOARING",
    "GLOBAL_PRICE_DIFFERENCES",
    "CONCENTRATION_OF_SMALL_ACCOUNTS",
)
_NOTIONAL: Final = {"KRW": 60_000.0, "BTC": 0.0008, "USDT": 40.0}


def _generated_name(i: int) -> str:
    letters = ""
    n = i
    for _ in range(3):
        letters = chr(ord("A") + n % 26) + letters
        n //= 26
    return letters


def build_catalog(markets: int, quote_markets: int, seed: int) -> list[MarketInfo]:
    """The market list of a simulator.

    Args:
        markets: number of KRW markets (the fixed real-looking list first, then ``KRW-SIMAAA``, ...).
        quote_markets: number of BTC-/USDT- markets appended (at most 6).
        seed: shifts each start price by a few percent, deterministically.

    Returns:
        The catalog, KRW markets first.
    """
    rng = random.Random(f"catalog:{seed}")
    rows: list[tuple[str, str, str, float]] = list(_KRW[:markets])
    for i in range(len(rows), markets):
        suffix = _generated_name(i - len(_KRW))
        price = 10 ** rng.uniform(0.0, 5.5)
        rows.append((f"KRW-SIM{suffix}", f"시뮬코인 {suffix}", f"Sim Coin {suffix}", price))
    rows.extend(_QUOTED[: max(0, min(quote_markets, len(_QUOTED)))])
    out: list[MarketInfo] = []
    for index, (code, korean, english, typical) in enumerate(rows):
        quote = code.split("-", 1)[0]
        price = typical * (1.0 + rng.uniform(-0.05, 0.05))
        tick = _tick_for(quote, price)
        warning = rng.random() < 0.08
        caution = tuple(name for name in _CAUTIONS if rng.random() < 0.04)
        out.append(
            MarketInfo(
                index=index,
                code=code,
                korean_name=korean,
                english_name=english,
                quote=quote,
                tick=tick,
                decimals=price_decimals(tick),
                start_ticks=max(50, round(price / tick)),
                notional=_NOTIONAL[quote],
                warning=warning,
                caution=caution,
            )
        )
    return out
