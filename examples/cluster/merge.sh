#!/bin/sh
# Merges every $OUT/shard-*.json into $OUT/merged.json and prints the summary (the violating
# seeds with their reproduce commands). The merge refuses (exit 2, naming each missing shard
# and the command that would fill it) a sweep with gaps, overlaps, or shards of another scenario
# or another build.
#
# Exit code: 0 when the sweep found what the scenario expects (every seed passes, or the
# expected bug was caught), 1 when not, 3 when unknown seeds stand in the way, 2 on a refused
# merge.
set -eu
: "${OUT:=results}"
: "${DISTSIM:=distsim}"
code=0
"$DISTSIM" merge --expect --json "$OUT"/shard-*.json > "$OUT/merged.json" || code=$?
if [ "$code" -eq 2 ]; then
    rm -f "$OUT/merged.json"
    exit 2
fi
"$DISTSIM" merge "$OUT"/shard-*.json || true
exit "$code"
