#!/bin/bash
# Scale, simulated: Python start-up and the per-node cache on up to 10,000 nodes. One real node (the
# probe: this machine's own mount namespace, its pfs-sim instance, the installed `shifter`) runs the
# real workload while N-1 virtual nodes load the parallel filesystem's shared servers with the
# requests a real node made for the same workload (bench/pfs-sim/servers.h): the probe's time then
# holds the queueing that N nodes cause, and the 2 CPUs run one node, not N.
#
#   ways       dir     the Debian Python tree as a directory on the simulated filesystem
#                      (--image=local:...), as a site without containers would install it
#              image   the same tree as a squashfs image in the image store on it (--image=id:...)
#              local   the same tree on this machine's own disk (--image=local:...): the reference
#              pfs     (extract) the tree extracted onto a directory of the parallel filesystem
#              cache   (extract) extracted into a per-node cache (perNodeCache, XFS in a file on it)
#   workloads  py-small  import numpy, scipy
#              py-large  the scipy stack: numpy, scipy and six of its subpackages
#              extract   tar -x of a 10,000-file source tree, then byte-compiling 100 of its files
#
# For each workload, way and metadata server rate, the 1-node run records the probe's requests
# (pfs-sim --trace), and each larger N replays that trace on N-1 virtual nodes. The probe skips its
# waits (pfs-sim --skip-waits) and adds them to its clock, so that 10,000 nodes' queue, minutes
# long, costs seconds here. The validation (first) checks both: N real nodes against 1 probe and
# N-1 virtual nodes, and the skipped waits against real ones.
#
#   bench/scale/sim.sh       SIM_SIZES="1 10 100 1000 10000", SIM_RATES="20000 50000 100000",
#                            EXTRACT_SIZES="1 10 100 1000 10000", VALIDATE_SIZES="2 4 8 16",
#                            SIM_REPS=3 (runs a point at 50,000 requests/s: the median is reported)
# Writes bench/scale/sim.csv and bench/scale/validation.csv (bench/scale/report.py makes the report).
. "$(dirname "$0")/../common.sh"
BENCH_DIR=${BENCH_DIR:-/var/tmp/shifter-bench}
ROOTFS=$BENCH_DIR/rootfs
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=${SUITE:-bookworm}
HERE=$BENCH_ROOT/bench/scale
SIM_SIZES=${SIM_SIZES:-1 10 100 1000 10000}
SIM_RATES=${SIM_RATES:-20000 50000 100000}
EXTRACT_SIZES=${EXTRACT_SIZES:-1 10 100 1000 10000}
VALIDATE_SIZES=${VALIDATE_SIZES:-2 4 8 16}
SIM_REPS=${SIM_REPS:-3}
# The model's numbers (bench/scale/RESULTS.md says where each comes from).
export PFS_META_US=${PFS_META_US:-100}   # a client's own part of a metadata request: network and client
export PFS_DATA_US=${PFS_DATA_US:-100}   # and of a data request
DATA_GBPS=${DATA_GBPS:-700}              # the data servers' bandwidth, all together (Cori's scratch)
VALIDATE_MDS_US=${VALIDATE_MDS_US:-1000}  # a slow server for the validation, so that it, not the CPUs, is what N nodes share
. "$BENCH_ROOT/bench/pfs-sim/lib.sh"
PFS_LOAD=$BENCH_ROOT/bench/pfs-sim/pfs-load
STORE=$PFS_DATA/scale-store
STORE_MNT=$PFS_MNT/scale-store
SRC=$BENCH_DIR/sim-src                   # the source tree's tar file, on this machine's disk
declare -A CODE=(
    [py-small]="import numpy, scipy"
    [py-large]="import numpy, scipy, scipy.linalg, scipy.sparse, scipy.optimize, scipy.stats, scipy.signal"
)

OUT=$(mktemp -d /tmp/shifter-scale-sim.XXXXXX); chmod 755 "$OUT"
log() { printf 'scale-sim: %s\n' "$*" >&2; }
cleanup() {
    pfs_down
    [ -f "$OUT/udiRoot.conf" ] && cp "$OUT/udiRoot.conf" /etc/shifter/udiRoot.conf
    rm -rf "$OUT"
}
trap cleanup EXIT

