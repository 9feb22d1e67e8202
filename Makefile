# The two commands: `make run` (everything on this machine) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test screenshots lint benchmark clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

run: install
	$(BIN)/python manage.py runregistry

# Tests may run against a DATABASE_URL server (CI) where no embedded key exists.
test: export SECRET_KEY ?= insecure-test-only-key
# Without a broker server, tests queue into their own folder, not the one `make run` consumes.
test: export CELERY_FILESYSTEM_BROKER_DIR ?= $(CURDIR)/var/test-broker
# Two processes (pytest-xdist): tests that start real worker processes stay on one of them (tests/conftest.py).
PYTEST_ARGS ?= -n 2 --dist loadgroup
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

screenshots: install
	UI_SCREENSHOTS=1 $(BIN)/python -m pytest tests/ui/test_browser.py \
		tests/ui/test_residency_page.py::test_in_chromium_the_plot_loads_lazily_and_show_all_opens_a_tier

lint: install
	$(BIN)/ruff check .

benchmark: install
	$(BIN)/python benchmarks/upload_throughput.py
	$(BIN)/python benchmarks/list_latency.py
	$(BIN)/python benchmarks/signature_verify.py
	$(BIN)/python benchmarks/audit_append.py
	$(BIN)/python benchmarks/audit_export.py
	$(BIN)/python benchmarks/promotions.py

clean:
	rm -rf var/tmp var/broker var/staticfiles
