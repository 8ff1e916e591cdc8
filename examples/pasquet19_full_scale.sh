#!/usr/bin/env bash
# Pasquet et al. (2019)'s protocol at full scale, as one command (issue 17, item 6).
#
#   bash examples/pasquet19_full_scale.sh                       # a GPU node, or a CPU machine (slow: see below)
#   sbatch examples/pasquet19_full_scale.sh                     # a SLURM cluster (the #SBATCH lines below)
#   N=600 FOLDS=0 ENSEMBLE=1 EPOCHS=1 OUT=/tmp/p19 bash examples/pasquet19_full_scale.sh   # the CI-sized rehearsal
#
# Steps: an sdss mock of N galaxies as a sharded store (one task per block: --workers, or SIM="--dask ADDRESS"),
# validated; the pasquet19 network (Adam 1e-4, step schedule, batch 128, EPOCHS epochs) trained on every test fold
# (FOLDS=all: 5 folds, each an ensemble of ENSEMBLE members, PDFs averaged; Lightning DDP over the node's GPUs
# with ACCEL=gpu); each galaxy predicted by the members that never saw it (--rows test); the boosted-trees
# baseline on fold 0; a report. Every step is resumable: rerunning the same command after a kill or a SLURM
# time limit skips what is finished (the store, finished members; train resumes the interrupted one).
# Measured per-step costs and the projected GPU-hours: docs/benchmarks.md, "Pasquet et al.'s protocol at full
# scale" (python benchmarks/project_scale.py).
#
#SBATCH --job-name=deepdip-pasquet19
#SBATCH --nodes=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
set -euo pipefail

N=${N:-500000}                    # Pasquet et al.: ~500,000 SDSS main-sample galaxies
OUT=${OUT:-pasquet19_full}
FOLDS=${FOLDS:-all}
ENSEMBLE=${ENSEMBLE:-6}
EPOCHS=${EPOCHS:-30}
ACCEL=${ACCEL:-}                  # gpu (DDP over DEVICES) or cpu; empty: in-process on this machine's CPUs
DEVICES=${DEVICES:-auto}
WORKERS=${WORKERS:-$(nproc)}
SIM=${SIM:---workers $WORKERS}   # or SIM="--dask tcp://scheduler:8786"
DEEPDIP=${DEEPDIP:-deepdip}

mkdir -p "$OUT"
if [ ! -e "$OUT/store" ]; then
    # shellcheck disable=SC2086  # SIM is two words on purpose
    $DEEPDIP simulate --survey sdss --n "$N" --seed 1 --out "$OUT/store" $SIM
fi
$DEEPDIP validate "$OUT/store"
accel=()
if [ -n "$ACCEL" ]; then accel=(--accelerator "$ACCEL" --devices "$DEVICES"); fi
$DEEPDIP train "$OUT/store" --model pasquet19 --fold "$FOLDS" --ensemble "$ENSEMBLE" --epochs "$EPOCHS" \
    "${accel[@]}" --out "$OUT/run"
$DEEPDIP predict "$OUT/run" "$OUT/store" --rows test "${accel[@]}" --out "$OUT/cnn.parquet" --overwrite
$DEEPDIP baseline "$OUT/store" --method boost --fold 0 --out "$OUT/boost.parquet" --overwrite
$DEEPDIP evaluate "$OUT/cnn.parquet" "$OUT/boost.parquet" --out "$OUT/report" --overwrite
echo "done: $OUT/report"
