# OpenITB: every target creates .venv and installs what it needs itself.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint clean fhirjs axe

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/itb serve --demo $(SERVE_ARGS)

test: $(STAMP) fhirjs axe
	$(BIN)/pytest

# FHIR.js (npm package 'fhir', pinned in tests/fhirjs/package-lock.json) validates the R4 Bundles
# in tests/integration/clinic/test_fhir.py; skipped there when node is missing.
fhirjs: tests/fhirjs/node_modules/.installed

tests/fhirjs/node_modules/.installed: tests/fhirjs/package.json tests/fhirjs/package-lock.json
	@if command -v npm >/dev/null; then cd tests/fhirjs && npm ci --no-audit --no-fund --silent \
	  && touch node_modules/.installed; else echo "npm not found: FHIR.js checks will be skipped"; fi

# axe-core (npm, pinned in tests/axe/package-lock.json) checks every page in
# tests/e2e/test_every_page.py; skipped there when missing (failed under OPENITB_REQUIRE_ALL=1).
axe: tests/axe/node_modules/.installed

tests/axe/node_modules/.installed: tests/axe/package.json tests/axe/package-lock.json
	@if command -v npm >/dev/null; then cd tests/axe && npm ci --no-audit --no-fund --silent \
	  && touch node_modules/.installed; else echo "npm not found: axe-core checks will be skipped"; fi

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache
