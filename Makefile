# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
DEMO_DIR ?= data/demo
HOST ?= 127.0.0.1
PORT ?= 8050
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test bench lint install install-dev browser java clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PIP) install -q -e '.[dev,spark]'
	touch $@

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

demo: install
	$(PY) -m pipeline.cli demo --out $(DEMO_DIR) --if-missing
	$(PY) -m pipeline.cli serve --data $(DEMO_DIR) --host $(HOST) --port $(PORT)

test: install-dev browser java
	$(PY) -m pytest

bench: install
	$(PY) -m bench

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy pipeline dashboard app.py

clean:
	rm -rf $(VENV) .pytest_cache bench/work
