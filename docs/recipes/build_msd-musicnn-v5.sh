#!/usr/bin/env bash
# Rebuilds models/checkpoints/msd-musicnn-v5 and every number its card and the README report.
# v5 = v4's shrinkage LDA + the nuisance scatter of everyday changes (models/training/nuisance.py).
# Protocol (as v3's and v4's): settings chosen on the artist-disjoint valid split (train-only selection model),
# judged end to end on realworld_dev; final fit on train + valid with those settings, ONE evaluation on test.
# The nuisance weight, 0.05, is the largest of 0.05-2 that lost no real-music clip against v4 (selection model and
# final fit on realworld_dev) and no valid accuracy; 0.5 (msd-musicnn-v5-robust.json) is more robust but lost three
# of 42 real clips (README, "The bundled model"). Run from the repository root.
set -euo pipefail
if [ -e models/checkpoints/msd-musicnn-v5 ]; then  # `train` never overwrites a bundle
  echo "models/checkpoints/msd-musicnn-v5 exists and bundles are never overwritten: move it aside to rebuild it" \
       "(git restores it; a rebuild becomes CURRENT, as the shipped one is)." >&2
  exit 2
fi
PY=${PY:-.venv/bin/python}
P=../shared/data/gtzan_musicnn_pool
MINI=../shared/data/gtzan_mini
LISTS=../shared/data/gtzan_ff_msd_musicnn
SEL=${SEL:-/tmp/genre-lens-select-v5}   # the train-only selection model: never shipped, never saw valid
V5=models/checkpoints/msd-musicnn-v5
RECIPE=docs/recipes/msd-musicnn-v5.json

# 0. the shifts: 20 everyday changes (utils/everyday.py, never the robustness bench's amounts) of the 40
#    TRAIN-list gtzan_mini clips, through the engine's own input path (about 12 min on 2 cores; KEEP_SHIFTS=1
#    keeps the committed file, whose sha256 the card records)
[ -n "${KEEP_SHIFTS:-}" ] || $PY -m app nuisance $MINI --list $LISTS/train_filtered.txt --musicnn-output pool \
    --out models/nuisance/musicnn-msd-pool.npz
# 1. selection model: train only, scored on valid (and end to end on the 50 valid-list gtzan_mini clips)
$PY -m app train --table $P/train.npz --valid $P/valid.npz --config $RECIPE --root $SEL \
    --version msd-musicnn-v5-select --no-set-current --seed 0
# 2. the shipped model: train + valid, the same recipe, evaluated once on test (baseline in the same run)
$PY -m app train --table $P/train.npz $P/valid.npz --no-validation --config $RECIPE \
    --test $P/test.npz --version msd-musicnn-v5 --seed 0 \
    --notes "v4's shrinkage LDA with the measured scatter of 20 everyday changes (codecs, gain into a limiter, \
band limits, pink noise, pitch and tempo changes, 11 kHz) of the 40 train-list gtzan_mini clips added to its \
covariance, so the head leans less on what those changes do to the features. Weight 0.05: the largest of 0.05-2 that \
lost no realworld_dev clip against v4 (train-only selection model and final fit) and no valid accuracy (selection \
model msd-musicnn-v5-select: evaluation.valid_selection). Fitted with the same recipe on train + valid; evaluated \
once on test."
# 3. the selection model's numbers, recorded in v5's card
$PY -m app evaluate $P/valid.npz --checkpoint $SEL/msd-musicnn-v5-select --train-table $P/train.npz \
    --record-as valid_selection --record-in msd-musicnn-v5 --out $V5/metrics_valid_selection.json
$PY -m app evaluate $MINI --checkpoint $SEL/msd-musicnn-v5-select --list $LISTS/valid_filtered.txt \
    --train-table $P/train.npz --record-as audio_valid_50 --record-in msd-musicnn-v5 --out $V5/metrics_audio_valid.json
# 4. real, non-GTZAN music: v5, its selection model and v4 in the same run (v4's result goes into v5's card)
$PY -m app evaluate ../shared/data/realworld_dev --checkpoint msd-musicnn-v5 --record-as realworld_dev \
    --out $V5/metrics_realworld_dev.json
$PY -m app evaluate ../shared/data/realworld_dev --checkpoint $SEL/msd-musicnn-v5-select \
    --record-as realworld_dev_selection --record-in msd-musicnn-v5 --out $V5/metrics_realworld_dev_selection.json
$PY -m app evaluate ../shared/data/realworld_dev --checkpoint msd-musicnn-v4 \
    --record-as realworld_dev_v4_same_run --record-in msd-musicnn-v5 --out $V5/metrics_realworld_dev_v4.json
# 5. the verdict: decision threshold chosen on valid by the selection model, not-music detector fitted on
#    train with its threshold on valid; then measured (non-music set, valid/test tables, real music, audio)
$PY -m app trust --checkpoint msd-musicnn-v5 --train-table $P/train.npz --valid-table $P/valid.npz \
    --selection $SEL/msd-musicnn-v5-select --test-table $P/test.npz --music ../shared/data/realworld_dev \
    --audio $MINI --audio-list $LISTS/valid_filtered.txt
# 6. robustness: the 50 valid-list clips, clean and under the bench's 13 changes, through the current model's
#    selection model (the bench rebuilds it from this recipe) with v5's trust files (about 10 min)
[ -n "${SKIP_BENCH:-}" ] || $PY bench/bench_robustness.py --json
