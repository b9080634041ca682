# The two sacred commands: `make demo` (the example DAGs end to end against the emulator) and
# `make test` (the whole suite). Both start from nothing: the virtualenv is created inside the repo.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PIP_QUIET := -q --disable-pip-version-check

.PHONY: install demo test test-matrix lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_QUIET) --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -m pip install $(PIP_QUIET) -e ".[dev]" 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import airflow_provider_activecampaign, airflow.sdk, fastapi, requests_mock"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python demo/run_demo.py

test: install
	bash scripts/install-browser.sh
	bash scripts/install-services.sh
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest --ignore=tests/integration/test_s3_state.py
	# In a process of its own: in the full run an earlier test's process-wide S3 client state made the
	# in-process DAG run fail with NoCredentialsError (the same tests pass alone; to be found out).
	$(BIN)/python -m pytest tests/integration/test_s3_state.py

# The unit, emulator and integration suites on the oldest supported Airflow 3.1 and on 3.2 (make test
# covers the newest). One venv per release under .matrix/. AIRFLOW_MATRIX="3.1.0 3.2.2" to choose.
test-matrix:
	bash scripts/install-services.sh
	PYTHON=$(PYTHON) bash scripts/test-matrix.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# Each script prints its figures in one run; every measured case runs in a process of its own.
bench: install
	$(BIN)/python benchmarks/bench_send.py
	$(BIN)/python benchmarks/bench_local.py
	$(BIN)/python benchmarks/bench_million.py

clean:
	rm -rf $(VENV) .matrix .demo .airflow test-artifacts .pytest_cache .ruff_cache *.egg-info
