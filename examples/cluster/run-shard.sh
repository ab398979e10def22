#!/bin/sh
# Runs shard I of N of one sweep and writes its JSON to $OUT/shard-I.json.
# Called once per array index by slurm-sweep.sh and by the Kubernetes indexed Job in
# k8s-sweep.yaml; tests/cli.rs runs it locally for every index, then merge.sh.
#
#   run-shard.sh I N
#
# Settings (environment): SCENARIO (the scenario file), SEEDS (the whole sweep's seeds, A..B),
# OUT (the folder shared by all shards), DISTSIM (the binary, default `distsim`), JOBS
# (simulations in parallel, default: every core).
set -eu
I=$1
N=$2
: "${SCENARIO:?set SCENARIO to the scenario file}"
: "${SEEDS:=1..10001}"
: "${OUT:=results}"
: "${DISTSIM:=distsim}"
mkdir -p "$OUT"
# The shard's JSON records its seed range and index, so that merge can refuse gaps and overlaps.
# Exit 1 (violations) and 3 (unknown seeds) still leave a complete JSON: the verdicts are the
# merge's business. Only 2 (bad input) is a failure of this task.
code=0
"$DISTSIM" sweep "$SCENARIO" --seeds "$SEEDS" --shard "$I/$N" ${JOBS:+--jobs "$JOBS"} --json \
    > "$OUT/shard-$I.json.tmp" || code=$?
if [ "$code" -eq 2 ]; then
    echo "shard $I/$N: distsim refused the input (exit 2)" >&2
    exit 2
fi
# Rename only a finished file, so that a killed task leaves no half shard for the merge.
mv "$OUT/shard-$I.json.tmp" "$OUT/shard-$I.json"
echo "shard $I/$N of $SCENARIO seeds $SEEDS: exit $code, $OUT/shard-$I.json"
