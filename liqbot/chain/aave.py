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

# PoolConfigurator
INIT_RESERVES = Function(
    "initReserves((address,address,address,uint8,address,address,address,address,string,string,string,string,string,string,bytes)[])"
)
CONFIGURE_RESERVE_AS_COLLATERAL = Function("configureReserveAsCollateral(address,uint256,uint256,uint256)")
SET_RESERVE_BORROWING = Function("setReserveBorrowing(address,bool)")
SET_RESERVE_FACTOR = Function("setReserveFactor(address,uint256)")
SET_LIQUIDATION_PROTOCOL_FEE = Function("setLiquidationProtocolFee(address,uint256)")

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
