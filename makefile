# Developer commands. On a fresh clone, `make test` and `make sandbox` set up
# everything they need (a virtual environment in .venv) and run.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The newest Django needs Python 3.12+: the suite runs once more on 3.13 when
# this machine has it (pyenv's or the system's).
NEWEST_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python) \
                             $(shell command -v python3.13 2>/dev/null))
NEWEST_VENV ?= .venv-newest
# galera-4 and rsync: the three-node cluster the Galera tests and benchmark start.
DEBIAN_PACKAGES := default-libmysqlclient-dev pkg-config chromium chromium-driver galera-4 rsync

.DEFAULT_GOAL := help
.PHONY: help install system-packages test test-newest soak bench lint format sandbox dist clean

help:
	@echo "make test             install everything into $(VENV) and run the suite on every"
	@echo "                      reachable database (SQLite, PostgreSQL, MariaDB; with a Galera"
	@echo "                      cluster and a PostgreSQL standby started for their tests), then"
	@echo "                      once more on Python 3.13 with the newest Django, from the wheel"
	@echo "make sandbox          rebuild the demo shop's database (migrate, demo data), print the"
	@echo "                      logins and run it on 127.0.0.1:8000; SQLite, or PostgreSQL with"
	@echo "                      SANDBOX_DATABASE_URL=postgres://user@host/<name with sandbox>"
	@echo "make soak             a one-minute soak (4 processes) on PostgreSQL and MariaDB"
	@echo "make bench            the benchmarks on every reachable database and on a three-node"
	@echo "                      Galera cluster, with a table of medians and the targets"
	@echo "                      (REPEAT=3; about 25 minutes)"
	@echo "make lint             ruff (lint and format check) and mypy"
	@echo "make system-packages  apt-get the Debian packages the suite needs (as root)"
	@echo "make dist             build the sdist and wheel into dist/"
	@echo "make clean            remove virtual environments and build output"

$(BIN)/.installed: setup.py requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt -e .
	$(BIN)/pip install -q "mysqlclient>=2.2" || \
	  echo "*** mysqlclient did not build (run 'make system-packages'): MariaDB will be skipped"
	touch $@

install: $(BIN)/.installed

system-packages:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

test: install
	$(BIN)/python runtests.py
	$(MAKE) --no-print-directory test-newest

test-newest: dist
	@if [ -z "$(NEWEST_PYTHON)" ]; then \
	  echo "Python 3.13 is not on this machine: skipped the newest-Django run."; exit 0; fi; \
	set -e; \
	test -x $(NEWEST_VENV)/bin/python || $(NEWEST_PYTHON) -m venv $(NEWEST_VENV); \
	$(NEWEST_VENV)/bin/pip install -q -r requirements.txt "Django>=6.0"; \
	$(NEWEST_VENV)/bin/pip install -q --force-reinstall --no-deps dist/*.whl; \
	$(NEWEST_VENV)/bin/pip install -q "mysqlclient>=2.2" || true; \
	$(NEWEST_VENV)/bin/python -c "import django; print('Newest run: Django', django.get_version())"; \
	ACCOUNTS_TEST_PG_PREPARED=1 $(NEWEST_VENV)/bin/python runtests.py --installed

soak: install
	ACCOUNTS_SOAK_SECONDS=$${ACCOUNTS_SOAK_SECONDS:-60} $(BIN)/python runtests.py \
	  --backend postgresql --backend mariadb -- tests/test_resilience.py -s -q

REPEAT ?= 3
bench: install
	$(BIN)/python -m tests.benchmarks.run --repeat $(REPEAT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

dist: install
	rm -rf dist build
	$(BIN)/python -m build --sdist --wheel --outdir dist . >/dev/null
	@ls dist

# Every run starts from a clean demo: rebuild_sandbox deletes the SQLite file,
# or drops and recreates the one database SANDBOX_DATABASE_URL names.
sandbox: install
	$(BIN)/python sandbox/manage.py rebuild_sandbox
	$(BIN)/python sandbox/manage.py runserver 127.0.0.1:8000

clean:
	rm -rf $(VENV) $(NEWEST_VENV) dist build *.egg-info sandbox/db.sqlite3
