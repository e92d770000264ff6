#!/usr/bin/env bash
# Create .venv-peers on demand: mlflow and wandb next to modelbox-autolog, for
# benchmarks/compare_peers.py. The frameworks (torch, TensorFlow/Keras, XGBoost, ...) are not
# installed again: a .pth file appends the project venv's site-packages to sys.path, so pip
# sees them as installed and only adds what mlflow/wandb need (shadowing shared versions
# only where they insist on another one). torch stays pinned by constraints.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MAIN="${MODELBOX_MAIN_VENV:-$ROOT/.venv}"
PEERS="${MODELBOX_PEERS_VENV:-$ROOT/.venv-peers}"
REQ="$ROOT/benchmarks/requirements-peers.txt"
STAMP="$PEERS/.peers-installed"

if [ ! -x "$MAIN/bin/python" ]; then
    echo "setup_venv.sh: $MAIN is missing; run 'make setup' first" >&2
    exit 1
fi
if [ ! -x "$PEERS/bin/python" ]; then
    "$MAIN/bin/python" -m venv "$PEERS"
fi

# Rewritten every time: cheap, and follows the repo if it moved.
shared="$("$MAIN/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
own="$("$PEERS/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
printf '%s\n' "$shared" > "$own/modelbox-shared-frameworks.pth"

if [ -f "$STAMP" ] && [ "$STAMP" -nt "$REQ" ] && [ "$STAMP" -nt "$ROOT/pyproject.toml" ] \
        && [ "$STAMP" -nt "$ROOT/constraints.txt" ]; then
    exit 0
fi
pip_install() {
    "$PEERS/bin/python" -m pip install --disable-pip-version-check --quiet \
        --constraint "$ROOT/constraints.txt" "$@"
}
pip_install -r "$REQ"
pip_install --no-deps --config-settings editable_mode=compat -e "$ROOT"
# Keras (TensorFlow) and Lightning in one process crash at import on this stack (also in .venv),
# and the benchmark runs each workload in its own process anyway: check them apart.
for group in "torch, lightning, xgboost, sklearn" "keras" "mlflow, wandb, modelbox_autolog"; do
    TF_CPP_MIN_LOG_LEVEL=3 "$PEERS/bin/python" -c "import $group" > /dev/null 2>&1 || {
        echo "setup_venv.sh: 'import $group' fails in $PEERS" >&2
        exit 1
    }
done
touch "$STAMP"
