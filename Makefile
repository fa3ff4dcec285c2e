# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: install demo test bench bench-10m faults fuzz clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(INSTALLED)

install: $(INSTALLED)

demo: $(INSTALLED)
	$(VENV)/bin/bulkorder demo

test: $(INSTALLED)
	$(PY) -m pytest

# Every tests/benchmarks/bench_*.py is a script; each prints its table and the figures
# to record in docs/benchmarks.md. Not timed tests: targets are checked by reading them.
bench: $(INSTALLED)
	@set -e; for script in tests/benchmarks/bench_*.py; do \
		name=$$(basename $$script .py); echo "== $$name"; $(PY) -m tests.benchmarks.$$name; done

# bulkorder import alone, 10,000,000 items on moto S3, then on the folder store (a ~4.8 GB file, generated once and kept).
bench-10m: $(INSTALLED)
	$(PY) -m tests.benchmarks.bench_import --items 10000000 --bulkorder-only --folder --workdir $${TMPDIR:-/tmp}/bulkorder-bench

# The fault-injection suite at full scale (500,000-item imports, 10,000 messages...): each
# case prints one FAULT line. `make test` runs the same cases reduced. See docs/consistency.md.
faults: $(INSTALLED)
	BULKORDER_FAULT_SCALE=full $(PY) -m pytest tests/faults -q

# Every fuzz target for minutes (BULKORDER_FUZZ_EXAMPLES examples each); `make test` runs
# them briefly. Crashes are kept in .hypothesis/ and replayed first. See docs/security.md.
fuzz: $(INSTALLED)
	BULKORDER_FUZZ=1 $(PY) -m pytest tests/fuzz -q

clean:
	rm -rf $(VENV) .bulkorder .pytest_cache
