# The single entry point: CI, the README and developers all go through these targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP_PY  := $(VENV)/.installed
STAMP_NPM := node_modules/.installed

.PHONY: setup test test-unit lint chaos bench demo clean
BENCH_ARGS ?=
DEMO_ARGS ?=
.DEFAULT_GOAL := help

help:
	@echo "make demo    the whole stack on a local devnet, liquidating live (Ctrl-C stops it)"
	@echo "make setup   venv in $(VENV), pip and npm installs (idempotent)"
	@echo "make test    the whole test suite (unit + integration against anvil, Redis, PostgreSQL)"
	@echo "make lint    ruff"
	@echo "make bench   the latency benchmark (fast path vs WS_FAST_PATH=false); see bench/RESULTS.md"
	@echo "make chaos   the fault-injection suite (SIGKILL, Redis restart, WebSocket cut during a crash)"

setup: $(STAMP_PY) $(STAMP_NPM)

$(STAMP_PY): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

# --ignore-scripts: anvil's binary arrives in its platform package; its postinstall would only re-check it.
# Then compile once what no package ships built: the settable feed, our flash liquidator and Aave v3.6
# (under .cache/, ~30 s).
$(STAMP_NPM): package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts
	$(PY) -c "from liqbot.devnet import artifacts, v36; artifacts.anvil_binary(); artifacts.ours('SettableAggregator'); artifacts.ours('FlashLiquidator'); v36.compile_all()"
	touch $@

demo: setup
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)
	$(VENV)/bin/liqbot demo $(DEMO_ARGS)

test: setup
	$(PY) -m pytest

test-unit: setup
	$(PY) -m pytest tests/unit

chaos: setup
	$(PY) -m pytest tests/chaos -m chaos -s

bench: setup
	$(PY) -m bench.run $(BENCH_ARGS)

race: setup
	$(PY) -m bench.race $(RACE_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) node_modules .cache .devnet
