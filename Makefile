# backpain-cds — two commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: serve test check lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)  ## set up and run the service on 127.0.0.1:8080 (embedded defaults)
	$(VENV)/bin/backpain-cds serve

lint: $(STAMP)
	$(VENV)/bin/ruff check cds_service hooks tests scripts sandbox

test: $(STAMP)  ## set up and run every test
	$(VENV)/bin/ruff check cds_service hooks tests scripts sandbox
	$(PY) -m pytest -q
	$(VENV)/bin/backpain-cds replay --no-colour sandbox/patients

bench: $(STAMP)
	$(VENV)/bin/backpain-cds bench

clean:
	rm -rf $(VENV) var .pytest_cache