. "$BENCH_ROOT/bench/python/rootfs.sh"

# ---- setting up ------------------------------------------------------------------------------

# The Python tree as a directory and as an image on the simulated filesystem, the source tree's
# tar file, and the site configuration pointed at the store and the cache there.
prepare() {
    mkdir -p "$STORE" "$PFS_DATA/sw" "$PFS_DATA/cache" "$PFS_DATA/scratch" "$SRC"
    chmod 755 "$STORE" "$PFS_DATA/sw" "$PFS_DATA/cache" "$SRC"
    chmod 1777 "$PFS_DATA/scratch"
    local stamp
    stamp=$(stat -c %Y "$ROOTFS/.complete")
    if [ "$(cat "$PFS_DATA/scale-python.stamp" 2>/dev/null)" != "$stamp" ]; then
        log "copying the Python tree and making its image on the simulated filesystem"
        rm -rf "$PFS_DATA/sw/python" "$PFS_DATA/scale-python.squashfs"
        cp -al "$ROOTFS" "$PFS_DATA/sw/python"
        mksquashfs "$ROOTFS" "$PFS_DATA/scale-python.squashfs" -comp zstd -Xcompression-level 3 \
            -noappend -quiet -no-progress -e .complete >/dev/null
        echo "$stamp" > "$PFS_DATA/scale-python.stamp"
    fi
    PY_HEX=$(sha256sum "$PFS_DATA/scale-python.squashfs" | cut -d' ' -f1)
    cp "$PFS_DATA/scale-python.squashfs" "$STORE/$PY_HEX.squashfs"
    image_meta "sha256:$PY_HEX" "docker:127.0.0.1:5000/bench/python:latest" python3 > "$STORE/$PY_HEX.meta.json"
    chmod 644 "$STORE/$PY_HEX".*
    if [ ! -f "$SRC/tree.tar" ]; then
        log "making the 10,000-file source tree"
        python3 - "$OUT/tree" <<'PY'
import os, sys
top = sys.argv[1]
for d in range(100):
    path = os.path.join(top, "tree", "d%03d" % d)
    os.makedirs(path)
    for f in range(100):
        with open(os.path.join(path, "m%03d.py" % f), "w") as out:
            out.write("".join("def f%d(x):\n    return x * %d + %d\n\n" % (i, d, f) for i in range(20)))
PY
        tar -C "$OUT/tree" -cf "$SRC/tree.tar" tree
        rm -rf "$OUT/tree"
        chmod 644 "$SRC/tree.tar"
    fi
    cp /etc/shifter/udiRoot.conf "$OUT/udiRoot.conf"
    sed -i -e '/^imagePath=/d' -e '/^imageGateway=/d' -e '/^perNodeCachePath=/d' /etc/shifter/udiRoot.conf
    printf 'imagePath=%s\nimageGateway=local\nperNodeCachePath=%s\n' "$STORE_MNT" "$PFS_MNT/cache" >> /etc/shifter/udiRoot.conf
}

# ---- one probe run ---------------------------------------------------------------------------

# servers MDS-US [TRACE VNODES]: fresh shared servers, with VNODES virtual nodes replaying TRACE.
servers() {
    local load=()
    [ -n "${2:-}" ] && [ "${3:-0}" -gt 0 ] && load=(--trace="$2" --vnodes="$3")
    "$PFS_LOAD" init "$PFS_RUN/mds" --mds-us="$1" --data-gbps="$DATA_GBPS" \
        --meta-us="$PFS_META_US" --data-us="$PFS_DATA_US" "${load[@]}"
}

