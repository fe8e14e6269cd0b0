"""Which contract's AnswerUpdated moves which oracle price, and whether its answer IS that price (pure).

AaveOracle.getAssetPrice(asset) returns `source.latestAnswer()` when positive, else the fallback
oracle's price. When the source is the Chainlink aggregator that emits AnswerUpdated, or an
EACAggregatorProxy in front of it, the event's `current` is the new price: no read is needed (the
common case, and the one a price move must be fast on). When the source is an adapter (a CAPO, a
ratio times a base feed, a fixed price), the answer of the feed behind it is not the price: its
AnswerUpdated only says when to re-read that asset's price, pinned to the block. Which case holds is
decided once per source at the block it was read (`classify`): direct when the source's answer, and
its aggregator's when it has one, both equal the oracle's price.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from liqbot.domain.units import ZERO_ADDRESS


@dataclass(frozen=True, slots=True)
class PriceSource:
    asset: str
    source: str  # what AaveOracle reads for the asset (the zero address: its fallback oracle)
    feeds: tuple[str, ...] = ()  # contracts whose AnswerUpdated moves this price
    direct: bool = False  # a positive answer of these feeds is the oracle's price as is


def classify(asset: str, source: str, price: int, source_answer: int | None, aggregator: str | None,
             aggregator_answer: int | None, base_currency: str | None = None) -> PriceSource:
    """How to follow one asset's price, from what its source answered at the block its price was read."""
    if base_currency and asset == base_currency:  # the oracle answers BASE_CURRENCY_UNIT whatever the source says
        return PriceSource(asset, source, (), direct=False)
    if source == ZERO_ADDRESS:
        return PriceSource(asset, source, (), direct=False)
    feeds = (source,) if not aggregator or aggregator in (ZERO_ADDRESS, source) else (source, aggregator)
    direct = price > 0 and source_answer == price and (len(feeds) == 1 or aggregator_answer == price)
    return PriceSource(asset, source, feeds, direct)


@dataclass
class PriceSources:
    """Every priced asset's source, and the reverse map from a feed to the assets it moves."""

    by_asset: dict[str, PriceSource] = field(default_factory=dict)
    by_feed: dict[str, tuple[str, ...]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._index()

    def _index(self) -> None:
        feeds: dict[str, list[str]] = {}
        for ps in self.by_asset.values():
            for f in ps.feeds:
                feeds.setdefault(f, []).append(ps.asset)
        self.by_feed = {f: tuple(a) for f, a in feeds.items()}

    def update(self, sources: Iterable[PriceSource]) -> None:
        for ps in sources:
            self.by_asset[ps.asset] = ps
        self._index()

    def watch(self, feed: str, assets: Iterable[str]) -> None:
        """Also re-read these assets' prices when `feed` answers (an adapter's underlying feed found elsewhere)."""
        for asset in assets:
            ps = self.by_asset.get(asset, PriceSource(asset, ZERO_ADDRESS))
            if feed not in ps.feeds:
                self.by_asset[asset] = PriceSource(asset, ps.source, (*ps.feeds, feed), direct=False)
        self._index()

    def mark_indirect(self, asset: str) -> None:
        """Never take a feed's answer for this asset's price: re-read it on every answer."""
        ps = self.by_asset[asset]
        self.by_asset[asset] = PriceSource(ps.asset, ps.source, ps.feeds, direct=False)

    @property
    def feeds(self) -> list[str]:
        return sorted(self.by_feed)

    def on_answers(self, answers: Mapping[str, int]) -> tuple[dict[str, int], set[str]]:
        """A block's last answer per feed -> (prices taken as they are, assets whose price must be read)."""
        prices: dict[str, int] = {}
        reads: set[str] = set()
        for feed, answer in answers.items():
            for asset in self.by_feed.get(feed, ()):
                if self.by_asset[asset].direct and answer > 0:
                    prices[asset] = answer
                else:  # an adapter, or a non-positive answer: the oracle then asks its fallback
                    reads.add(asset)
        return {a: p for a, p in prices.items() if a not in reads}, reads
