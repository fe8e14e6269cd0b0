// SPDX-License-Identifier: MIT
pragma solidity 0.8.27;

/// A Chainlink-style price feed for the devnet whose answer can be moved.
/// core-v3's MockAggregator has a fixed answer; this one emits AnswerUpdated like a real
/// aggregator on every change, so the bot's price-feed subscription sees devnet price moves.
contract SettableAggregator {
  event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);
  event NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt);

  address public immutable owner;
  uint8 public immutable decimals;
  string public description;
  uint256 public latestRound;
  mapping(uint256 => int256) public getAnswer;
  mapping(uint256 => uint256) public getTimestamp;

  constructor(int256 initialAnswer, uint8 decimals_, string memory description_) {
    owner = msg.sender;
    decimals = decimals_;
    description = description_;
    _set(initialAnswer);
  }

  function setAnswer(int256 answer) external {
    require(msg.sender == owner, 'only owner');
    _set(answer);
  }

  function latestAnswer() external view returns (int256) {
    return getAnswer[latestRound];
  }

  function latestTimestamp() external view returns (uint256) {
    return getTimestamp[latestRound];
  }

  function latestRoundData()
    external
    view
    returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
  {
    uint256 r = latestRound;
    return (uint80(r), getAnswer[r], getTimestamp[r], getTimestamp[r], uint80(r));
  }

  function _set(int256 answer) internal {
    require(answer > 0, 'answer must be positive');
    uint256 r = latestRound + 1;
    latestRound = r;
    getAnswer[r] = answer;
    getTimestamp[r] = block.timestamp;
    emit NewRound(r, msg.sender, block.timestamp);
    emit AnswerUpdated(answer, r, block.timestamp);
  }
}
