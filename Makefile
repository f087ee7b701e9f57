# Kartoteka: `make run` to try it, `make test` to check it. See README.md.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
B ?=

.PHONY: install run test lint fmt bench messages vendor clean-data

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# A developer's checkout gets DEBUG=true and its own SECRET_KEY; production sets
# its own environment and has no .env.
.env: | $(STAMP)
	$(BIN)/python -c "from config.run import ensure_env_file; ensure_env_file()"

install: $(STAMP) .env

run: install
	$(BIN)/python -m config.run

# The integration tests (real Celery workers in subprocesses) run in a session of
# their own: after the rest of the suite in one long session, their first workers
# were seen ready yet never reached (CI only, never in any subset).
test: install
	$(BIN)/python -m pytest --ignore=tests/integration
	$(BIN)/python -m pytest tests/integration

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DEBUG=true $(BIN)/python manage.py check
	DEBUG=true $(BIN)/python manage.py makemigrations --check --dry-run

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python bench/run.py $(B)

messages: install
	DEBUG=true $(BIN)/python manage.py makemessages -l pl -l en --ignore=.venv --ignore=.data
	DEBUG=true $(BIN)/python manage.py compilemessages --ignore=.venv

# The vendored browser libraries (static/vendor/) from package.json's pinned versions.
vendor:
	npm ci
	npm run vendor

clean-data:
	rm -rf .data
