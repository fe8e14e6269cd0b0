"""The Aave v3 functions and events liqbot uses, as signatures (see chain/abi.py)."""

from liqbot.chain.abi import Event, Function

_ADDR = "address"
_U256 = "uint256"

# PoolAddressesProvider
GET_POOL = Function("getPool()", _ADDR)
GET_PRICE_ORACLE = Function("getPriceOracle()", _ADDR)
GET_POOL_DATA_PROVIDER = Function("getPoolDataProvider()", _ADDR)
GET_ACL_MANAGER = Function("getACLManager()", _ADDR)
GET_POOL_CONFIGURATOR = Function("getPoolConfigurator()", _ADDR)
GET_PRICE_ORACLE_SENTINEL = Function("getPriceOracleSentinel()", _ADDR)  # L2 markets: sequencer up, grace after
GET_LIQUIDATION_GRACE_PERIOD = Function("getLiquidationGracePeriod(address)", "uint40")  # on the Pool, v3.1+
GET_MARKET_ID = Function("getMarketId()", "string")
SET_ACL_ADMIN = Function("setACLAdmin(address)")
SET_ACL_MANAGER = Function("setACLManager(address)")
SET_POOL_IMPL = Function("setPoolImpl(address)")
SET_POOL_CONFIGURATOR_IMPL = Function("setPoolConfiguratorImpl(address)")
SET_POOL_DATA_PROVIDER = Function("setPoolDataProvider(address)")
SET_PRICE_ORACLE = Function("setPriceOracle(address)")

# ACLManager
ADD_POOL_ADMIN = Function("addPoolAdmin(address)")
ADD_RISK_ADMIN = Function("addRiskAdmin(address)")
ADD_EMERGENCY_ADMIN = Function("addEmergencyAdmin(address)")
ADD_ASSET_LISTING_ADMIN = Function("addAssetListingAdmin(address)")

# Pool
INITIALIZE = Function("initialize(address)")
POOL_REVISION = Function("POOL_REVISION()", _U256)
GET_RESERVES_LIST = Function("getReservesList()", "address[]")
GET_RESERVE_ADDRESS_BY_ID = Function("getReserveAddressById(uint16)", _ADDR)
GET_USER_ACCOUNT_DATA = Function(
    "getUserAccountData(address)", "uint256,uint256,uint256,uint256,uint256,uint256"
)
GET_USER_CONFIGURATION = Function("getUserConfiguration(address)", "uint256")
GET_CONFIGURATION = Function("getConfiguration(address)", "uint256")  # a reserve's configuration word (flash loans: bit 63)
# ReserveData (v3.0-3.2): configuration, liquidityIndex, currentLiquidityRate, variableBorrowIndex,
# currentVariableBorrowRate, currentStableBorrowRate, lastUpdateTimestamp, id, aTokenAddress,
# stableDebtTokenAddress, variableDebtTokenAddress, interestRateStrategyAddress, accruedToTreasury,
# unbacked, isolationModeTotalDebt
GET_RESERVE_DATA = Function(
    "getReserveData(address)",
    "(uint256,uint128,uint128,uint128,uint128,uint128,uint40,uint16,address,address,address,address,uint128,uint128,uint128)",
)
SUPPLY = Function("supply(address,uint256,address,uint16)")
BORROW = Function("borrow(address,uint256,uint256,uint16,address)")
REPAY = Function("repay(address,uint256,uint256,address)")
WITHDRAW = Function("withdraw(address,uint256,address)", _U256)
LIQUIDATION_CALL = Function("liquidationCall(address,address,address,uint256,bool)")
FLASH_LOAN_SIMPLE = Function("flashLoanSimple(address,address,uint256,bytes,uint16)")  # receiver, asset, amount, params, referral
FLASHLOAN_PREMIUM_TOTAL = Function("FLASHLOAN_PREMIUM_TOTAL()", "uint128")  # bps of the amount
FLASHLOAN_PREMIUM_TO_PROTOCOL = Function("FLASHLOAN_PREMIUM_TO_PROTOCOL()", "uint128")  # bps of the premium; 100_00 from v3.4

# PoolConfigurator
INIT_RESERVES = Function(
    "initReserves((address,address,address,uint8,address,address,address,address,string,string,string,string,string,string,bytes)[])"
)
CONFIGURE_RESERVE_AS_COLLATERAL = Function("configureReserveAsCollateral(address,uint256,uint256,uint256)")
SET_RESERVE_BORROWING = Function("setReserveBorrowing(address,bool)")
SET_RESERVE_FACTOR = Function("setReserveFactor(address,uint256)")
SET_LIQUIDATION_PROTOCOL_FEE = Function("setLiquidationProtocolFee(address,uint256)")
SET_RESERVE_FLASH_LOANING = Function("setReserveFlashLoaning(address,bool)")  # off after initReserves
UPDATE_FLASHLOAN_PREMIUM_TOTAL = Function("updateFlashloanPremiumTotal(uint128)")  # v3.0-3.3
UPDATE_FLASHLOAN_PREMIUM_TO_PROTOCOL = Function("updateFlashloanPremiumToProtocol(uint128)")  # v3.0-3.3
UPDATE_FLASHLOAN_PREMIUM = Function("updateFlashloanPremium(uint128)")  # v3.4+: one premium, all to the treasury

# AaveProtocolDataProvider
GET_RESERVE_CONFIGURATION_DATA = Function(
    "getReserveConfigurationData(address)",
    "uint256,uint256,uint256,uint256,uint256,bool,bool,bool,bool,bool",
)  # decimals, ltv, liquidationThreshold, liquidationBonus, reserveFactor, usageAsCollateralEnabled,
#    borrowingEnabled, stableBorrowRateEnabled, isActive, isFrozen
GET_LIQUIDATION_PROTOCOL_FEE = Function("getLiquidationProtocolFee(address)", _U256)
GET_PAUSED = Function("getPaused(address)", "bool")
GET_RESERVE_TOKENS_ADDRESSES = Function("getReserveTokensAddresses(address)", "address,address,address")
GET_USER_RESERVE_DATA = Function(
    "getUserReserveData(address,address)",
    "uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint40,bool",
)  # currentATokenBalance, currentStableDebt, currentVariableDebt, principalStableDebt,
#    scaledVariableDebt, stableBorrowRate, liquidityRate, stableRateLastUpdated, usageAsCollateralEnabled

# AaveOracle
GET_ASSET_PRICE = Function("getAssetPrice(address)", _U256)
GET_ASSETS_PRICES = Function("getAssetsPrices(address[])", "uint256[]")
GET_SOURCE_OF_ASSET = Function("getSourceOfAsset(address)", _ADDR)
BASE_CURRENCY_UNIT = Function("BASE_CURRENCY_UNIT()", _U256)
SET_ASSET_SOURCES = Function("setAssetSources(address[],address[])")

# ERC20 and the devnet's mintable tokens
BALANCE_OF = Function("balanceOf(address)", _U256)
DECIMALS = Function("decimals()", "uint8")
SYMBOL = Function("symbol()", "string")
APPROVE = Function("approve(address,uint256)", "bool")
ALLOWANCE = Function("allowance(address,address)", _U256)
MINT_TO = Function("mint(address,uint256)", "bool")

# Price feeds
LATEST_ANSWER = Function("latestAnswer()", "int256")
SET_ANSWER = Function("setAnswer(int256)")

# Events
SUPPLY_EVENT = Event(
    "Supply(address indexed reserve, address user, address indexed onBehalfOf, uint256 amount, uint16 indexed referralCode)"
)
WITHDRAW_EVENT = Event("Withdraw(address indexed reserve, address indexed user, address indexed to, uint256 amount)")
BORROW_EVENT = Event(
    "Borrow(address indexed reserve, address user, address indexed onBehalfOf, uint256 amount, uint8 interestRateMode, uint256 borrowRate, uint16 indexed referralCode)"
)
REPAY_EVENT = Event("Repay(address indexed reserve, address indexed user, address indexed repayer, uint256 amount, bool useATokens)")
COLLATERAL_ENABLED_EVENT = Event("ReserveUsedAsCollateralEnabled(address indexed reserve, address indexed user)")
COLLATERAL_DISABLED_EVENT = Event("ReserveUsedAsCollateralDisabled(address indexed reserve, address indexed user)")
EMODE_EVENT = Event("UserEModeSet(address indexed user, uint8 categoryId)")
LIQUIDATION_CALL_EVENT = Event(
    "LiquidationCall(address indexed collateralAsset, address indexed debtAsset, address indexed user, uint256 debtToCover, uint256 liquidatedCollateralAmount, address liquidator, bool receiveAToken)"
)
BALANCE_TRANSFER_EVENT = Event("BalanceTransfer(address indexed from, address indexed to, uint256 value, uint256 index)")
ANSWER_UPDATED_EVENT = Event("AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt)")
ASSET_SOURCE_UPDATED_EVENT = Event("AssetSourceUpdated(address indexed asset, address indexed source)")