# command_for WORKLOAD WAY: the shifter arguments that run WORKLOAD that way.
command_for() {
    case $1:$2 in
        py-*:dir) echo "--image=local:$PFS_MNT/sw/python" ;;
        py-*:image) echo "--image=id:sha256:$PY_HEX" ;;
        py-*:local) echo "--image=local:$ROOTFS" ;;
        extract:pfs) echo "--image=id:sha256:$PY_HEX" "--volume=$SRC:/src:host;$PFS_MNT/scratch/probe:/work:host" ;;
        extract:cache) echo "--image=id:sha256:$PY_HEX" "--volume=$SRC:/src:host;/x:/work:perNodeCache=size=1g" ;;
    esac
}

# probe WORKLOAD WAY MDS-US N [TRACE-OUT]: one run of the probe with N-1 virtual nodes replaying
# the trace of WORKLOAD, WAY at this rate (recorded into TRACE-OUT when N is 1). As in a job, the
# root is built first (the prolog's part: the image's lookup, its loop device, the cache's mkfs),
# by every node at once; the workload's clock starts when the container's command starts, which
# tells this script through a pipe and waits for its word. Prints "SECONDS META-REQUESTS
# BYTES-READ SKIPPED-S" for the workload.
probe() {
    local workload=$1 way=$2 us=$3 n=$4 trace_out=${5:-} args code skew0 skew1 t0 t1 stats pid
    local trace=$OUT/trace.$workload.$way.$us ctl=$OUT/ctl
    pfs_umount host
    rm -rf "$PFS_DATA/scratch/probe" "$ctl"
    if [ "$way" = pfs ]; then mkdir "$PFS_DATA/scratch/probe" && chown "$BED_USER" "$PFS_DATA/scratch/probe"; fi
    mkdir "$ctl" && mkfifo "$ctl/ready" "$ctl/go" && chown -R "$BED_USER" "$ctl" && chmod 700 "$ctl"
    if [ "$n" -gt 1 ]; then servers "$us" "$trace" $((n - 1)); else servers "$us"; fi
    local extra=(--skip-waits)
    [ -n "$trace_out" ] && extra+=(--trace="$trace_out")
    PFS_MDS_US=$us pfs_mount host "${extra[@]}"
    read -r -a args <<<"$(command_for "$workload" "$way")"
    if [ "$workload" = extract ]; then
        code=(sh -c 'tar -C /work -xf /src/tree.tar && python3 -m compileall -q /work/tree/d000 >/dev/null && ls /work/tree | wc -l')
    else
        code=(python3 -c "import sys; ${CODE[$workload]}; print(len(sys.modules))")
    fi
    # The volumes' separator is ';': the control directory joins the way's own volumes.
    local i volume=""
    for i in "${!args[@]}"; do
        if [[ "${args[$i]}" == --volume=* ]]; then args[$i]="${args[$i]};$ctl:/ctl:host"; volume=1; fi
    done
    [ -n "$volume" ] || args+=("--volume=$ctl:/ctl:host")
    (cd /tmp && as_bench_user shifter "${args[@]}" sh -c 'echo ready > /ctl/ready; read -r _ < /ctl/go; exec "$@"' sh "${code[@]}") \
        > "$OUT/probe.out" 2>&1 &
    pid=$!
    if ! read -r -t 300 _ <>"$ctl/ready"; then
        kill "$pid" 2>/dev/null; wait "$pid" || true
        log "$workload $way $n: the container did not start:"; cat "$OUT/probe.out" >&2; exit 1
    fi
    skew0=$(pfs_stats host | jq -r .skipped_ms)
    t0=$(date +%s.%N)
    timeout 60 sh -c 'echo go > "$1"' sh "$ctl/go" || { log "$workload $way $n: the container stopped waiting"; exit 1; }
    wait "$pid" || { log "$workload $way $n: the probe failed:"; cat "$OUT/probe.out" >&2; exit 1; }
    t1=$(date +%s.%N)
    stats=$(pfs_stats host)
    skew1=$(jq -r .skipped_ms <<<"$stats")
    [ "$workload" != extract ] || [ "$(tail -n 1 "$OUT/probe.out")" = 100 ] ||
        { log "$workload $way $n: the tree was not extracted:"; cat "$OUT/probe.out" >&2; exit 1; }
    awk -v t0="$t0" -v t1="$t1" -v s0="$skew0" -v s1="$skew1" -v m="$(jq -r .meta_ops <<<"$stats")" \
        -v b="$(jq -r .bytes_read <<<"$stats")" 'BEGIN {printf "%.3f %d %d %.3f\n", t1 - t0 + (s1 - s0) / 1000, m, b, (s1 - s0) / 1000}'
}

