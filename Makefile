# Two front doors: `make demo` (the article end to end) and `make test` (every check).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test unit test-lowest deps lint typecheck pytest bench bench-peer soak soak-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,uvloop]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mutls demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy src

pytest: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

# The Debian packages of .ci/packages: installed when root with apt-get, else named (and the
# tests that need them skipped).
deps:
	.ci/deps

test: deps lint typecheck pytest

# The fast tier, for the edit-test loop: the tests that start no server (tests/unit, and the
# conformance and fuzz modules that drive the engines in memory), less those marked slow.
# `make test` still runs every test, these included.
UNIT_TESTS := tests/unit tests/conformance/test_one_chain.py \
	tests/conformance/test_tls_client_auth.py tests/fuzz/test_fuzz_forwarded.py \
	tests/fuzz/test_fuzz_http.py tests/fuzz/test_fuzz_pki.py tests/fuzz/test_fuzz_proxy_headers.py \
	tests/fuzz/test_fuzz_proxy_protocol.py tests/fuzz/test_fuzz_tls.py
unit: $(STAMP)
	$(BIN)/pytest -q -m "not slow" $(UNIT_TESTS) $(PYTEST_ARGS)

# The same tests on the lowest versions pyproject admits (.ci/lowest.txt), in their own venv.
LOWEST := .venv-lowest
$(LOWEST)/.installed: pyproject.toml .ci/lowest.txt
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install -q --upgrade pip
	$(LOWEST)/bin/python -m pip install -q -c .ci/lowest.txt -e '.[test,uvloop]'
	touch $@

test-lowest: $(LOWEST)/.installed
	$(LOWEST)/bin/python -m pip list 2>/dev/null | grep -iE '^(cryptography|pyopenssl|cffi|httptools|h2|hpack|hyperframe|wsproto|prometheus.client) '
	$(LOWEST)/bin/pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# The independent harness (../shared/peer-bench, or PEER_BENCH=DIR): see bench/peer_bench.sh.
bench-peer: $(STAMP)
	bench/peer_bench.sh

SOAK_S ?= 120
soak: $(STAMP)
	$(BIN)/python bench/soak.py --seconds $(SOAK_S)

# One short round (~45 s): a quick check, not a figure.
soak-quick: $(STAMP)
	$(BIN)/python bench/soak.py --quick

clean:
	rm -rf $(VENV) $(LOWEST) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
