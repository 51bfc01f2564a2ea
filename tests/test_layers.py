"""The tree shows the layers: a module imports only from lower layers, never from a sibling.

Ranks follow STYLE.md. Imports inside one package (``rxmarket.operators._x`` -> ``rxmarket.operators._y``)
are allowed; anything else must point strictly downwards. The simulator is an island, and the sans-I/O
protocol and the transports keep their hands off the libraries of the other side.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "rxmarket"

# (module prefix, rank); a module may import only modules of a lower rank
RANKS: list[tuple[str, float]] = [
    ("rxmarket.models", 0),
    ("rxmarket.errors", 0),
    ("rxmarket.policy", 1),
    ("rxmarket.exchanges.base", 1),
    ("rxmarket.exchanges.upbit.endpoints", 2),
    ("rxmarket.exchanges.upbit._wire", 2),
    ("rxmarket.exchanges.upbit.protocol", 2),
    ("rxmarket.transport", 2),
    ("rxmarket._scheduler", 2),
    ("rxmarket.exchanges.upbit", 3),  # source.py, history.py and the package surface
    ("rxmarket.exchanges", 3),
    ("rxmarket.operators", 3),
    ("rxmarket.ops", 3),
    ("rxmarket.aio", 3),
    ("rxmarket.pipelines", 4),
    ("rxmarket.storage", 4),
    ("rxmarket._market_config", 4.5),  # the facade's private parts
    ("rxmarket._market_feed", 4.5),
    ("rxmarket.market", 5),
    ("rxmarket.cli", 6),
    ("rxmarket._cli_live", 5.5),  # command implementations, registered by cli.py
    ("rxmarket._cli_data", 5.5),
    ("rxmarket.__init__", 7),
    ("rxmarket", 7),
]

FORBIDDEN_LIBS = {
    "rxmarket.exchanges.upbit.protocol": {"asyncio", "aiohttp", "websockets", "reactivex"},
    "rxmarket.exchanges.upbit._wire": {"asyncio", "aiohttp", "websockets", "reactivex"},
    "rxmarket.exchanges.upbit.endpoints": {"asyncio", "aiohttp", "websockets", "reactivex"},
    "rxmarket.models": {"asyncio", "aiohttp", "websockets", "reactivex"},
    "rxmarket.errors": {"asyncio", "aiohttp", "websockets", "reactivex"},
    "rxmarket.policy": {"asyncio", "aiohttp", "websockets", "reactivex"},
    "rxmarket.transport": {"reactivex"},
}


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 2:
        parts.pop()
    return ".".join(parts)


def rank_of(name: str) -> float:
    best = max((p for p, _ in RANKS if name == p or name.startswith(p + ".")), key=len)
    return dict(RANKS)[best]


def package_of(name: str) -> str:
    """The subpackage a module belongs to (its unit for same-package imports)."""
    for prefix in ("rxmarket.policy", "rxmarket.transport", "rxmarket.operators", "rxmarket.storage",
                   "rxmarket.sim"):
        if name == prefix or name.startswith(prefix + "."):
            return prefix
    return name


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
            out.extend(f"{node.module}.{a.name}" for a in node.names)
    return out


MODULES = sorted(PKG.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_point_downwards(path: Path) -> None:
    """Every rxmarket import of a module goes to a strictly lower layer or its own package."""
    me = module_name(path)
    if me.startswith("rxmarket.sim"):
        bad = [i for i in imports(path) if i.startswith("rxmarket") and not i.startswith("rxmarket.sim")]
        assert bad == [], f"the simulator is an island; {me} imports {bad}"
        return
    bad = []
    for target in imports(path):
        if not target.startswith("rxmarket.") or target.startswith("rxmarket.sim"):
            # only the command line embeds the simulator (rxmarket sim, the demo)
            if target.startswith("rxmarket.sim") and rank_of(me) < 5.5:
                bad.append(target)
            continue
        if target.startswith(me + ".") or (package_of(target) == package_of(me) != me):
            continue  # a package and its own modules
        if me.startswith("rxmarket.exchanges.upbit") and target.startswith("rxmarket.exchanges.upbit"):
            # inside the adapter: sources (rank 3) may use the sans-I/O modules (rank 2), not the reverse
            if rank_of(target) > rank_of(me):
                bad.append(target)
            continue
        if me == "rxmarket.ops" and target.startswith("rxmarket.operators"):
            continue  # ops is an alias of operators
        if rank_of(target) >= rank_of(me):
            bad.append(target)
    assert bad == [], f"{me} (rank {rank_of(me)}) imports from its level or above: {bad}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_low_layers_import_no_io_libraries(path: Path) -> None:
    """Models, errors, policy and the sans-I/O protocol import no network or Rx library."""
    me = module_name(path)
    banned: set[str] = set()
    for prefix, libs in FORBIDDEN_LIBS.items():
        if me == prefix or me.startswith(prefix + "."):
            banned |= libs
    found = {i.split(".")[0] for i in imports(path)} & banned
    assert found == set(), f"{me} imports {sorted(found)}"
