# Two entry points for a fresh machine: `make demo` and `make test`. Both set everything up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo-out

.PHONY: all install test lint typecheck pytest demo bench clean

all: test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel Cython

# Reinstall when the build inputs change; the editable install compiles scanner/_fasttlv.pyx.
$(STAMP): $(PY) pyproject.toml setup.py scanner/_fasttlv.pyx
	$(PY) -m pip install --quiet --no-build-isolation -e '.[test,dask]'
	$(PY) setup.py --quiet build_ext --inplace
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check scanner tests bench fuzz

typecheck: install
	$(VENV)/bin/mypy

# pytest runs twice: with the compiled kernel (and a check that it really loaded), then with the
# pure-Python twin forced, so both kernels pass the same suite.
pytest: install
	TRUSTSCAN_REQUIRE_COMPILED=1 $(PY) -m pytest -q
	SCANNER_NO_EXTENSIONS=1 $(PY) -m pytest -q -p no:cacheprovider

test: lint typecheck pytest

# The whole product on the built-in simulated fleet: build a lab of 2,000 phones with the
# "mixed" scenario, serve it on loopback, scan it, print the summary and the report's path.
DEMO_PHONES ?= 2000
# Exit codes 0/1/2 are the verdicts GO/NO_GO/INCOMPLETE (the mixed fleet is a NO_GO by design);
# only a usage or internal error (64/70) fails the target.
demo: install
	$(PY) -m scanner demo --phones $(DEMO_PHONES) --scenario mixed --out $(DEMO_OUT) || [ $$? -le 2 ]

bench: install
	$(PY) bench/bench_tlv.py

clean:
	rm -rf $(VENV) build *.egg-info scanner/*.so scanner/_fasttlv.c .pytest_cache .mypy_cache .ruff_cache
