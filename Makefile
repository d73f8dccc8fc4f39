# The two commands of the README: `make demo` and `make test`. Each builds the
# environment from nothing. The venv is made from Debian's own Python with its
# site packages visible, so that umockdev's GObject bindings (python3-gi) load.
PYTHON_BASE ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# axe-core for the accessibility checks in the browser tests (tests/e2e).
AXE := tests/e2e/node_modules/axe-core/axe.min.js

.PHONY: demo test check lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON_BASE) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/kiosk demo --data-dir demo-data

$(AXE): tests/e2e/package.json tests/e2e/package-lock.json
	npm ci --prefix tests/e2e --no-audit --no-fund --loglevel=error
	touch $(AXE)

test: $(STAMP) $(AXE)
	$(PY) -m pytest $(PYTEST_ARGS)

# The edit-test loop: lint, types and the unit tests (the pure core), in well
# under two minutes. `make test` is the whole suite, as CI runs it.
check: lint typecheck
	$(PY) -m pytest -p no:cacheprovider -q tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check kiosk provisioning tests bench
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy kiosk provisioning

bench: $(STAMP)
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) demo-data .pytest_cache .mypy_cache .ruff_cache tests/e2e/node_modules test-artifacts
