"""The WebSocket producer: subscribe -> decode -> fast-path check -> enqueue."""
