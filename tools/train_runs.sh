#!/usr/bin/env bash
# Train the extra training runs of the committed recipes, one at a time, in the background, and
# export each for commit to figures/<profile>/runs/<k>/ (run k = the recipe with train_seed k).
#
#   SICS_DATA=/path/to/cifar10 nohup tools/train_runs.sh [PROFILE:RUN ...] > train_runs.log 2>&1 &
#
# Default queue: resnet:1 reference:1 resnet:2 reference:2 resnet:3 (a ResNet run is about an hour
# on a 2-core CPU, a reference ViT run about 2.6 hours). Rerun the same command after any stop:
# an exported run is skipped, an unfinished one resumes from its last epoch's state under
# $SICS_CACHE (default: ../sics-cache, outside the work tree, so a later session can resume it).
# Nothing else should use the cores meanwhile; timings taken beside it mean nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SICS_DATA:?set SICS_DATA to the CIFAR-10 source}"
export SICS_CACHE="${SICS_CACHE:-$(cd .. && pwd)/sics-cache}" SICS_PROGRESS=text PYTHONUNBUFFERED=1
export OMP_WAIT_POLICY=PASSIVE
PY=${PYTHON:-.venv/bin/python}
queue=("$@")
[ ${#queue[@]} -gt 0 ] || queue=(resnet:1 reference:1 resnet:2 reference:2 resnet:3)
for item in "${queue[@]}"; do
  profile=${item%%:*} run=${item##*:}
  if [ -e "figures/$profile/runs/$run/weights.json" ]; then
    echo "[train_runs] $profile run $run: exported already"; continue
  fi
  echo "[train_runs] $profile run $run: $(date -u +%FT%TZ) start (or resume)"
  "$PY" -m sics.training.export --profile "$profile" --run "$run"
  echo "[train_runs] $profile run $run: $(date -u +%FT%TZ) done"
done
