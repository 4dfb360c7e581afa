# Everything runs inside the local virtual environment .venv, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTANCES ?= 20
ENV ?= dev

.PHONY: venv js test lint docs demo bench bench-tracking chaos chaos-two worker creator clean

$(BIN)/activate: requirements.txt requirements-dev.txt pyproject.toml sandbox/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q -e . --no-deps
	$(BIN)/pip install -q -e sandbox --no-deps
	touch $(BIN)/activate

venv: $(BIN)/activate ## create .venv with runtime and dev dependencies, the product and the sandbox (editable)

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
