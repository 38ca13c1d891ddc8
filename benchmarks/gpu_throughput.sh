#!/usr/bin/env bash
# The throughput benchmark on a GPU in four settings: mixed precision (bf16) and channels-last, on and off.
# Usage: bash benchmarks/gpu_throughput.sh [OUTDIR]   (REPROAI_SHARED points at the sample and weights)
set -uo pipefail
out=${1:-.}
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__)"
for precision in bf16 fp32; do
  for cl in true false; do
    echo "== precision=$precision channels_last=$cl"
    python3 benchmarks/throughput.py --device cuda --precision "$precision" --channels-last "$cl" --epochs 4 --repeat 8 \
      2>&1 | tee -a "$out/gpu_throughput.log" | tail -5
  done
done
