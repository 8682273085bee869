# `make run` and `make test` work on a fresh clone with only Python 3.11, make and git.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint format install bench-admin bench-admin-scale bench bench-scale bench-instructions

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# A local .env with a generated SECRET_KEY, written once and never committed.
.env: | $(STAMP)
	$(BIN)/python -c 'import secrets; print("SECRET_KEY=" + secrets.token_urlsafe(50))' > .env
	@echo "Wrote .env with a new SECRET_KEY."

run: $(STAMP) .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py ensure_admin
	$(BIN)/gunicorn --config gunicorn.conf.py project.wsgi

test: $(STAMP) lint
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# How fast the admin renders with 200 agents (a throwaway SQLite database).
bench-admin: $(STAMP)
	$(BIN)/python bench/admin_pages.py --agents 200 --rounds 20

# The same pages, sorts, filters and exports with 100,000 agents and 90 days of usage, on a
# throwaway PostgreSQL database (a few minutes to load; see bench/admin_pages.py).
bench-admin-scale: $(STAMP)
	$(BIN)/python bench/admin_pages.py --scale $(BENCH_ARGS)

# Throughput and latency of the API under load: gunicorn (gunicorn.conf.py) against a throwaway
# PostgreSQL database on 127.0.0.1:5432 (BENCH_ARGS="--db sqlite" for SQLite). See bench/api.py.
bench: $(STAMP)
	$(BIN)/python bench/api.py $(BENCH_ARGS)

# The same after loading 100,000 agents, 1,000,000 jobs and 90 days of usage history.
bench-scale: $(STAMP)
	$(BIN)/python bench/api.py --scale $(BENCH_ARGS)

# Instructions per request of the Python process, counted by valgrind: repeatable where the
# machine's clock is not (see bench/instructions.py).
bench-instructions: $(STAMP)
	$(BIN)/python bench/instructions.py $(BENCH_ARGS)
