# Everything runs inside the local virtual environment .venv, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTANCES ?= 20
ENV ?= dev

.PHONY: venv server-venv js test lint docs demo bench bench-tracking chaos chaos-two worker creator clean

# the stamps say which kind .venv is: a server's (server-venv) becomes a development one here, and back there
$(VENV)/dev.stamp: requirements.txt requirements-dev.txt pyproject.toml sandbox/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q -e . --no-deps
	$(BIN)/pip install -q -e sandbox --no-deps
	rm -f $(VENV)/server.stamp
	touch $@

venv: $(VENV)/dev.stamp ## create .venv with runtime and dev dependencies, the product and the sandbox (editable)

# What services-management/install.sh runs on a server: the product only (no sandbox, no test tools), installed
# non-editable so that the daemons run what the last install.sh installed, never a half-pulled checkout. Any
# other .venv (a development one, a failed attempt) is replaced. Every run reinstalls: the upgrade step.
server-venv: ## create .venv for a server: runtime dependencies and the product (non-editable), nothing else
	@[ -f $(VENV)/server.stamp ] && $(BIN)/python -c '' 2>/dev/null || { \
	  [ ! -d $(VENV) ] || echo "replacing $(VENV) with a product-only one"; rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q -r requirements.txt
	rm -rf build  # setuptools builds in the tree: a module deleted since the last build must not ship
	$(BIN)/pip install -q --no-deps --force-reinstall .
	touch $(VENV)/server.stamp

tests/js/node_modules: tests/js/package.json tests/js/package-lock.json
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error
	touch tests/js/node_modules

js: ## Camunda's JS external task client for tests/sandbox_camunda/test_js_client.py (needs node and npm)
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory tests/js/node_modules; \
	else echo "npm is missing: the JS client test will skip"; fi

test: venv js ## the test suite (needs RabbitMQ on localhost:5672), after ruff and the type check
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

docs: venv ## regenerate docs/process-designers.md from the code
	$(BIN)/python -m exchanger.designers_doc --write

demo: venv ## the whole pipeline against the sandbox, INSTANCES process instances
	$(BIN)/python -m exchanger_sandbox.demo --instances $(INSTANCES)

bench: venv ## benchmarks: figures printed, never pass/fail (engine, worker, whole pipeline)
	$(BIN)/python bench/engine_bench.py
	$(BIN)/python bench/worker_bench.py
	$(BIN)/python bench/pipeline_bench.py
	$(BIN)/python bench/sync_bench.py

bench-tracking: venv ## tracking at scale: open items per system vs the fakes' limits (TRACKING_ITEMS, TRACKING_MINUTES)
	$(BIN)/python bench/tracking_bench.py --items $(or $(TRACKING_ITEMS),10000) --minutes $(or $(TRACKING_MINUTES),10)

chaos: venv ## the fault test: kills, broker restart, injected faults; asserts with a ledger
	$(BIN)/python -m exchanger_sandbox.demo --chaos --instances $(or $(CHAOS_INSTANCES),300)

chaos-two: venv ## the fault test with two camunda-workers and two task-creators each killed, on quorum queues
	$(BIN)/python -m exchanger_sandbox.demo --chaos --replicas 2 --queue-type quorum --instances $(or $(CHAOS_INSTANCES),300)

worker: venv ## run camunda-worker in the foreground (ENV=dev|prod)
	cd camunda-worker && EXCHANGER_ENV=$(ENV) ../$(BIN)/python main.py

creator: venv ## run task-creator in the foreground (ENV=dev|prod)
	cd task-creator && EXCHANGER_ENV=$(ENV) ../$(BIN)/python main.py

clean:
	rm -rf $(VENV) logs .pytest_cache .ruff_cache tests/js/node_modules
