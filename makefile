# Developer commands. On a fresh clone, `make test` and `make sandbox` set up
# everything they need (Debian packages when run as root, a virtual
# environment in .venv) and say what they are doing. Each step checks what is
# there and does what is missing, so running a command again repairs what a
# failed run left behind: nothing is marked done before it works.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The newest Django needs Python 3.12+: the library's tests run once more on 3.13 when
# this machine has it (pyenv's or the system's).
NEWEST_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python) \
                             $(shell command -v python3.13 2>/dev/null))
NEWEST_VENV ?= .venv-newest
# What the newest-Django pass leaves to the first one, to keep CI under 25
# minutes: the topologies (a Galera cluster, a PostgreSQL standby), the
# browser and the property test, which test the ledger rather than Django.
FIRST_PASS_ONLY := test_galera.py test_replica.py test_properties.py \
                   test_browser.py test_browser_admin.py test_browser_reports.py
# Where `make sandbox` serves the demo.
SANDBOX_ADDRESS ?= 127.0.0.1:8000

# Debian packages, by what needs them: a virtual environment (venv); the
# MariaDB driver, which compiles (headers, compiler, pkg-config); the browser
# tests (Chromium, driven through Playwright).
SANDBOX_PACKAGES := python3-venv
# galera-4 and rsync: the three-node cluster the Galera tests and benchmark start.
TEST_PACKAGES := $(SANDBOX_PACKAGES) python3-dev build-essential pkg-config \
                 default-libmysqlclient-dev chromium galera-4 rsync
DEBIAN_PACKAGES := $(TEST_PACKAGES)

