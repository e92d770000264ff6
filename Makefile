# Two commands matter: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.modelbox-installed

.PHONY: demo test lint bench bench-peers setup clean proto

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel

$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PIP) install --constraint constraints.txt --config-settings editable_mode=compat -e '.[all,dev]'
	@touch $@

setup: $(STAMP)

demo: $(STAMP)
	$(PY) examples/quickstart.py

test: $(STAMP)
	$(PY) -m ruff check modelbox_autolog tests benchmarks examples
	$(PY) -m modelbox_autolog.proto.generate --check
	MODELBOX_AUTOLOG_TESTING=1 $(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check modelbox_autolog tests benchmarks examples
	$(PY) -m modelbox_autolog.proto.generate --check

# Regenerate the gRPC code from modelbox_autolog/proto/modelbox/v1/*.proto (grpcio-tools).
proto: $(STAMP)
	$(PY) -m modelbox_autolog.proto.generate

bench: $(STAMP)
	$(PY) benchmarks/bench_hotpath.py

clean:
	rm -rf $(VENV) modelbox-runs .pytest_cache build *.egg-info
