#!/bin/bash
# Python at scale: `python3 -c "import numpy, scipy"` as 2 ranks on each of the bed's 4 nodes at
# once, with the Python tree on the simulated parallel filesystem (bench/pfs-sim) in two ways:
#   pfs-dir     the tree (a Debian root with python3-numpy and python3-scipy) as a directory on the
#               parallel filesystem, as a site's shared software stack; each rank runs it with
#               `shifter --image=local:DIR`, so every file the import touches comes from there
#   pfs-image   the same tree as one squashfs image whose file is in the image store on the parallel
#               filesystem; the prolog loop-mounts it on each node and the ranks run `srun shifter`
#   local-dir   the tree as a directory on this machine's disk (`shifter --image=local:`): the floor
# and, unless QUICK=1, the image once more with the site's `imageLoopDirectIO=1`:
#   pfs-image-dio  as pfs-image, but the prolog binds the loop device in direct-I/O mode, so every
#                  squashfs read is one request to the image file (the default reads it buffered)
#
# Each run starts every node's simulator instance afresh (cold client caches), runs one job, and
# reads the per-node counters. Reported: the wall time of the `srun` step, and per node the metadata
# and data requests that reached the simulated filesystem (including the prolog's).
#
#   bench/python/run.sh        REPS=3 (QUICK=1: REPS=1, two workloads, no pfs-image-dio)
# Writes bench/python/results.csv and bench/python/RESULTS.md.
. "$(dirname "$0")/../common.sh"
. "$BENCH_ROOT/bench/pfs-sim/lib.sh"
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then REPS=${REPS:-1}; else REPS=${REPS:-3}; fi
BENCH_DIR=${BENCH_DIR:-/var/tmp/shifter-bench}
ROOTFS=$BENCH_DIR/rootfs
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=${SUITE:-bookworm}
HERE=$BENCH_ROOT/bench/python
FINAL_CSV=$HERE/results.csv
NODES=(n1 n2 n3 n4)
RANKS_PER_NODE=2
IMAGE_NAME=python-pfs
IMAGE_REF=127.0.0.1:5000/bench/$IMAGE_NAME:latest

# Workloads: name and code; each rank prints how many modules it ended with.
WORKLOADS=(start numpy numpy+scipy scipy-stack)
declare -A CODE=(
    [start]="pass"
    [numpy]="import numpy"
    [numpy+scipy]="import numpy, scipy"
    [scipy-stack]="import numpy, scipy, scipy.linalg, scipy.sparse, scipy.optimize, scipy.stats, scipy.signal"
)
MODES=(pfs-dir pfs-image local-dir)
if [ "$QUICK" = 1 ]; then WORKLOADS=(start numpy+scipy); else MODES+=(pfs-image-dio); fi

OUT=$(mktemp -d /tmp/shifter-bench.XXXXXX); chmod 777 "$OUT"
CSV=$OUT/results.csv   # moved to $FINAL_CSV when every run has completed
JOB=""
cleanup() {
    [ -n "$JOB" ] && scancel "$JOB" 2>/dev/null
    loop_mode buffered
    store_remove "$IMAGE_NAME"
    pfs_down
    rm -rf "$OUT"
    bench_teardown
}
trap cleanup EXIT
log() { printf 'python: %s\n' "$*" >&2; }

. "$BENCH_ROOT/bench/python/rootfs.sh"

# The simulated filesystem's content: the tree (hard links to $ROOTFS, used read-only) and its
# squashfs image (zstd level 3, 128 KiB blocks: what shifterimg writes), rebuilt when the tree changes.
prepare_pfs() {
    local stamp
    stamp=$(stat -c %Y "$ROOTFS/.complete")
    if [ "$(cat "$PFS_DATA/python.stamp" 2>/dev/null)" != "$stamp" ]; then
        log "copying the tree and making its squashfs image on the simulated filesystem"
        rm -rf "$PFS_DATA/sw/python" "$PFS_DATA/images"
        mkdir -p "$PFS_DATA/sw" "$PFS_DATA/images"
        cp -al "$ROOTFS" "$PFS_DATA/sw/python"
        mksquashfs "$ROOTFS" "$PFS_DATA/images/python.squashfs" -comp zstd -Xcompression-level 3 \
            -noappend -quiet -no-progress -e .complete >/dev/null
        chmod 644 "$PFS_DATA/images/python.squashfs"
        echo "$stamp" > "$PFS_DATA/python.stamp"
    fi
    HEX=$(sha256sum "$PFS_DATA/images/python.squashfs" | cut -d' ' -f1)
    image_meta "sha256:$HEX" "docker:$IMAGE_REF" python3 > "$PFS_DATA/images/python.meta.json"
    chmod 644 "$PFS_DATA/images/python.meta.json"
    store_add "$IMAGE_NAME" "$HEX" "$PFS_MNT/images/python.squashfs" "$PFS_MNT/images/python.meta.json"
    # The "servers" have the data in memory, for every run alike.
    cat "$PFS_DATA/images/python.squashfs" > /dev/null
    tar -C "$PFS_DATA/sw/python" -cf - . | cat > /dev/null
}

