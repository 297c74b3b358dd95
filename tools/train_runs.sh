#!/usr/bin/env bash
# Add the training runs of the committed recipes, one at a time, in the background: each is
# trained, exported and swept into figures/<profile>/runs/<k>/ (run k = the recipe with
# train_seed k; `python -m sics.cli.run`).
#
#   SICS_DATA=/path/to/cifar10 nohup tools/train_runs.sh [PROFILE:RUN ...] > train_runs.log 2>&1 &
#
# Default queue: resnet:1 reference:1 resnet:2 reference:2 resnet:3. A ResNet run is about an
# hour of training and half an hour of sweeps on a 2-core CPU, a reference ViT run about 2.6 hours
# and 40 minutes. Rerun the same command after any stop: exported weights are reused, an
# unfinished training resumes from its last epoch's state under $SICS_CACHE (default:
# ../sics-cache, outside the work tree, so a later session can resume it), finished rows are kept.
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
  [[ "$item" =~ ^[a-z_]+:[1-9][0-9]*$ ]] || { echo "train_runs: '$item' is not PROFILE:RUN (RUN >= 1), e.g. resnet:2" >&2; exit 2; }
  profile=${item%%:*} run=${item##*:}
  echo "[train_runs] $profile run $run: $(date -u +%FT%TZ) start (or resume)"
  "$PY" -m sics.cli.run --profile "$profile" --run "$run"
  echo "[train_runs] $profile run $run: $(date -u +%FT%TZ) done"
done
