#!/bin/bash
# Scale: what a job costs as it grows from 1 to 32 nodes, then (bench/scale/sim.sh) Python start-up
# and the per-node cache on up to 10,000 simulated nodes. Each node of the first part is a slurmd of
# its own, with a mount namespace of its own (the test bed with BED_NODES=N), all on this one
# machine. The image store is on the simulated parallel filesystem (bench/pfs-sim), one instance
# per node, and every instance queues at one shared metadata server (PFS_MDS_US µs a request, 20
# by default: 50,000 requests/s). For each node count:
#   job start        from sbatch to the last of the job's tasks running (`srun -N N shifter`, one
#                    task a node, each printing the time)
#   prolog per node  wall time and CPU time (the plugin's "root ready in … (cpu …)" line)
#   gateway calls    requests to the image gateway per job, the image named by tag
#   PFS metadata     metadata requests per node that reached the simulated filesystem during the job
# Python's start-up is not timed here: 32 nodes' interpreters on this machine's 2 CPUs would time
# the CPUs. sim.sh times one real node among virtual ones instead.
#
#   make scale                      SIZES="1 2 4 8 16 32", REPS=3 job starts per size
# Writes bench/scale/results.csv, sim.csv, validation.csv, RESULTS.md, bench/plots/scale.png and
# scale-jobs.png. The bed ends at its usual four nodes.
. "$(dirname "$0")/../common.sh"
export PFS_MDS_US=${PFS_MDS_US:-20}
. "$BENCH_ROOT/bench/pfs-sim/lib.sh"
SIZES=${SIZES:-1 2 4 8 16 32}
REPS=${REPS:-3}
BENCH_DIR=${BENCH_DIR:-/var/tmp/shifter-bench}
HERE=$BENCH_ROOT/bench/scale
HARNESS=$BENCH_ROOT/tests/harness
STORE=$PFS_DATA/scale-store        # the image store, as the parallel filesystem's servers hold it
STORE_MNT=$PFS_MNT/scale-store     # the same, as the nodes see it

OUT=$(mktemp -d /tmp/shifter-scale.XXXXXX); chmod 777 "$OUT"
GW_PORT=""; NODES=()
log() { printf 'scale: %s\n' "$*" >&2; }
cleanup() {
    [ -f "$OUT/gateway.pid" ] && kill "$(cat "$OUT/gateway.pid")" 2>/dev/null
    pfs_down
    # The bed as the tests expect it: four nodes and its own configuration.
    BED_SPANK_PLUGIN=$PREFIX/lib/shifter/shifter_spank.so BED_NODES=4 "$HARNESS/bed" up >/dev/null 2>&1 || true
    rm -rf "$OUT"
}
trap cleanup EXIT

# bed_size N: the bed with N nodes, its site configuration pointed at the gateway and at the
# image store on the simulated filesystem, and every node's simulator instance started.
bed_size() {
    local n=$1 node
    pfs_down
    BED_SPANK_PLUGIN=$PREFIX/lib/shifter/shifter_spank.so BED_NODES=$n "$HARNESS/bed" up >"$OUT/bed.log" 2>&1 ||
        { cat "$OUT/bed.log" >&2; exit 1; }
    set -a; . "$BED_ENV"; set +a
    sed -i -e '/^imagePath=/d' -e '/^imageGateway=/d' -e '/^system=/d' /etc/shifter/udiRoot.conf
    printf 'imagePath=%s\nimageGateway=http://127.0.0.1:%s\nsystem=testbed\n' "$STORE_MNT" "$GW_PORT" >> /etc/shifter/udiRoot.conf
    NODES=()
    for ((i = 1; i <= n; i++)); do NODES+=("n$i"); done
    pfs_mount host
    for node in "${NODES[@]}"; do pfs_mount "$node"; done
}

# The gateway, with the image store on the simulated filesystem's backing storage.
start_gateway() {
    mkdir -p "$STORE"
    chmod 755 "$STORE"
    GW_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$OUT/imagegw.conf" <<CONF
{
    "listen": "127.0.0.1:$GW_PORT",
    "database": "$OUT/state.sqlite",
    "systems": {"testbed": {"imagePath": "$STORE"}},
    "registries": {"anon": {"url": "https://$REGISTRY_ANON", "caBundle": "$CA_BUNDLE", "auth": "anonymous"}},
    "defaultRegistry": "$REGISTRY_ANON",
    "admins": ["root"]
}
CONF
    "$PREFIX/bin/shifter-imagegw" --config "$OUT/imagegw.conf" >>"$OUT/gateway.log" 2>&1 &
    echo $! >"$OUT/gateway.pid"
    local i
    for i in $(seq 150); do curl -sf "http://127.0.0.1:$GW_PORT/healthz" >/dev/null && return 0; sleep 0.2; done
    cat "$OUT/gateway.log" >&2; exit 1
}
lookups() { grep -c "/api/lookup/testbed/" "$OUT/gateway.log" || true; }

# The store's content: busybox pulled through the gateway.
prepare_store() {
    mkdir -p "$STORE"
    chmod 755 "$STORE"
    as_bench_user shifterimg pull "$IMAGE_BUSYBOX" >"$OUT/pull.log" 2>&1 || { cat "$OUT/pull.log" >&2; exit 1; }
}