# sweep WORKLOAD WAY MDS-US REPS SIZES...: the probe REPS times at each size, after one run that
# warms what every later one finds (this machine's caches of the servers' files); appends CSV rows.
sweep() {
    local workload=$1 way=$2 us=$3 reps=$4 n rep result; shift 4
    probe "$workload" "$way" "$us" 1 >/dev/null
    for n in "$@"; do
        for ((rep = 1; rep <= reps; rep++)); do
            if [ "$n" = 1 ] && [ "$rep" = 1 ]; then
                result=$(probe "$workload" "$way" "$us" 1 "$OUT/trace.$workload.$way.$us")
            else
                result=$(probe "$workload" "$way" "$us" "$n")
            fi
            read -r seconds meta bytes skipped <<<"$result"
            echo "$workload,$way,$((1000000 / us)),$n,$rep,$seconds,$meta,$bytes,$skipped" >> "$CSV"
            log "$(tail -n 1 "$CSV")"
        done
    done
}

# ---- the validation: N real nodes against 1 probe and N-1 virtual nodes -------------------------

# The workload light on CPU, over the same tree: open and read a line of each of numpy's Python
# files, one after another, through a cold client, at VMNT (each real node mounts its own instance
# there, in a mount namespace of its own). The list of files is made beforehand, from the servers'
# side, so that only the reads reach the simulated filesystem.
VMNT=$PFS_DIR/vmnt
STORM="while read -r f; do read -r _ < \"\$f\" || true; done < $OUT/storm.list"

# real_nodes N: N nodes, each a mount namespace of its own with its own instance, run the storm at
# once (they start together when the pipe they wait on closes). Prints "MEAN-SECONDS QUEUE-MS-PER-REQUEST".
real_nodes() {
    local n=$1 i
    servers "$VALIDATE_MDS_US"
    rm -f "$OUT"/node.* "$OUT/go"
    mkfifo "$OUT/go"
    exec 3<>"$OUT/go"
    for ((i = 1; i <= n; i++)); do
        unshare -m --propagation private bash -c '
            set -e
            "$0" --meta-us="$1" --data-us="$2" --mds="$3" --mds-us="$4" --pidfile="$5.pid" "$6" "$9"
            touch "$5.ready"
            read -r _ < "$7" || true
            t0=$(date +%s.%N); eval "$8"; t1=$(date +%s.%N)
            echo "$t1 - $t0" | bc -l > "$5.time"
            umount "$9"' "$PFS_SIM" "$PFS_META_US" "$PFS_DATA_US" "$PFS_RUN/mds" "$VALIDATE_MDS_US" \
            "$OUT/node.$i" "$PFS_DATA" "$OUT/go" "$STORM" "$VMNT" 3>&- &
    done
    local deadline=$((SECONDS + 60))
    for ((i = 1; i <= n; i++)); do
        until [ -e "$OUT/node.$i.ready" ]; do
            ((SECONDS < deadline)) || { log "validation: node $i of $n did not mount its instance within 60 s"; exit 1; }
            sleep 0.05
        done
    done
    exec 3>&-
    wait
    local mean queue
    mean=$(cat "$OUT"/node.*.time | awk '{s += $1} END {printf "%.3f", s / NR}')
    queue=$("$PFS_LOAD" stats "$PFS_RUN/mds" | jq -r '(.real.meta_queued_ms) / (.real.meta)')
    echo "$mean $queue"
}

