# backpain-cds — two commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

BROWSER := $(VENV)/.browser
FHIRSRV := sandbox/fhir-server/node_modules/.installed

.PHONY: serve test compiled test-compiled check lint format bench bench-wrk bench-decode load-test constraints clean

# The service's dependencies at the versions the image installs (requirements/constraints.txt); the test tools float.
$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]' -c requirements/constraints.txt -c requirements/build.txt --config-settings editable_mode=compat  # the checkout on sys.path: its tools too
	touch $(STAMP)

# Re-resolve the image's pinned versions: the package with its postgres and redis extras in a fresh virtualenv.
constraints:
	rm -rf $(VENV)-freeze && $(PYTHON) -m venv $(VENV)-freeze
	$(VENV)-freeze/bin/pip install --quiet '.[postgres,redis]'
	{ sed -n '/^#/p' requirements/constraints.txt; $(VENV)-freeze/bin/pip freeze --exclude backpain-cds; } > requirements/constraints.txt.new
	mv requirements/constraints.txt.new requirements/constraints.txt && rm -rf $(VENV)-freeze

# Debian's Chromium for the review-page browser test (Playwright drives it; no browser download).
$(BROWSER): $(STAMP)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	    echo "WARNING: could not install Debian's chromium; the browser test will be skipped"; }
	touch $(BROWSER)

# The in-memory FHIR server (Medplum router) used to replay patients through the fallback-fetch path.
$(FHIRSRV): sandbox/fhir-server/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  (cd sandbox/fhir-server && npm ci --silent --no-audit --no-fund) && touch $(FHIRSRV) || \
	    echo "WARNING: npm ci failed; the FHIR fallback replay test will be skipped"; \
	else echo "WARNING: npm not found; the FHIR fallback replay test will be skipped"; fi

serve: $(STAMP)  ## set up and run the service on 127.0.0.1:8080 (embedded defaults)
	$(VENV)/bin/backpain-cds serve

SOURCES := cds_service hooks tests scripts sandbox bench setup.py

lint: $(STAMP)  ## ruff (lint rules incl. line length and complexity), the formatter's check, mypy, hadolint
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint Dockerfile

check: lint  ## lint, then the unit and integration tests (no browser or FHIR-server set-up; those tests skip with a reason)
	$(PY) -m pytest -q

format: $(STAMP)  ## rewrite the sources in the project's format (ruff format), then fix what ruff can
	$(VENV)/bin/ruff format $(SOURCES)
	$(VENV)/bin/ruff check --fix $(SOURCES)

test: $(STAMP) $(BROWSER) $(FHIRSRV)  ## set up and run every test
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest -q
	$(VENV)/bin/backpain-cds replay --no-colour sandbox/patients
	@if reason=$$($(PY) scripts/check_compiled.py --can-build); then $(MAKE) --no-print-directory test-compiled; \
	else echo "WARNING: $$reason: the compiled build (README \"Compiled build\") is not tested on this machine"; fi

# The compiled build (README "Compiled build"): a copy of the checkout with the modules setup.py lists compiled in place
# by mypyc, as the image's build stage compiles them; the service's tests and the replay run again on that copy, after a
# check that those modules are the C extensions there. The image runs this code, so it is tested as well as the source.
COMPILED_COPY := build/compiled
compiled: $(STAMP)  ## the compiled copy of the checkout in build/compiled (what test-compiled and bench-wrk run)
	rm -rf $(COMPILED_COPY) && mkdir -p $(COMPILED_COPY)
	tar -cf - --exclude=./.venv --exclude=./build --exclude=./.git --exclude=./sandbox/fhir-server/node_modules . \
	  | tar -xf - -C $(COMPILED_COPY)
	cd $(COMPILED_COPY) && BPCDS_MYPYC=1 $(abspath $(PY)) setup.py -q build_ext --inplace >build-ext.log 2>&1 \
	  || { tail -40 build-ext.log; exit 1; }
	cd $(COMPILED_COPY) && $(abspath $(PY)) scripts/check_compiled.py

test-compiled: compiled  ## the service's tests and the replay on the compiled copy
	cd $(COMPILED_COPY) && BPCDS_EXPECT_COMPILED=1 \
	  $(abspath $(PY)) -m pytest -q -p no:cacheprovider tests/cds_service tests/hooks
	cd $(COMPILED_COPY) && $(abspath $(PY)) -m hooks.cli replay --no-colour sandbox/patients

bench: $(STAMP)  ## full benchmark (minutes); figures in bench/results/latest.json
	$(VENV)/bin/backpain-cds bench

bench-wrk: $(STAMP)  ## floor vs service under wrk (Debian's C load generator): latency, CPU per call, RSS, spread
	@command -v wrk >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)
	$(MAKE) --no-print-directory compiled
	$(VENV)/bin/backpain-cds bench-wrk --admission 1 --compiled $(COMPILED_COPY)

bench-decode: $(STAMP)  ## in one process: parse, snapshot walk, typed decode, record checks (ratios of the same run)
	$(VENV)/bin/backpain-cds bench-decode

load-test: $(STAMP)  ## bounded load + kill -9 durability run against the production server
	$(VENV)/bin/backpain-cds load-test

clean:
	rm -rf $(VENV) var .pytest_cache build
