"""Chain adapters: JSON-RPC, ABI encoding, Aave market discovery."""
