"""Fixed-point units used on chain; amounts stay integers end to end."""

WAD = 10**18  # health factor
RAY = 10**27  # indexes and rates
BPS = 10_000  # ltv, thresholds, bonus, fees
UINT256_MAX = 2**256 - 1
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


def value_base(amount: int, price: int, decimals: int) -> int:
    """Token amount -> base-currency units, rounded down as Aave's GenericLogic does."""
    return amount * price // 10**decimals


def amount_for_base(base: int, price: int, decimals: int) -> int:
    """Base-currency units -> token amount, rounded down."""
    return base * 10**decimals // price