UINT256_MAX = 2**256 - 1
VARIABLE_RATE = 2

# The market mirror (liqbot/mirror): everything GenericLogic reads, to recompute account data off chain.
ADDRESSES_PROVIDER = Function("ADDRESSES_PROVIDER()", _ADDR)  # on the Pool
GET_USER_EMODE = Function("getUserEMode(address)", _U256)
SET_USER_EMODE = Function("setUserEMode(uint8)")
# v3.0-3.1: (ltv, liquidationThreshold, liquidationBonus, priceSource, label)
GET_EMODE_CATEGORY_DATA = Function("getEModeCategoryData(uint8)", "(uint16,uint16,uint16,address,string)")
# v3.2+: (ltv, liquidationThreshold, liquidationBonus) and the per-reserve bitmaps
GET_EMODE_CATEGORY_COLLATERAL_CONFIG = Function("getEModeCategoryCollateralConfig(uint8)", "(uint16,uint16,uint16)")
GET_EMODE_CATEGORY_COLLATERAL_BITMAP = Function("getEModeCategoryCollateralBitmap(uint8)", "uint128")
GET_EMODE_CATEGORY_LTVZERO_BITMAP = Function("getEModeCategoryLtvzeroBitmap(uint8)", "uint128")  # v3.6+
SCALED_BALANCE_OF = Function("scaledBalanceOf(address)", _U256)  # aToken, variable debt token
TOTAL_SUPPLY = Function("totalSupply()", _U256)
PRINCIPAL_BALANCE_OF = Function("principalBalanceOf(address)", _U256)  # stable debt token (v3.0-3.1)
GET_USER_STABLE_RATE = Function("getUserStableRate(address)", _U256)
GET_USER_LAST_UPDATED = Function("getUserLastUpdated(address)", "uint40")
# PoolConfigurator: e-mode and stable borrowing (v3.0: category price source; v3.2+: per-asset bitmaps)
SET_EMODE_CATEGORY_V30 = Function("setEModeCategory(uint8,uint16,uint16,uint16,address,string)")
SET_ASSET_EMODE_CATEGORY = Function("setAssetEModeCategory(address,uint8)")
SET_EMODE_CATEGORY = Function("setEModeCategory(uint8,uint16,uint16,uint16,string)")
SET_ASSET_COLLATERAL_IN_EMODE = Function("setAssetCollateralInEMode(address,uint8,bool)")
SET_ASSET_BORROWABLE_IN_EMODE = Function("setAssetBorrowableInEMode(address,uint8,bool)")
SET_ASSET_LTVZERO_IN_EMODE = Function("setAssetLtvzeroInEMode(address,uint8,bool)")
SET_RESERVE_STABLE_RATE_BORROWING = Function("setReserveStableRateBorrowing(address,bool)")
STABLE_RATE = 1
SET_USER_USE_RESERVE_AS_COLLATERAL = Function("setUserUseReserveAsCollateral(address,bool)")

