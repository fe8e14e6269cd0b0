"""The pure core: plain data and integer arithmetic, no I/O (no web3, redis, celery or sqlalchemy)."""