# loop_mode direct|buffered: how the prolog binds images' loop devices (the site's imageLoopDirectIO).
loop_mode() {
    sed -i '/^imageLoopDirectIO=/d' "$SITE_CONFIG"
    if [ "$1" = direct ]; then echo 'imageLoopDirectIO=1' >> "$SITE_CONFIG"; fi
}

cat > "$OUT/job.sh" <<'JOB'
#!/bin/bash
# job.sh TAG CODE SHIFTER-ARGS...: one srun step of 2 ranks per node, timed.
tag=$1 code=$2; shift 2
t0=$(date +%s.%N)
srun shifter "$@" python3 -c "import sys; $code; print(len(sys.modules))" > "$OUTDIR/ranks.$tag" 2>&1
rc=$?
t1=$(date +%s.%N)
echo "$t0 $t1 $rc" > "$OUTDIR/time.$tag"
JOB
chmod 755 "$OUT/job.sh"

# run_one WORKLOAD MODE REP: one job (again, up to 3 times, if the shared bed went down or
# restarted under it); appends a CSV row.
run_one() {
    local attempt
    for attempt in 1 2 3; do
        bed_wait || { log "the test bed is down"; exit 1; }
        if try_one "$@"; then return 0; fi
        if bed_alive; then exit 1; fi
        log "$1.$2.$3: the test bed went down or restarted during the job; again"
        echo "$1.$2.$3: the test bed went down or restarted during the job" >> "$OUT/retried"
    done
    log "$1.$2.$3: no complete run in 3 attempts"; exit 1
}

