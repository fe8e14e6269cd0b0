"""Bulk screening: which users a price move may have put below HF 1, in one vectorised pass (pure).

Every user with debt has a row; per reserve (a column of each array) it holds floats refreshed whenever
the user changes: enabled collateral and variable debt as SCALED balances over the token unit, and the
collateral's liquidation threshold for the user's e-mode. A pass multiplies them by the reserves'
indexes at the asked timestamp and by the prices, so the weighted collateral W and the debt D of every
row come out of two matrix-vector products; the rows with W <= D (with the margin below) are the
candidates, each then confirmed with the exact integer math (`account_data`), which alone decides.

The margin makes the screen a superset of the exact answer, never a guess:
- interest drift: none. Rows hold scaled balances and each pass uses the indexes at its own timestamp,
  exactly as the Pool does; v3.0 stable debt (a per-user rate, not an index) is bounded above by
  principal * exp(rate * elapsed), which Aave's three-term expansion never exceeds.
- integer rounding: every balance, value and sum the Pool rounds moves a user's figures by at most a
  token unit's worth and one base unit per reserve held: an absolute slack of 2 * price / unit + 2 base
  units per reserve of the row, on each side.
- v3.0-v3.4 truncate the average liquidation threshold to whole bps before applying it: at most one bps
  of it, so collateral is discounted by 1 / (smallest threshold in bps) there (about 1.2e-4).
- float error: a few ulps per product and sum (1e-15 relative); 1e-9 relative is allowed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import numpy as np

from liqbot.domain.account import (
    MarketAt,
    MarketState,
    NotModelled,
    UserState,
    config_decimals,
    config_emode_category,
    config_liquidation_threshold,
)
from liqbot.domain.health import AccountData
from liqbot.domain.interest import SECONDS_PER_YEAR
from liqbot.domain.units import BPS, RAY
from liqbot.mirror.state import Mirror

FLOAT_EPS = 1e-9
CATEGORIES = 256  # e-mode category ids are uint8


def _dot(weights: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """weights @ columns on this thread: numpy's own loop, not BLAS, whose threads wait on each other for
    tens of ms when the other cores are busy (a 2-core machine running workers: 24 ms instead of 1.5)."""
    return np.einsum("r,rn->n", weights, columns)


def has_debt(st: UserState) -> bool:
    return any(st.scaled_debt) or any(s is not None and s.principal for s in st.stable)


class Screen:
    coll: np.ndarray  # (reserves, capacity): enabled collateral, scaled balance / unit
    wcoll: np.ndarray  # the same times the user's liquidation threshold (e-mode aware) / 10,000
    debt: np.ndarray  # variable debt, scaled balance / unit
    held: np.ndarray  # 1.0 where the row holds the reserve (for the rounding slack)
    emode: np.ndarray  # (capacity,) e-mode category of each row
    live: np.ndarray  # (capacity,) the row is a user's

    def __init__(self, market: MarketState, capacity: int = 1024):
        self.rows: dict[str, int] = {}
        self.users: list[str | None] = []  # by row; None for a freed row
        self.free: list[int] = []
        self.n_reserves = 0
        self.capacity = 0
        self._alloc(len(market.reserves), capacity)
        self.stable: dict[int, list[tuple[int, float, float, int]]] = {}  # row -> (reserve id, principal/unit, rate, since)
        self._stable_arrays: tuple[np.ndarray, ...] | None = None
        self.configure(market)

    # --- storage -------------------------------------------------------------------------------------
    def _alloc(self, n_reserves: int, capacity: int, keep: bool = True) -> None:
        """(Re)allocate for this many reserves and rows, keeping what is there (unless not `keep`)."""
        old = getattr(self, "coll", None) if keep else None
        arrays = {}
        for name in ("coll", "wcoll", "debt", "held"):
            a = np.zeros((n_reserves, capacity))
            if old is not None:
                prev = getattr(self, name)
                a[: prev.shape[0], : prev.shape[1]] = prev
            arrays[name] = a
        emode = np.zeros(capacity, np.int64)
        live = np.zeros(capacity, bool)
        if old is not None:
            emode[: self.capacity] = self.emode
            live[: self.capacity] = self.live
        self.coll, self.wcoll, self.debt, self.held = arrays["coll"], arrays["wcoll"], arrays["debt"], arrays["held"]
        self.emode, self.live = emode, live
        self.n_reserves, self.capacity = n_reserves, capacity

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.coll, self.wcoll, self.debt, self.held, self.emode, self.live))

    def configure(self, market: MarketState) -> None:
        """The reserves' configuration or the e-mode categories changed (or were first seen): new units
        and thresholds, every row's weighted collateral recomputed from its raw collateral in one go."""
        if len(market.reserves) > self.n_reserves:
            self._alloc(len(market.reserves), self.capacity)
        rules = market.rules
        n = self.n_reserves
        units = np.ones(n)
        base = np.zeros(n)
        self.market = market
        for r in market.reserves:
            if r is None:
                continue
            units[r.id] = 10.0 ** config_decimals(r.configuration)
            lt = config_liquidation_threshold(r.configuration)
            base[r.id] = lt / BPS if lt or not rules.collateral_needs_threshold else 0.0
        table = np.tile(base, (CATEGORIES, 1))
        for c, cat in market.emodes.items():
            for r in market.reserves:
                if r is None or (base[r.id] == 0 and rules.collateral_needs_threshold):
                    continue
                inside = (config_emode_category(r.configuration) == c if rules.emode_by_asset_category
                          else (cat.collateral_bitmap >> r.id) & 1)
                if inside:
                    table[c, r.id] = cat.liquidation_threshold / BPS
        old = getattr(self, "units", None)
        if old is not None:  # a unit never changes, but an id freed by a dropped reserve can be reused
            scale = np.ones(n)
            scale[: old.size] = old / units[: old.size]
            if (scale != 1).any():
                top = len(self.users)
                self.coll[:, :top] *= scale[:, None]
                self.debt[:, :top] *= scale[:, None]
                for row, entries in self.stable.items():
                    self.stable[row] = [(rid, p * scale[rid], rate, since) for rid, p, rate, since in entries]
                self._stable_arrays = None
        self.units, self.table = units, table
        positive = table[table > 0]
        self.truncation = 0.0 if rules.exact_rounding or not positive.size else 1.0 / (float(positive.min()) * BPS)
        # v3.0-3.1: rows in a category with its own price source, and the category's reserves
        self.sourced: dict[int, np.ndarray] = {}
        if rules.emode_price_source:
            for c, cat in market.emodes.items():
                if cat.price_source:
                    self.sourced[c] = np.array([r is not None and config_emode_category(r.configuration) == c
                                                for r in market.reserves] + [False] * (n - len(market.reserves)))
        top = len(self.users)
        self.wcoll[:, :top] = self.coll[:, :top] * table[self.emode[:top]].T

    def _row(self, user: str) -> int:
        row = self.rows.get(user)
        if row is not None:
            return row
        if self.free:
            row = self.free.pop()
            self.users[row] = user
        else:
            row = len(self.users)
            if row >= self.capacity:
                self._alloc(self.n_reserves, max(1024, 2 * self.capacity))
            self.users.append(user)
        self.rows[user] = row
        return row

    def _drop(self, user: str) -> None:
        row = self.rows.pop(user, None)
        if row is None:
            return
        for a in (self.coll, self.wcoll, self.debt, self.held):
            a[:, row] = 0.0
        self.live[row] = False
        self.users[row] = None
        self.free.append(row)
        if self.stable.pop(row, None) is not None:
            self._stable_arrays = None

    # --- refresh -------------------------------------------------------------------------------------
    def update(self, user: str, st: UserState | None) -> None:
        """One user changed (None: no longer followed): its row from its state, or no row without debt."""
        if st is None or not has_debt(st):
            self._drop(user)
            return
        row = self._row(user)
        for a in (self.coll, self.debt, self.held):
            a[:, row] = 0.0
        entries = []
        for rid, coll, debt, stable in self._cells(st):
            if coll:
                self.coll[rid, row] = coll
            if debt:
                self.debt[rid, row] = debt
            self.held[rid, row] = 1.0
            if stable is not None:
                entries.append((rid, *stable))
        had = self.stable.pop(row, None)
        if entries:
            self.stable[row] = entries
        if had or entries:
            self._stable_arrays = None
        self.emode[row] = st.emode
        self.live[row] = True
        self.wcoll[:, row] = self.coll[:, row] * self.table[st.emode]

    def _cells(self, st: UserState) -> Iterable[tuple[int, float, float, tuple[float, float, int] | None]]:
        """(reserve id, collateral / unit, variable debt / unit, stable (principal / unit, rate, since)) per held reserve."""
        reserves = self.market.reserves
        for i, rid in enumerate(st.reserve_ids):
            bits = (st.config >> (2 * rid)) & 3
            if not bits or rid >= len(reserves) or reserves[rid] is None:
                continue
            unit = self.units[rid]
            coll = st.scaled_collateral[i] / unit if bits & 2 and st.scaled_collateral[i] else 0.0
            debt = st.scaled_debt[i] / unit if bits & 1 and st.scaled_debt[i] else 0.0
            s = st.stable[i] if st.stable and bits & 1 else None
            stable = (s.principal / unit, s.rate / RAY, s.last_update) if s is not None and s.principal else None
            if coll or debt or stable:
                yield rid, coll, debt, stable

    def rebuild(self, users: dict[str, UserState]) -> None:
        """Every row from scratch, filled column-wise: 100k users in well under a second."""
        self.rows, self.users, self.free, self.stable, self._stable_arrays = {}, [], [], {}, None
        followed = [(u, st) for u, st in users.items() if has_debt(st)]
        self._alloc(self.n_reserves, max(1024, len(followed) + len(followed) // 4), keep=False)
        rows_c, rids_c, vals_c, rows_d, rids_d, vals_d, rows_h, rids_h = [], [], [], [], [], [], [], []
        emodes = []
        for row, (u, st) in enumerate(followed):
            self.rows[u] = row
            self.users.append(u)
            emodes.append(st.emode)
            entries = []
            for rid, coll, debt, stable in self._cells(st):
                rows_h.append(row)
                rids_h.append(rid)
                if coll:
                    rows_c.append(row)
                    rids_c.append(rid)
                    vals_c.append(coll)
                if debt:
                    rows_d.append(row)
                    rids_d.append(rid)
                    vals_d.append(debt)
                if stable is not None:
                    entries.append((rid, *stable))
            if entries:
                self.stable[row] = entries
        n = len(followed)
        self.coll[rids_c, rows_c] = vals_c
        self.debt[rids_d, rows_d] = vals_d
        self.held[rids_h, rows_h] = 1.0
        self.emode[:n] = emodes
        self.live[:n] = True
        self.wcoll[:, :n] = self.coll[:, :n] * self.table[self.emode[:n]].T

    # --- the pass ------------------------------------------------------------------------------------
    def _stable(self) -> tuple[np.ndarray, ...]:
        if self._stable_arrays is None:
            flat = [(row, *e) for row, entries in self.stable.items() for e in entries]
            self._stable_arrays = (np.array([f[0] for f in flat], np.int64), np.array([f[1] for f in flat], np.int64),
                                   np.array([f[2] for f in flat], float), np.array([f[3] for f in flat], float),
                                   np.array([f[4] for f in flat], float))
        return self._stable_arrays

    def bounds(self, at: MarketAt) -> tuple[np.ndarray, np.ndarray]:
        """(a lower bound of the weighted collateral, an upper bound of the debt) of every row, in base units,
        such that an exact health factor below 1 implies lower <= upper."""
        market, top, n = at.market, len(self.users), len(at.market.reserves)
        price = np.zeros(self.n_reserves)
        price[:n] = [float(p) for p in market.prices[:n]]
        income, index = np.zeros(self.n_reserves), np.zeros(self.n_reserves)
        income[:n] = [i / RAY for i in at.income[:n]]
        index[:n] = [i / RAY for i in at.debt_index[:n]]
        high = price.copy()  # for the rounding slack: the highest price a reserve can be valued at
        for c, inside in self.sourced.items():
            p = float(market.emode_prices.get(c, 0))
            high = np.where(inside, np.maximum(high, p), high)
        weighted = _dot(income * price, self.wcoll[:, :top])
        debt = _dot(index * price, self.debt[:, :top])
        slack = _dot(2.0 * high / self.units + 2.0, self.held[:, :top])
        for c, inside in self.sourced.items():  # v3.0: a category's own price for its reserves, inside it
            rows = np.flatnonzero(self.emode[:top] == c)
            if rows.size:
                delta = np.where(inside, float(market.emode_prices.get(c, 0)) - price, 0.0)
                weighted[rows] += _dot(income * delta, self.wcoll[:, rows])
                debt[rows] += _dot(index * delta, self.debt[:, rows])
        rows_s, rids_s, principal, rate, since = self._stable()
        if rows_s.size:
            grown = principal * np.exp(rate * np.maximum(at.timestamp - since, 0.0) / SECONDS_PER_YEAR)
            valued = price[rids_s]
            for c, inside in self.sourced.items():
                valued = np.where((self.emode[rows_s] == c) & inside[rids_s], float(market.emode_prices.get(c, 0)), valued)
            np.add.at(debt, rows_s, grown * valued)
        lower = (weighted * (1 - FLOAT_EPS) - slack) * (1 - self.truncation) - 1.0
        upper = debt * (1 + FLOAT_EPS) + slack
        return lower, upper

    def candidates(self, at: MarketAt, reserves: Collection[int] | None = None, categories: Collection[int] = ()) -> list[str]:
        """Users whose exact health factor may be below 1, riskiest first; only those holding one of
        `reserves` (or in one of `categories`) when given. Every user below 1 among them is returned."""
        lower, upper = self.bounds(at)
        top = len(self.users)
        mask = self.live[:top] & (lower <= upper)
        if reserves is not None:
            exposed = np.zeros(top, bool)
            for rid in reserves:
                if rid < self.n_reserves:
                    exposed |= self.held[rid, :top] > 0
            for c in categories:
                exposed |= self.emode[:top] == c
            mask &= exposed
        rows = np.flatnonzero(mask)
        if not rows.size:
            return []
        order = rows[np.argsort(lower[rows] / np.maximum(upper[rows], 1e-300), kind="stable")]
        return [self.users[r] for r in order]  # type: ignore[misc]


def exposed(mirror: Mirror, index: Screen, assets: Iterable[str] | None = None, timestamp: int | None = None,
            categories: Iterable[int] = ()) -> list[str]:
    """The float pass: users of `index` whose exact health factor may be below 1, riskiest first; with
    `assets`, among those holding one (or in one of `categories`, or in a v3.0 category priced by one)."""
    at = mirror.at(timestamp)
    if assets is None:
        return index.candidates(at)
    wanted = set(assets)
    rids = {rid for a in wanted if (rid := mirror.reserve_id(a)) is not None}
    cats = set(categories) | {c for c, cat in mirror.market.emodes.items() if cat.price_source in wanted}
    return index.candidates(at, rids, cats)


def screen(mirror: Mirror, index: Screen, assets: Iterable[str] | None = None, timestamp: int | None = None,
           categories: Iterable[int] = ()) -> tuple[list[AccountData], list[str]]:
    """Every user of `index` whose exact health factor is below 1 at `timestamp` (default: the mirror's
    block), lowest first; with `assets`, among those holding one of them (or in one of `categories`, or
    in a v3.0 category priced by one of them). Returns them and the candidates the exact math refused
    (v3.3's GHO debt), which only the Pool can answer for."""
    at = mirror.at(timestamp)
    found, refused = [], []
    for user in exposed(mirror, index, assets, at.timestamp, categories):
        try:
            acc = mirror.account(user, at.timestamp)
        except NotModelled:
            refused.append(user)
            continue
        if acc.liquidatable:
            found.append(acc)
    found.sort(key=lambda a: a.health_factor)
    return found, refused
