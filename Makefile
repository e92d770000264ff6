# Two commands matter: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.modelbox-installed

.PHONY: components demo test lint bench bench-peers peers-setup setup clean proto

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel

$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PIP) install --constraint constraints.txt --config-settings editable_mode=compat -e '.[all,dev]'
	@touch $@

setup: $(STAMP)

demo: $(STAMP)
	$(PY) examples/quickstart.py

# Debian packages of the real components the tests start (installed when missing and root).
COMPONENTS ?= chromium postgresql
# The Go and C++ SDKs' toolchains (sdk/go builds offline from Debian's Go sources).
SDK_COMPONENTS := golang-go golang-google-grpc-dev golang-google-protobuf-dev protoc-gen-go protoc-gen-go-grpc \
	protobuf-compiler cmake g++ libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev libssl-dev
COMPONENTS += $(SDK_COMPONENTS)

components:
	@bash scripts/install-components.sh $(COMPONENTS)

test: $(STAMP) components
	$(PY) -m ruff check modelbox_autolog tests benchmarks examples
	$(PY) -m modelbox_autolog.proto.generate --check
	MODELBOX_AUTOLOG_TESTING=1 $(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check modelbox_autolog tests benchmarks examples
	$(PY) -m modelbox_autolog.proto.generate --check

# Regenerate the gRPC code from modelbox_autolog/proto/modelbox/v1/*.proto (grpcio-tools).
proto: $(STAMP)
	$(PY) -m modelbox_autolog.proto.generate

# Client SDKs (sdk/go, sdk/cpp; docs/SDKS.md). Builds are cached under build/sdk.
.PHONY: sdk-proto sdk-proto-check sdk-build sdk-test
# Regenerate the Go code in sdk/go/modelboxv1 from modelbox_autolog/proto (protoc + Debian's plugins).
sdk-proto:
	bash sdk/go/build.sh generate

sdk-proto-check:
	bash sdk/go/build.sh check

sdk-build:
	bash sdk/go/build.sh build
	cmake -S sdk/cpp -B build/sdk/cpp -DCMAKE_BUILD_TYPE=Release
	cmake --build build/sdk/cpp --parallel 2

# Builds both SDKs and tests them against a real `modelbox server` (tests/sdk).
sdk-test: $(STAMP)
	@bash scripts/install-components.sh $(SDK_COMPONENTS)
	MODELBOX_AUTOLOG_TESTING=1 $(PY) -m pytest -q tests/sdk

# Benchmarks: the core's targets, then the side-by-side comparison with MLflow and W&B, which
# runs in its own virtualenv (.venv-peers: mlflow and wandb beside this project's frameworks).
PEERS_VENV ?= .venv-peers
PEERS_PY := $(PEERS_VENV)/bin/python
PEERS_ARGS ?=

peers-setup: $(STAMP)
	MODELBOX_MAIN_VENV=$(abspath $(VENV)) MODELBOX_PEERS_VENV=$(abspath $(PEERS_VENV)) bash benchmarks/peers/setup_venv.sh

bench: peers-setup
	$(PY) benchmarks/bench_hotpath.py
	$(PEERS_PY) benchmarks/compare_peers.py --full

bench-peers: peers-setup
	$(PEERS_PY) benchmarks/compare_peers.py $(PEERS_ARGS)

clean:
	rm -rf $(VENV) $(PEERS_VENV) modelbox-runs .pytest_cache build *.egg-info
