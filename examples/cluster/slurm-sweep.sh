#!/bin/bash
# A 10,000-seed sweep spread over a Slurm cluster: one array task per shard, then a merge job
# that runs once every shard has finished. Submit from the repository's root:
#
#   SCENARIO=scenarios/raft/churn.toml SEEDS=1..10001 examples/cluster/slurm-sweep.sh
#
# which submits this file as a job array (--array=1-$SHARDS) and a merge job that depends on
# it. The shards need a folder every node can see ($OUT, default results/ on the shared file
# system) and the same distsim build on every node (merge refuses shards of different builds).
#
#SBATCH --job-name=distsim-sweep
#SBATCH --cpus-per-task=2
#SBATCH --time=02:00:00
#SBATCH --output=logs/distsim-%A_%a.out
set -euo pipefail
export SCENARIO=${SCENARIO:?set SCENARIO to the scenario file}
export SEEDS=${SEEDS:-1..10001}
export OUT=${OUT:-results}
export DISTSIM=${DISTSIM:-distsim}
SHARDS=${SHARDS:-10}
HERE=examples/cluster

if [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then
    # Not inside the array: submit it, and the merge after it (afterany: a shard that found
    # violations exits 1 and must still be merged; the merge refuses a missing shard).
    mkdir -p logs "$OUT"
    array=$(sbatch --parsable --array=1-"$SHARDS" --export=ALL "$0")
    sbatch --dependency=afterany:"$array" --job-name=distsim-merge --export=ALL \
        --output=logs/distsim-merge-%j.out --wrap "$HERE/merge.sh"
    echo "submitted array $array ($SHARDS shards of $SCENARIO, seeds $SEEDS) and its merge"
    exit 0
fi

# Inside the array: Slurm's task ids are 1..N, as --shard I/N counts.
export JOBS=${SLURM_CPUS_PER_TASK:-1}
exec "$HERE/run-shard.sh" "$SLURM_ARRAY_TASK_ID" "$SLURM_ARRAY_TASK_COUNT"