# The job that times its step: every task prints when it runs (job start), or runs Python.
cat > "$OUT/start.sh" <<'JOB'
#!/bin/bash
# The kernel's uptime (10 ms steps) is the clock both here and in the image (busybox's date has no %N).
srun --ntasks-per-node=1 shifter sh -c 'read up rest < /proc/uptime; echo $up' > "$OUTDIR/tasks.$TAG" 2>&1
JOB
chmod 755 "$OUT"/*.sh

reset_counters() { local node; for node in "${NODES[@]}"; do pfs_reset "$node"; done; }
# meta_per_node: the mean of the nodes' metadata requests since the last reset.
meta_per_node() {
    local node
    for node in "${NODES[@]}"; do pfs_stats "$node"; done | jq -s 'map(.meta_ops) | add / length | round'
}
# prolog_times JOB: "wall_mean wall_max cpu_mean cpu_max count" over the nodes' prolog lines (ms).
prolog_times() {
    grep -hE "job $1: root ready in" "$SLURM_DIR"/log/slurmd-n*.log |
        sed -E 's/.*root ready in ([0-9.]+) ms \(cpu ([0-9.]+) ms\).*/\1 \2/' |
        awk '{w += $1; c += $2; if ($1 > wm) wm = $1; if ($2 > cm) cm = $2; n++}
             END {if (n) printf "%.1f %.1f %.1f %.1f %d\n", w / n, wm, c / n, cm, n; else print "0 0 0 0 0"}'
}

# job_start N REP: one job of N nodes; appends a CSV row.
job_start() {
    local n=$1 rep=$2 tag="start.$1.$2" before after t0 job last
    reset_counters
    before=$(lookups)
    t0=$(cut -d' ' -f1 /proc/uptime)
    job=$(bench_submit -N "$n" -o "$OUT/job.$tag.log" --export=ALL,OUTDIR="$OUT",TAG="$tag" \
        --image="$IMAGE_BUSYBOX" "$OUT/start.sh")
    bench_wait "$job" 600
    after=$(lookups)
    last=$(grep -E '^[0-9]+\.[0-9]+$' "$OUT/tasks.$tag" | sort -n | tail -n 1)
    [ "$(grep -cE '^[0-9]+\.[0-9]+$' "$OUT/tasks.$tag")" = "$n" ] ||
        { log "$tag: not every task ran:"; cat "$OUT/tasks.$tag" "$OUT/job.$tag.log" >&2; exit 1; }
    # Each node's prolog writes its line into that node's slurmd log itself, which may come a
    # moment after the job has left the queue.
    local prolog i
    for i in $(seq 300); do
        read -r -a prolog < <(prolog_times "$job")
        [ "${prolog[4]}" = "$n" ] && break
        sleep 0.1
    done
    if [ "${prolog[4]}" != "$n" ]; then
        log "$tag: job $job ran on $n nodes, but $((${prolog[4]})) of their slurmd logs say its root was ready:"
        grep -H "job $job[: ]\|JobId=$job \|StepId=$job\." "$SLURM_DIR"/log/slurmd-n*.log >&2 || true
        exit 1
    fi
    echo "start,$n,$rep,$(echo "$last - $t0" | bc -l | awk '{printf "%.3f", $1}'),${prolog[0]},${prolog[1]},${prolog[2]},${prolog[3]},$((after - before)),$(meta_per_node)" >> "$CSV"
    log "$(tail -n 1 "$CSV")"
}

STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
SECONDS=0
bench_setup
dpkg-query -W -f='${Status}' python3-matplotlib 2>/dev/null | grep -q 'install ok installed' ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-matplotlib >/dev/null
pfs_build
start_gateway
CSV=$OUT/results.csv
echo "measure,nodes,rep,start_s,prolog_wall_ms,prolog_wall_max_ms,prolog_cpu_ms,prolog_cpu_max_ms,gateway_calls,pfs_meta_per_node" > "$CSV"
first=1
for n in $SIZES; do
    log "$n nodes"
    bed_size "$n"
    if [ "$first" = 1 ]; then prepare_store; first=0; fi
    # The first job of a size warms what every later one finds (the image's pages on the host).
    job_start "$n" 0
    for rep in $(seq "$REPS"); do job_start "$n" "$rep"; done
done
# The simulated part on the usual four nodes, the gateway's configuration put back.
pfs_down
BED_SPANK_PLUGIN=$PREFIX/lib/shifter/shifter_spank.so BED_NODES=4 "$HARNESS/bed" up >"$OUT/bed.log" 2>&1 ||
    { cat "$OUT/bed.log" >&2; exit 1; }
SKIP_BUILD=1 "$HERE/sim.sh"
MACHINE=$(machine_line)
ELAPSED=$SECONDS
# The warm-up jobs (rep 0) are left out.
grep -v '^start,[0-9]*,0,' "$CSV" > "$HERE/results.csv"
/usr/bin/python3 "$HERE/report.py" "$HERE/results.csv" "$HERE/sim.csv" "$HERE/validation.csv" "$HERE/RESULTS.md" \
    "$BENCH_ROOT/bench/plots/scale.png" "$BENCH_ROOT/bench/plots/scale-jobs.png" \
    "$MACHINE" "$STARTED" "$ELAPSED" "$PFS_MDS_US" "$REPS"
