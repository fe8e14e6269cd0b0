"""Market state in memory: loaded at a pinned block, moved block by block by the market's logs, screened.

    lm = LiveMirror.load(rpc, pool, users, block=B)     # load_mirror at B + how each price moves
    subscribe(lm.log_filter())                          # {"address": [...], "topics": [[topic0, ...]]}
    for each new block N (in order; blocks without logs may be skipped):
        applied = lm.apply_block(N, logs_of_N, timestamp_of_N)   # or lm.apply(logs, to_block=N)
        if applied.filter_changed: subscribe(lm.log_filter())   # a new feed (source swap) or aToken
        for acc in lm.liquidatable(applied, timestamp):          # exact AccountData, lowest HF first
            decide(lm.positions(acc.user, timestamp), health_factor=acc.health_factor,
                   total_debt_base=acc.debt_base, ...)

The API (live.py; `LiveMirror.mirror` is the pure `Mirror` of state.py underneath):
- `LiveMirror.load(rpc, pool, users, *, block=None, chunk=1000, follow_new_users=True) -> LiveMirror`
- `log_filter() -> dict`: every log the mirror needs (Pool, PoolConfigurator, AaveOracle, aTokens, feeds).
- `apply_block(block, logs, timestamp=None) -> Applied`: after it the mirror equals the chain at `block`.
  The timestamp: the caller's (its new head), else the logs' `blockTimestamp`, else one header read.
  More logs of the block applied last may follow (a stream delivering a block in parts).
  `Applied`: `users` re-read (and `new_users` among them), `prices` that changed, `reserves` and
  `categories` re-configured, `moved` (assets to screen), `filter_changed`, `round_trips`, `skipped`.
  Removed logs raise `Reorged`: load again at the fork.
- `apply(logs, *, to_block=None, timestamps=None) -> list[Applied]`: a range, block by block.
- `add_users(users, block=None) -> set[str]`: follow new borrowers, read at the mirror's block. Unknown
  users named by an event (a Supply, a Borrow, aTokens received...) are added by `apply_block` itself
  unless `follow_new_users=False`.
- `price(asset) -> int`; `set_price(asset, price, block) -> bool` (e.g. a pending feed update).
- `account(user, timestamp=None) -> AccountData`: `getUserAccountData` exactly, at any time >= the block's.
- `positions(user, timestamp=None) -> list[ReservePosition]`: what `liquidation.decide` takes, exact.
- `screen(assets=None, timestamp=None, *, categories=()) -> list[AccountData]`: every followed user below
  HF 1 (holding one of `assets` when given), confirmed with the integer math; `candidates(...)` is its
  float pass alone (a superset, riskiest first, to confirm in chunks); `liquidatable(applied,
  timestamp=None)` = the block's users checked exactly + the holders of what it moved screened.

How each event is applied (events.py plans a block, live.py reads what the plan needs pinned to it):
- decoded, no read: ReserveDataUpdated (rates, indexes; last update = the block's timestamp); a feed's
  AnswerUpdated when its answer is the price (feeds.py), which is the common case.
- re-read in one batch at the block: users named by Supply, Withdraw, Borrow, Repay, LiquidationCall,
  ReserveUsedAsCollateralEnabled/Disabled, UserEModeSet, SwapBorrowRateMode, RebalanceStableBorrowRate,
  MintUnbacked and aToken BalanceTransfer (configuration, e-mode, scaled balances: their reserves and
  the events' in the same round, any other their configuration shows in a second); reserves named by a
  configurator event (getReserveData: configuration and indexes at the block's end), and the collateral
  reserve of a liquidation taking aTokens (v3.3+ move its indexes without ReserveDataUpdated); e-mode
  categories changed or newly entered; the price of an asset behind an adapter or whose feed answered
  <= 0, of an asset whose source changed (AssetSourceUpdated, then its new feeds are found), and after
  FallbackOracleUpdated, of every price not read from its feed.

Running it: one thread applies and screens (nothing here is locked). Once loaded, `gc.freeze()` keeps
the collector from walking every user when some later allocation triggers a full collection (~100 ms
at 100k users). Not modelled: reorgs (reload), a Pool or token implementation
upgrade (a new revision: reload), a new oracle or Pool in the provider, price moves with no event (an
adapter's ratio growing), a treasury or Umbrella balance changed by mints or deficit coverage.
"""

from liqbot.mirror.live import Applied, LiveMirror, Reorged
from liqbot.mirror.loader import load_mirror
from liqbot.mirror.screen import Screen
from liqbot.mirror.state import Mirror

__all__ = ["Applied", "LiveMirror", "Mirror", "Reorged", "Screen", "load_mirror"]
