#!/usr/bin/env bash
# The scratch-profile reference run on a lent GPU machine, as one script.
#
# Here, before the call:   mkdir -p .device && cp ../shared/data/cifar10-jpeg.tar.gz .device/
# The call (device tool):  command: SICS_GIT_REV=<rev> bash tools/gpu_reference_run.sh
#                          carry: [".device"], timeout_s: 600
# Back here:               tar xzf <files_at>/scratch.tgz  (restores figures/scratch/)
#
# The GPU machine has torch, timm, seaborn, pandas and scipy but no papermill/jupyter, so the
# notebooks run with the inline engine (the same cells; the same tables and figures).
set -uo pipefail
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg
export SICS_DATA="$PWD/.device/cifar10-jpeg.tar.gz" SICS_CACHE=/tmp/sics-cache
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -m sics.bench --profile scratch --json "$OUT/bench_scratch.json" 2>&1 | tee "$OUT/bench_scratch.txt"
timeout "${PAPER_TIMEOUT:-480}" python3 -m sics.paper --profile scratch --engine inline 2>&1 | tee "$OUT/paper.log"
status=${PIPESTATUS[0]}
cp "$OUT/bench_scratch.txt" "$OUT/bench_scratch.json" figures/scratch/ 2>/dev/null
tar czf "$OUT/scratch.tgz" --exclude='figures/scratch/notebooks' figures/scratch
echo "make paper (scratch) exit status: $status"
exit "$status"