# try_one WORKLOAD MODE REP: one job; appends a CSV row, or fails.
try_one() {
    local workload=$1 mode=$2 rep=$3 tag="$1.$2.$3" node
    rm -f "$OUT/time.$tag" "$OUT/ranks.$tag" "$OUT/job.$tag.log"
    for node in "${NODES[@]}"; do pfs_mount "$node" || return 1; done
    local args=() image=()
    case $mode in
        pfs-dir) args=(--image="local:$PFS_MNT/sw/python") ;;
        pfs-image|pfs-image-dio) image=(--image="$IMAGE_REF") ;;
        local-dir) args=(--image="local:$ROOTFS") ;;
    esac
    if [ "$mode" = pfs-image-dio ]; then loop_mode direct; else loop_mode buffered; fi
    for node in "${NODES[@]}"; do pfs_reset "$node"; done
    JOB=$(bench_submit -N "${#NODES[@]}" --ntasks-per-node=$RANKS_PER_NODE -o "$OUT/job.$tag.log" \
        --export=ALL,OUTDIR="$OUT" "${image[@]}" "$OUT/job.sh" "$tag" "${CODE[$workload]}" "${args[@]}") || return 1
    bench_wait "$JOB" 600 || true
    local prolog=""
    case $mode in pfs-image*) prolog=$(prolog_ms "$JOB") ;; esac
    JOB=""
    for node in "${NODES[@]}"; do pfs_stats "$node" > "$OUT/stats.$tag.$node.json" || return 1; done
    local t0 t1 rc wall modules
    if ! read -r t0 t1 rc < "$OUT/time.$tag" 2>/dev/null; then
        log "$tag: the job left no timing:"; cat "$OUT/job.$tag.log" >&2 2>/dev/null; return 1
    fi
    modules=$(grep -E '^[0-9]+$' "$OUT/ranks.$tag" | sort -n | tail -n 1)
    if [ "$rc" != 0 ] || [ "$(grep -cE '^[0-9]+$' "$OUT/ranks.$tag")" != $((${#NODES[@]} * RANKS_PER_NODE)) ]; then
        log "$tag: the step failed (status $rc):"; cat "$OUT/ranks.$tag" >&2; return 1
    fi
    wall=$(echo "$t1 - $t0" | bc -l)
    # Per node: the mean over the nodes, and the largest.
    jq -s -r --arg w "$workload" --arg m "$mode" --arg r "$rep" --arg wall "$wall" --arg mods "$modules" \
        --arg prolog "$prolog" '
        def mean(f): (map(f) | add) / length;
        [$w, $mods, $m, $r, ($wall | tonumber | . * 1000 | round / 1000),
         (mean(.meta_ops) | round), (map(.meta_ops) | max), (mean(.ops.lookup) | round),
         (mean(.ops.open) | round), (mean(.ops.getattr) | round), (mean(.ops.readdir) | round),
         (mean(.data_ops) | round), (mean(.bytes_read) / 1048576 | . * 10 | round / 10), $prolog] | @csv' \
        "$OUT"/stats."$tag".n*.json | tr -d '"' >> "$CSV"
    log "$(tail -n 1 "$CSV")"
}

bench_setup
pfs_build
build_rootfs
pfs_mount host
prepare_pfs
echo "workload,modules,mode,rep,wall_s,meta_ops_per_node,meta_ops_max_node,lookups_per_node,opens_per_node,getattrs_per_node,readdirs_per_node,data_ops_per_node,mb_read_per_node,prolog_ms" > "$CSV"
MACHINE=$(machine_line)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
for rep in $(seq "$REPS"); do
    for workload in "${WORKLOADS[@]}"; do
        for mode in "${MODES[@]}"; do run_one "$workload" "$mode" "$rep"; done
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
cp "$CSV" "$FINAL_CSV"
RETRIED=$(cat "$OUT/retried" 2>/dev/null || true)

# The report: medians over the repetitions.
python3 - "$FINAL_CSV" "$HERE/RESULTS.md" "$REPS" "$MACHINE" "$STARTED" "$LOAD_AFTER" "$QUICK" "$RETRIED" <<'PY'
import csv, statistics, sys
path, out, reps, machine, started, load_after, quick, retried = sys.argv[1:]
rows = list(csv.DictReader(open(path)))
def med(workload, mode, key):
    v = [float(r[key]) for r in rows if r["workload"] == workload and r["mode"] == mode and r[key] != ""]
    return statistics.median(v) if v else None
workloads = list(dict.fromkeys(r["workload"] for r in rows))
modes = list(dict.fromkeys(r["mode"] for r in rows))
mods = {w: max(int(r["modules"]) for r in rows if r["workload"] == w) for w in workloads}
L = []
L.append("# Python at scale")
L.append("")
L.append(f"Command: `bench/python/run.sh` (REPS={reps}{', QUICK=1' if quick == '1' else ''}), started {started}.")
L.append(f"Machine: {machine}; load average after: {load_after}. Four Slurm nodes on this one machine, "
         "2 ranks each (8 Python processes on the machine's cores at once).")
L.append("Simulated parallel filesystem: one pfs-sim instance per node, restarted before every run "
         "(cold client caches), 0.5 ms per metadata request, 1 ms per data request, names and "
         "attributes cached 60 s (bench/pfs-sim/README.md). Medians of the repetitions.")
L.append("")
L.append("| workload | modules | wall, dir on PFS (s) | wall, image on PFS (s) | speed-up | wall, local disk (s) "
         "| metadata ops/node, dir | metadata ops/node, image | fewer | data requests/node, dir | data requests/node, image | prolog/node, image (ms) |")
L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
for w in workloads:
    d, i, l = med(w, "pfs-dir", "wall_s"), med(w, "pfs-image", "wall_s"), med(w, "local-dir", "wall_s")
    md, mi = med(w, "pfs-dir", "meta_ops_per_node"), med(w, "pfs-image", "meta_ops_per_node")
    dd, di = med(w, "pfs-dir", "data_ops_per_node"), med(w, "pfs-image", "data_ops_per_node")
    p = med(w, "pfs-image", "prolog_ms") or 0
    L.append(f"| {w} | {mods[w]} | {d:.2f} | {i:.2f} | {d / i:.2f}x | {l:.2f} | {md:.0f} | {mi:.0f} | "
             f"{md / max(mi, 1):.0f}x | {dd:.0f} | {di:.0f} | {p:.0f} |")
if "pfs-image-dio" in modes:
    L.append("")
    L.append("The image's loop device: the default (buffered, the kernel reads the image file ahead) against the "
             "site setting `imageLoopDirectIO=1` (direct I/O: every squashfs read is one request to the image file). "
             "Both through the prolog, as above.")
    L.append("")
    L.append("| workload | loop device | wall (s) | metadata ops/node | data requests/node | MB read/node | speed-up over dir on PFS |")
    L.append("|---|---|---|---|---|---|---|")
    for w in workloads:
        for m, name in (("pfs-image", "buffered (default)"), ("pfs-image-dio", "direct I/O")):
            L.append(f"| {w} | {name} | {med(w, m, 'wall_s'):.2f} | {med(w, m, 'meta_ops_per_node'):.0f} | "
                     f"{med(w, m, 'data_ops_per_node'):.0f} | {med(w, m, 'mb_read_per_node'):.1f} | "
                     f"{med(w, 'pfs-dir', 'wall_s') / med(w, m, 'wall_s'):.2f}x |")
if retried.strip():
    L.append("")
    L.append("Runs made again because the test bed went down or restarted during them (the rows above are from "
             "the runs that completed): " + "; ".join(retried.strip().splitlines()) + ".")
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