# The live mirror (liqbot/mirror/live.py): every event that can move account data, and what it re-reads.
RESERVE_DATA_UPDATED_EVENT = Event(
    "ReserveDataUpdated(address indexed reserve, uint256 liquidityRate, uint256 stableBorrowRate, uint256 variableBorrowRate, uint256 liquidityIndex, uint256 variableBorrowIndex)"
)
SWAP_BORROW_RATE_MODE_EVENT = Event("SwapBorrowRateMode(address indexed reserve, address indexed user, uint8 interestRateMode)")  # v3.0-3.1
REBALANCE_STABLE_BORROW_RATE_EVENT = Event("RebalanceStableBorrowRate(address indexed reserve, address indexed user)")  # v3.0-3.1
MINT_UNBACKED_EVENT = Event(
    "MintUnbacked(address indexed reserve, address user, address indexed onBehalfOf, uint256 amount, uint16 indexed referralCode)"
)  # v3.0-3.3 bridges: aTokens minted without a Supply event
FALLBACK_ORACLE_UPDATED_EVENT = Event("FallbackOracleUpdated(address indexed fallbackOracle)")
# PoolConfigurator: the events after which a reserve's configuration (or an e-mode category) is re-read
RESERVE_INITIALIZED_EVENT = Event(
    "ReserveInitialized(address indexed asset, address indexed aToken, address stableDebtToken, address variableDebtToken, address interestRateStrategyAddress)"
)
RESERVE_DROPPED_EVENT = Event("ReserveDropped(address indexed asset)")
COLLATERAL_CONFIGURATION_CHANGED_EVENT = Event(
    "CollateralConfigurationChanged(address indexed asset, uint256 ltv, uint256 liquidationThreshold, uint256 liquidationBonus)"
)
PENDING_LTV_CHANGED_EVENT = Event("PendingLtvChanged(address indexed asset, uint256 ltv)")  # v3.1+
RESERVE_ACTIVE_EVENT = Event("ReserveActive(address indexed asset, bool active)")
RESERVE_FROZEN_EVENT = Event("ReserveFrozen(address indexed asset, bool frozen)")
RESERVE_PAUSED_EVENT = Event("ReservePaused(address indexed asset, bool paused)")
LIQUIDATION_PROTOCOL_FEE_CHANGED_EVENT = Event("LiquidationProtocolFeeChanged(address indexed asset, uint256 oldFee, uint256 newFee)")
EMODE_ASSET_CATEGORY_CHANGED_EVENT = Event("EModeAssetCategoryChanged(address indexed asset, uint8 oldCategoryId, uint8 newCategoryId)")  # v3.0-3.1
EMODE_CATEGORY_ADDED_EVENT = Event(
    "EModeCategoryAdded(uint8 indexed categoryId, uint256 ltv, uint256 liquidationThreshold, uint256 liquidationBonus, address oracle, string label)"
)
ASSET_COLLATERAL_IN_EMODE_CHANGED_EVENT = Event("AssetCollateralInEModeChanged(address indexed asset, uint8 categoryId, bool collateral)")  # v3.2+
ASSET_LTVZERO_IN_EMODE_CHANGED_EVENT = Event("AssetLtvzeroInEModeChanged(address indexed asset, uint8 categoryId, bool ltvzero)")  # v3.6+
BASE_CURRENCY = Function("BASE_CURRENCY()", _ADDR)  # AaveOracle: the asset priced at BASE_CURRENCY_UNIT, no feed
AGGREGATOR = Function("aggregator()", _ADDR)  # Chainlink's EACAggregatorProxy: the contract that emits AnswerUpdated
TRANSFER = Function("transfer(address,uint256)", "bool")
SWAP_BORROW_RATE_MODE = Function("swapBorrowRateMode(address,uint256)")  # v3.0-3.1
SET_RESERVE_FREEZE = Function("setReserveFreeze(address,bool)")
REPAY_WITH_ATOKENS = Function("repayWithATokens(address,uint256,uint256)", _U256)
# PoolConfigurator events that change other bits of a reserve's configuration word (re-read too, so the
# mirror's word stays the Pool's)
RESERVE_BORROWING_EVENT = Event("ReserveBorrowing(address indexed asset, bool enabled)")
RESERVE_FLASH_LOANING_EVENT = Event("ReserveFlashLoaning(address indexed asset, bool enabled)")
RESERVE_STABLE_RATE_BORROWING_EVENT = Event("ReserveStableRateBorrowing(address indexed asset, bool enabled)")  # v3.0-3.1
RESERVE_FACTOR_CHANGED_EVENT = Event("ReserveFactorChanged(address indexed asset, uint256 oldReserveFactor, uint256 newReserveFactor)")
BORROW_CAP_CHANGED_EVENT = Event("BorrowCapChanged(address indexed asset, uint256 oldBorrowCap, uint256 newBorrowCap)")
SUPPLY_CAP_CHANGED_EVENT = Event("SupplyCapChanged(address indexed asset, uint256 oldSupplyCap, uint256 newSupplyCap)")
DEBT_CEILING_CHANGED_EVENT = Event("DebtCeilingChanged(address indexed asset, uint256 oldDebtCeiling, uint256 newDebtCeiling)")
SILOED_BORROWING_CHANGED_EVENT = Event("SiloedBorrowingChanged(address indexed asset, bool oldState, bool newState)")
UNBACKED_MINT_CAP_CHANGED_EVENT = Event("UnbackedMintCapChanged(address indexed asset, uint256 oldUnbackedMintCap, uint256 newUnbackedMintCap)")  # v3.0-3.3
BORROWABLE_IN_ISOLATION_CHANGED_EVENT = Event("BorrowableInIsolationChanged(address asset, bool borrowable)")
