"""One exception root, so callers and the CLI can tell our failures from bugs."""


class LiqbotError(Exception):
    """Base of every error liqbot raises on purpose; the CLI prints these as one line."""


class ConfigError(LiqbotError):
    """A setting is missing or malformed."""


class RpcError(LiqbotError):
    """The node answered a JSON-RPC call with an error."""

    def __init__(self, method: str, error: dict):
        self.method = method
        self.code = error.get("code")
        self.data = error.get("data")
        super().__init__(f"{method}: {error.get('message', error)}")

    @property
    def reverted(self) -> bool:
        """The call itself reverted (the same at that state, whoever asks), not the node or the transport."""
        return self.code == 3 or "execution reverted" in str(self).lower()


class DevnetError(LiqbotError):
    """The local chain could not be started, deployed or driven."""
