// SPDX-License-Identifier: AGPL-3.0
pragma solidity 0.8.27;

import {IPool} from '@aave/core-v3/contracts/interfaces/IPool.sol';
import {IPoolAddressesProvider} from '@aave/core-v3/contracts/interfaces/IPoolAddressesProvider.sol';
import {IFlashLoanSimpleReceiver} from '@aave/core-v3/contracts/flashloan/interfaces/IFlashLoanSimpleReceiver.sol';
import {IERC20} from '@aave/core-v3/contracts/dependencies/openzeppelin/contracts/IERC20.sol';
import {GPv2SafeERC20} from '@aave/core-v3/contracts/dependencies/gnosis/contracts/GPv2SafeERC20.sol';
import {ISwapRouter} from '@uniswap/v3-periphery/contracts/interfaces/ISwapRouter.sol';

/// @title liqbot's capital-free liquidator
/// @notice Borrows the debt asset from the Aave Pool's own flash loan, liquidates, sells all the seized
/// collateral on Uniswap v3 for the debt asset, repays the loan and sends what is left to the owner.
/// Holds nothing between calls; a liquidation that would not repay, or not earn `minProfit`, reverts.
contract FlashLiquidator is IFlashLoanSimpleReceiver {
  using GPv2SafeERC20 for IERC20;

  /// @dev Bumped when the entry points change, so the bot refuses a contract it does not speak to.
  uint256 private constant VERSION = 1;
  /// @dev A Uniswap v3 path: token (20 bytes), then (fee (3 bytes), token (20 bytes)) per hop.
  uint256 private constant ADDR = 20;
  uint256 private constant HOP = 23;

  IPoolAddressesProvider public immutable override ADDRESSES_PROVIDER;
  IPool public immutable override POOL;
  ISwapRouter public immutable ROUTER;
  address public immutable owner;

  error NotOwner();
  error NotPool();
  error NotInitiator();
  error BadPath();
  error ApproveFailed(address token);
  error ProfitTooLow(uint256 profit, uint256 minProfit);

  modifier onlyOwner() {
    if (msg.sender != owner) revert NotOwner();
    _;
  }

  constructor(IPoolAddressesProvider provider, ISwapRouter router) {
    ADDRESSES_PROVIDER = provider;
    POOL = IPool(provider.getPool());
    ROUTER = router;
    owner = msg.sender;
  }

  /// @notice Marker for liqbot's start-up check: this contract, and which version of it.
  function LIQBOT_LIQUIDATOR() external pure returns (uint256) {
    return VERSION;
  }

  /// @notice Liquidate `user` with `debtToCover` of `debt` borrowed for the length of the call; `path` sells
  /// `collateral` for `debt` (empty when they are the same asset). Returns the profit sent to the owner.
  function liquidate(
    address collateral,
    address debt,
    address user,
    uint256 debtToCover,
    bytes calldata path,
    uint256 minProfit
  ) external onlyOwner returns (uint256 profit) {
    _checkPath(path, collateral, debt);
    uint256 before = IERC20(debt).balanceOf(address(this));
    POOL.flashLoanSimple(address(this), debt, debtToCover, abi.encode(collateral, user, path), 0);
    profit = IERC20(debt).balanceOf(address(this)) - before;
    if (profit < minProfit) revert ProfitTooLow(profit, minProfit);
    IERC20(debt).safeTransfer(owner, profit);
  }

  /// @inheritdoc IFlashLoanSimpleReceiver
  function executeOperation(
    address asset,
    uint256 amount,
    uint256 premium,
    address initiator,
    bytes calldata params
  ) external override returns (bool) {
    if (msg.sender != address(POOL)) revert NotPool();
    if (initiator != address(this)) revert NotInitiator();
    (address collateral, address user, bytes memory path) = abi.decode(params, (address, address, bytes));

    uint256 debtBefore = IERC20(asset).balanceOf(address(this));
    uint256 collateralBefore = collateral == asset ? 0 : IERC20(collateral).balanceOf(address(this));
    _approve(asset, address(POOL), amount);
    POOL.liquidationCall(collateral, asset, user, amount, false);

    if (collateral != asset) {
      // The Pool may have taken less than `amount` (the close factor, or less debt): what it left over
      // repays part of the loan, the swap must bring the rest.
      uint256 used = debtBefore - IERC20(asset).balanceOf(address(this));
      uint256 seized = IERC20(collateral).balanceOf(address(this)) - collateralBefore;
      _approve(collateral, address(ROUTER), seized);
      ROUTER.exactInput(
        ISwapRouter.ExactInputParams({
          path: path,
          recipient: address(this),
          deadline: block.timestamp,
          amountIn: seized,
          amountOutMinimum: used + premium
        })
      );
      _approve(collateral, address(ROUTER), 0);
    }
    _approve(asset, address(POOL), amount + premium); // the Pool pulls exactly this
    return true;
  }

  /// @notice Send this contract's whole balance of `token` to `to` (anything sent here by mistake).
  function sweep(address token, address to) external onlyOwner {
    IERC20(token).safeTransfer(to, IERC20(token).balanceOf(address(this)));
  }

  /// @dev `path` must start at `tokenIn` and end at `tokenOut`; no swap (empty path) for the same asset.
  function _checkPath(bytes calldata path, address tokenIn, address tokenOut) private pure {
    uint256 n = path.length;
    if (tokenIn == tokenOut) {
      if (n != 0) revert BadPath();
      return;
    }
    if (
      n < ADDR + HOP ||
      (n - ADDR) % HOP != 0 ||
      address(bytes20(path[:ADDR])) != tokenIn ||
      address(bytes20(path[n - ADDR:])) != tokenOut
    ) revert BadPath();
  }

  /// @dev approve() for tokens that return nothing (USDT) or refuse a change from one non-zero
  /// allowance to another: then through zero.
  function _approve(address token, address spender, uint256 value) private {
    if (_tryApprove(token, spender, value)) return;
    if (!_tryApprove(token, spender, 0) || !_tryApprove(token, spender, value)) revert ApproveFailed(token);
  }

  function _tryApprove(address token, address spender, uint256 value) private returns (bool) {
    (bool ok, bytes memory ret) = token.call(abi.encodeCall(IERC20.approve, (spender, value)));
    return ok && (ret.length == 0 ? token.code.length > 0 : abi.decode(ret, (bool)));
  }
}
