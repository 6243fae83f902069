#!/usr/bin/env bash
# The whole GPU check in one scripted run, on a machine that can download nothing (issue 16).
#
#   deploy/gpu/run-gpu-check.sh [WHEELS]      (run from anywhere; OUT=<folder> for the results)
#
# WHEELS (default deploy/gpu/wheels): the onnxruntime-gpu wheel, whole or split in parts
# (<wheel file name>.part.aa, .part.ab, ... as `split -b 45M` makes them, sent over successive
# transfers), and the worker's pure-Python dependencies as wheels (deploy/gpu/README.md says how to
# gather them). Steps, each logged, ~8 minutes at most in all:
#   1. does this Python's onnxruntime have the CUDA provider? if not, join and install the wheel
#      (into a venv that sees the system's packages: PyTorch's nvidia-* CUDA 13 / cuDNN 9 libraries)
#   2. install the pure-Python dependencies that are missing, from the wheels only
#   3. put the nvidia-* libraries on LD_LIBRARY_PATH, show the GPU
#   4. python -m bench.gpu_check --device cuda --out $OUT/gpu-check.json (g1, g2; g3 with G3=1)
set -euo pipefail
cd "$(dirname "$0")/../.."
WHEELS=${1:-deploy/gpu/wheels}
OUT=${OUT:-$PWD/.bench}
PY=${PYTHON:-python3}
VENV=${VENV:-/tmp/gpu-check-venv}
CHECK_TIMEOUT_S=${CHECK_TIMEOUT_S:-420}
mkdir -p "$OUT"
log() { printf '%s gpu-check: %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/gpu-check.log"; }

has_cuda() { "$1" -c 'import onnxruntime as o, sys; sys.exit("CUDAExecutionProvider" not in o.get_available_providers())' 2>/dev/null; }

log "python: $($PY -V 2>&1); onnxruntime: $($PY -c 'import onnxruntime as o; print(o.__version__, o.get_available_providers())' 2>&1 | tail -1)"
if has_cuda "$PY"; then
  log "this onnxruntime has the CUDA provider: no install"
else
  $PY -m venv --system-site-packages "$VENV"
  PY=$VENV/bin/python
  wheel=$(ls "$WHEELS"/onnxruntime_gpu-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$wheel" ]; then
    first=$(ls "$WHEELS"/onnxruntime_gpu-*.whl.part.* 2>/dev/null | head -1 || true)
    [ -n "$first" ] || { log "no CUDA provider and no onnxruntime_gpu wheel (or parts) in $WHEELS: blocked"; exit 3; }
    wheel=/tmp/$(basename "${first%.part.*}")
    cat "${first%.part.*}".part.* > "$wheel"
    log "joined $(ls "${first%.part.*}".part.* | wc -l) parts into $wheel ($(du -m "$wheel" | cut -f1) MB)"
  fi
  # Its dependencies from the system or the wheels; where one is missing, without them (onnxruntime
  # needs only numpy to run a session).
  $PY -m pip install -q --no-index --find-links "$WHEELS" "$wheel" 2>&1 | tail -5 | tee -a "$OUT/gpu-check.log" \
    || $PY -m pip install -q --no-index --no-deps "$wheel" 2>&1 | tail -5 | tee -a "$OUT/gpu-check.log" \
    || { log "could not install $wheel: blocked"; exit 3; }
  has_cuda "$PY" || { log "installed $wheel but onnxruntime still lists no CUDA provider: blocked"; exit 3; }
  log "onnxruntime-gpu installed: $($PY -c 'import onnxruntime as o; print(o.__version__)')"
fi

# The worker's pure-Python dependencies (and nothing of the training extra), from the wheels only.
missing=$($PY - <<'PY'
import importlib.util
need = {"pydantic": "pydantic", "pydantic_settings": "pydantic-settings", "prometheus_client": "prometheus-client",
        "snappy": "python-snappy", "kafka": "kafka-python", "numpy": "numpy"}
print(" ".join(pkg for mod, pkg in need.items() if importlib.util.find_spec(mod) is None))
PY
)
if [ -n "$missing" ]; then
  log "installing from $WHEELS: $missing"
  $PY -m pip install -q --no-index --find-links "$WHEELS" $missing 2>&1 | tail -5 | tee -a "$OUT/gpu-check.log"
fi

# CUDA 13 and cuDNN 9 as PyTorch's nvidia-* packages ship them (the CUDA provider dlopens them by name).
libs=$($PY -c 'import glob, site; print(":".join(sorted({d for p in site.getsitepackages() for g in ("/nvidia/*/lib", "/nvidia/*/*/lib") for d in glob.glob(p + g)})))' 2>/dev/null || true)
export LD_LIBRARY_PATH=${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
log "LD_LIBRARY_PATH: ${LD_LIBRARY_PATH:-(empty)}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/gpu-check.log"

extra=(--no-kafka)
[ "${G3:-0}" = 1 ] && extra=()
log "python -m bench.gpu_check --device cuda --out $OUT/gpu-check.json ${extra[*]} ${GPU_CHECK_ARGS:-}"
set +e
timeout "$CHECK_TIMEOUT_S" $PY -m bench.gpu_check --device cuda --out "$OUT/gpu-check.json" "${extra[@]}" ${GPU_CHECK_ARGS:-} \
  2>&1 | tee -a "$OUT/gpu-check.log"
rc=${PIPESTATUS[0]}
log "done: exit $rc"
exit "$rc"