# $(call debian_packages,<packages>): install the missing ones as root; as
# anyone else, say which are missing and how to install them, and go on (what
# needs them is then skipped, with the reason).
define debian_packages
	@command -v dpkg >/dev/null || { echo "==> Not Debian: make sure these (or their equivalents) are installed: $(1)"; exit 0; }; \
	missing=$$(for p in $(1); do dpkg -s $$p 2>/dev/null | grep -q '^Status:.* installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "==> Installing Debian packages:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
	  echo "==> Missing Debian packages:" $$missing; \
	  echo "    Run 'sudo make system-packages' to install them; going on without them."; \
	fi
endef

.DEFAULT_GOAL := help
.PHONY: help install system-packages sandbox-packages test-packages mysql-driver test \
        test-newest soak bench lint format sandbox dist clean

help:
	@echo "make test             install everything (Debian packages too, as root) into $(VENV)"
	@echo "                      and run the suite on every reachable database (SQLite,"
	@echo "                      PostgreSQL, MariaDB; with a Galera cluster and a PostgreSQL"
	@echo "                      standby started for their tests), then the library's tests once"
	@echo "                      more on Python 3.13 with the newest Django, from the built wheel"
	@echo "make sandbox          rebuild the demo shop's database (migrate, demo data), print the"
	@echo "                      logins and run it on $(SANDBOX_ADDRESS); SQLite, or PostgreSQL with"
	@echo "                      SANDBOX_DATABASE_URL=postgres://user@host/<name with sandbox>"
	@echo "make soak             a one-minute soak (4 processes) on PostgreSQL and MariaDB"
	@echo "make bench            the benchmarks on every reachable database and on a three-node"
	@echo "                      Galera cluster, with a table of medians and the targets"
	@echo "                      (REPEAT=3; about 25 minutes)"
	@echo "make lint             ruff (lint and format check) and mypy"
	@echo "make system-packages  apt-get the Debian packages the suite needs (as root)"
	@echo "make dist             build the sdist and wheel into dist/"
	@echo "make clean            remove virtual environments and build output"

system-packages:
	$(call debian_packages,$(DEBIAN_PACKAGES))

sandbox-packages:
	$(call debian_packages,$(SANDBOX_PACKAGES))

test-packages:
	$(call debian_packages,$(TEST_PACKAGES))

# The stamp is touched only once everything in it has installed.
$(BIN)/.installed: setup.py pyproject.toml requirements.txt
	@test -x $(BIN)/python || { echo "==> Creating the virtual environment $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "==> Installing the package and its test requirements into $(VENV)"
	@$(BIN)/pip install -q -r requirements.txt -e ".[api]"
	@touch $@

install: sandbox-packages $(BIN)/.installed

# No stamp: whether the driver imports is checked on every run, so a build
# that failed (missing headers) is tried again once they are there.
mysql-driver: test-packages install
	@$(BIN)/python -c "import MySQLdb" 2>/dev/null || { \
	  echo "==> Building mysqlclient, the MariaDB driver (log: $(VENV)/mysqlclient.log)"; \
	  $(BIN)/pip install "mysqlclient>=2.2" >$(VENV)/mysqlclient.log 2>&1 && echo "    done" || \
	  echo "*** mysqlclient did not build (see $(VENV)/mysqlclient.log): the MariaDB run will be skipped. Run 'sudo make system-packages', then this again."; }

test: mysql-driver
	@echo "==> Running the suite on every reachable database"
	$(BIN)/python runtests.py
	@$(MAKE) --no-print-directory test-newest

test-newest: dist
	@if [ -z "$(NEWEST_PYTHON)" ]; then \
	  echo "==> Python 3.13 is not on this machine: skipped the newest-Django run."; exit 0; fi; \
	set -e; \
	echo "==> Installing the wheel with the newest Django into $(NEWEST_VENV) ($(NEWEST_PYTHON))"; \
	test -x $(NEWEST_VENV)/bin/python || $(NEWEST_PYTHON) -m venv $(NEWEST_VENV); \
	$(NEWEST_VENV)/bin/pip install -q -r requirements.txt "Django>=6.0"; \
	$(NEWEST_VENV)/bin/pip install -q --force-reinstall --no-deps dist/*.whl; \
	$(NEWEST_VENV)/bin/pip install -q "$$(ls dist/*.whl)[api]"; \
	$(NEWEST_VENV)/bin/python -c "import MySQLdb" 2>/dev/null || \
	  $(NEWEST_VENV)/bin/pip install "mysqlclient>=2.2" >$(NEWEST_VENV)/mysqlclient.log 2>&1 || \
	  echo "*** mysqlclient did not build for $(NEWEST_VENV): its MariaDB run will be skipped."; \
	$(NEWEST_VENV)/bin/python -c "import django; print('==> Newest run: Django', django.get_version())"; \
	ACCOUNTS_TEST_PG_PREPARED=1 $(NEWEST_VENV)/bin/python runtests.py --installed --set library -- \
	  $(foreach module,$(FIRST_PASS_ONLY),--ignore=tests/$(module))

soak: mysql-driver
	ACCOUNTS_SOAK_SECONDS=$${ACCOUNTS_SOAK_SECONDS:-60} $(BIN)/python runtests.py \
	  --backend postgresql --backend mariadb -- tests/test_resilience.py -s -q

REPEAT ?= 3
bench: mysql-driver
	$(BIN)/python -m tests.benchmarks.run --repeat $(REPEAT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

dist: install
	@echo "==> Building the sdist and the wheel into dist/"
	@rm -rf dist build
	@$(BIN)/python -m build --sdist --wheel --outdir dist . >/dev/null
	@ls dist

# Every run starts from a clean demo: rebuild_sandbox deletes the SQLite file,
# or drops and recreates the one database SANDBOX_DATABASE_URL names. The
# MariaDB driver is built only for a mysql:// SANDBOX_DATABASE_URL.
sandbox: install $(if $(filter mysql://%,$(SANDBOX_DATABASE_URL)),mysql-driver)
	@echo "==> Rebuilding the sandbox database"
	@SANDBOX_ADDRESS=$(SANDBOX_ADDRESS) $(BIN)/python sandbox/manage.py rebuild_sandbox
	@echo "==> Starting the development server on http://$(SANDBOX_ADDRESS)/ (Ctrl-C stops it)"
	@$(BIN)/python sandbox/manage.py runserver $(SANDBOX_ADDRESS)

clean:
	rm -rf $(VENV) $(NEWEST_VENV) dist build *.egg-info sandbox/db.sqlite3
