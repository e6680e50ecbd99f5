#!/bin/bash
# Slurm overhead: the cost `shifter` adds to each job step, and the prolog's per-node set-up time
# as the job grows from 1 to 4 nodes. Writes bench/slurm/RESULTS.md with WRITE=1.
#
#   bench/slurm/run.sh            RUNS=20 by default
. "$(dirname "$0")/../common.sh"
RUNS=${RUNS:-20}
OUT=$(mktemp -d /tmp/shifter-bench.XXXXXX); chmod 777 "$OUT"
trap 'rm -rf "$OUT"; bench_teardown' EXIT
bench_setup

wait_gone() { while squeue -h -j "$1" | grep -q .; do sleep 0.3; done; }

# 1. Step overhead, both kinds of step in the same allocation.
job=$(as_bench_user sbatch --parsable -N4 -o "$OUT/steps.log" --image="$IMAGE_BUSYBOX" --wrap "
    hyperfine -N --runs $RUNS --warmup 2 --export-json $OUT/steps.json \
        -n 'srun -N4 true' 'srun -N4 --ntasks-per-node=1 true' \
        -n 'srun -N4 shifter true' 'srun -N4 --ntasks-per-node=1 shifter true' \
        -n 'srun -N1 true' 'srun -N1 -n1 true' \
        -n 'srun -N1 shifter true' 'srun -N1 -n1 shifter true'" | cut -d';' -f1)
wait_gone "$job"
plain=$(jq -r '.results[0].median * 1000' "$OUT/steps.json")
shifted=$(jq -r '.results[1].median * 1000' "$OUT/steps.json")
plain1=$(jq -r '.results[2].median * 1000' "$OUT/steps.json")
shifted1=$(jq -r '.results[3].median * 1000' "$OUT/steps.json")

# 2. Prolog time per node, from the plugin's own log line, for 1, 2 and 4 nodes.
declare -A prolog
for nodes in 1 2 4; do
    ids=()
    for _ in 1 2 3; do
        ids+=("$(as_bench_user sbatch --parsable -N"$nodes" -o /dev/null --image="$IMAGE_BUSYBOX" --wrap true | cut -d';' -f1)")
    done
    for id in "${ids[@]}"; do wait_gone "$id"; done
    pattern=$(printf 'job %s: root ready in|' "${ids[@]}"); pattern=${pattern%|}
    prolog[$nodes]=$(grep -hE "$pattern" "$SLURM_DIR"/log/slurmd-n*.log | sed -E 's/.*root ready in ([0-9.]+) ms.*/\1/' \
        | sort -n | awk '{v[NR]=$1} END {if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2}')
done

report() {
    printf '| step | median (ms) |\n|---|---|\n'
    printf '| srun -N4 true | %.1f |\n| srun -N4 shifter true | %.1f |\n' "$plain" "$shifted"
    printf '| srun -N1 true | %.1f |\n| srun -N1 shifter true | %.1f |\n' "$plain1" "$shifted1"
    printf '\nOverhead per step: %.1f ms on 4 nodes (%.2f×), %.1f ms on 1 node (%.2f×).\n' \
        "$(echo "$shifted - $plain" | bc -l)" "$(echo "$shifted / $plain" | bc -l)" \
        "$(echo "$shifted1 - $plain1" | bc -l)" "$(echo "$shifted1 / $plain1" | bc -l)"
    printf 'The four nodes share this machine'"'"'s 2 cores, so 4 tasks start 2 at a time.\n\n'
    printf '| nodes in the job | prolog per node, median (ms) |\n|---|---|\n'
    for nodes in 1 2 4; do printf '| %s | %s |\n' "$nodes" "${prolog[$nodes]}"; done
}
report | tee "$OUT/report.md"
# The same numbers as CSV (bench/slurm/results.csv).
{
    echo "measure,nodes,median_ms"
    echo "step_plain,4,$plain"; echo "step_shifter,4,$shifted"
    echo "step_plain,1,$plain1"; echo "step_shifter,1,$shifted1"
    for nodes in 1 2 4; do echo "prolog_per_node,$nodes,${prolog[$nodes]}"; done
} > "$BENCH_ROOT/bench/slurm/results.csv"
if [ "${WRITE:-0}" = 1 ]; then
    {
        echo "# Slurm overhead benchmark"
        echo
        echo "Command: \`bench/slurm/run.sh\` (RUNS=$RUNS, hyperfine medians inside one 4-node allocation;"
        echo "prolog times from the plugin's \"root ready\" log line, 3 jobs per size, cached image)."
        echo "Machine: $(nproc) cores, four slurmd on one host, $(uname -r), $(date -u +%Y-%m-%d)."
        echo
        cat "$OUT/report.md"
        echo
        cat "$BENCH_ROOT/bench/slurm/SCALING.md"
    } > "$BENCH_ROOT/bench/slurm/RESULTS.md"
fi