# model_nodes N SKIP: 1 probe and N-1 virtual nodes replaying the 1-node trace; SKIP=1 skips the
# probe's waits. Prints "PROBE-SECONDS QUEUE-MS-PER-REQUEST" (the queue over all requests, the
# virtual nodes' later ones served too).
model_nodes() {
    local n=$1 skip=$2 extra=() t0 t1 skew0 skew1 queue
    pfs_umount host
    servers "$VALIDATE_MDS_US" "$OUT/trace.storm" $((n - 1))
    [ "$skip" = 1 ] && extra=(--skip-waits)
    PFS_MDS_US=$VALIDATE_MDS_US PFS_MNT=$VMNT pfs_mount host "${extra[@]}"
    skew0=$(pfs_stats host | jq -r .skipped_ms)
    t0=$(date +%s.%N); bash -c "$STORM"; t1=$(date +%s.%N)
    skew1=$(pfs_stats host | jq -r .skipped_ms)
    PFS_MNT=$VMNT pfs_umount host
    queue=$("$PFS_LOAD" stats "$PFS_RUN/mds" --drain |
        jq -r '(.real.meta_queued_ms + .virtual.meta_queued_ms) / (.real.meta + .virtual.meta)')
    awk -v t0="$t0" -v t1="$t1" -v s0="$skew0" -v s1="$skew1" -v q="$queue" \
        'BEGIN {printf "%.3f %.4f\n", t1 - t0 + (s1 - s0) / 1000, q}'
}

validate() {
    mkdir -p "$VMNT"
    local n
    (cd "$PFS_DATA" && find sw/python/usr/lib/python3/dist-packages/numpy -type f -name '*.py' | sort | sed "s|^|$VMNT/|") \
        > "$OUT/storm.list"
    # The 1-node trace the virtual nodes replay.
    pfs_umount host
    servers "$VALIDATE_MDS_US"
    PFS_MDS_US=$VALIDATE_MDS_US PFS_MNT=$VMNT pfs_mount host --trace="$OUT/trace.storm"
    bash -c "$STORM"
    PFS_MNT=$VMNT pfs_umount host
    echo "nodes,real_s,real_queue_ms,model_s,model_queue_ms,skipped_s,skipped_queue_ms" > "$VCSV"
    for n in $VALIDATE_SIZES; do
        read -r rs rq <<<"$(real_nodes "$n")"
        read -r ms mq <<<"$(model_nodes "$n" 0)"
        read -r ss sq <<<"$(model_nodes "$n" 1)"
        echo "$n,$rs,$rq,$ms,$mq,$ss,$sq" >> "$VCSV"
        log "validation: $(tail -n 1 "$VCSV")"
    done
}

# ---- the run -----------------------------------------------------------------------------------

case " $SIM_SIZES $EXTRACT_SIZES " in
    " 1 "*" 1 "*) ;;
    *) echo "scale-sim: SIM_SIZES and EXTRACT_SIZES start with 1 (its run records the trace the others replay)" >&2; exit 2 ;;
esac
SECONDS=0
bench_setup
pfs_build
build_rootfs
prepare
CSV=$OUT/sim.csv
VCSV=$OUT/validation.csv
echo "workload,way,mds_rate,nodes,rep,seconds,meta_requests,bytes_read,skipped_s" > "$CSV"
validate
# Python: SIM_REPS runs a point at 50,000 requests/s, the goals' rate, and for the node-local tree
# (which asks nothing of the parallel filesystem, so one rate shows it); one at the other rates.
# The extract: one run a point (its ways differ by an order of magnitude or more).
for workload in py-small py-large; do
    for rate in $SIM_RATES; do
        reps=1; [ "$rate" = 50000 ] && reps=$SIM_REPS
        sweep "$workload" dir $((1000000 / rate)) "$reps" $SIM_SIZES
        sweep "$workload" image $((1000000 / rate)) "$reps" $SIM_SIZES
    done
    sweep "$workload" local 20 "$SIM_REPS" $SIM_SIZES
done
sweep extract pfs 20 1 $EXTRACT_SIZES
sweep extract cache 20 1 $EXTRACT_SIZES
cp "$CSV" "$HERE/sim.csv"
cp "$VCSV" "$HERE/validation.csv"
log "done in $SECONDS s"
