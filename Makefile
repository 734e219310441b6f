# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test load-test lint format bench clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# headless: no first-run e-mail prompt; open the URL it prints (http://localhost:8501)
run: $(VENV)/.installed
	$(PY) -m streamlit run dashboard.py --server.headless true

test: $(VENV)/.dev-installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports  # the rooms' import rules (pyproject.toml, [tool.importlinter])
	$(PY) -m pytest

# the load tests alone (also in make test): 8 browsers uploading while a run trains, and
# 30 pages watching a run train; they print answers, seconds, memory, refresh and health
# latency, the server's CPU
load-test: $(VENV)/.dev-installed
	$(PY) -m pytest -m load -s tests/test_browser_load.py tests/test_watchers.py

lint: $(VENV)/.dev-installed
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: $(VENV)/.installed
	$(PY) bench/bench_epoch.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
