# The simulated parallel filesystem, as the benchmarks use it (sourced; bench/common.sh first).
#
# One backing directory plays the servers' storage ($PFS_DATA). Every "node" that uses the
# filesystem mounts its own pfs-sim instance of it at $PFS_MNT in its own mount namespace (the bed's
# nodes n1..n4 each have one; "host" is this shell's namespace), so each node has its own client
# caches and its own counters, as a Lustre client would.
#
# Settings (environment): PFS_META_US (500), PFS_DATA_US (1000), PFS_CACHE_S (60), PFS_THREADS (16),
# PFS_WRITEBACK (0), PFS_MDS_US (unset: no shared metadata server). See bench/pfs-sim/README.md.
PFS_SIM=$BENCH_ROOT/bench/pfs-sim/pfs-sim
PFS_DIR=${PFS_DIR:-/var/tmp/shifter-bench/pfs}
PFS_DATA=$PFS_DIR/data
PFS_MNT=$PFS_DIR/mnt
PFS_RUN=$PFS_DIR/run

pfs_build() {
    dpkg-query -W -f='${Status}' libfuse3-dev 2>/dev/null | grep -q 'install ok installed' ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libfuse3-dev fuse3 >/dev/null
    make -s -C "$BENCH_ROOT/bench/pfs-sim" >/dev/null
    mkdir -p "$PFS_DATA" "$PFS_MNT" "$PFS_RUN"
    chmod 755 "$PFS_DIR" "$PFS_DATA" "$PFS_MNT"
}

pfs_settings() {
    local args=(--meta-us="${PFS_META_US:-500}" --data-us="${PFS_DATA_US:-1000}"
                --cache-s="${PFS_CACHE_S:-60}" --threads="${PFS_THREADS:-16}")
    [ "${PFS_WRITEBACK:-0}" = 1 ] && args+=(--writeback)
    # PFS_MDS_US=N: every node's instance queues at one shared metadata server of N µs a request.
    [ -n "${PFS_MDS_US:-}" ] && args+=(--mds="$PFS_RUN/mds" --mds-us="$PFS_MDS_US")
    printf '%s\n' "${args[@]}"
}

# node_pid NODE: the pid whose mount namespace is NODE's ("host": this one).
node_pid() {
    if [ "$1" = host ]; then echo $$; else cat "$SLURM_DIR/slurmd-$1.pid" 2>/dev/null; fi
}

# on_node NODE COMMAND...: runs COMMAND in NODE's mount namespace.
on_node() {
    local node=$1 pid; shift
    if [ "$node" = host ]; then "$@"; return; fi
    pid=$(node_pid "$node")
    [ -n "$pid" ] || { echo "bench: node $node is not running (is the test bed up?)" >&2; return 1; }
    nsenter -t "$pid" -m "$@"
}

# pfs_mounted NODE [PATH]: true when a pfs-sim is mounted at PATH (default $PFS_MNT) in NODE's namespace.
pfs_mounted() {
    local path=${2:-$PFS_MNT} pid
    pid=$(node_pid "$1")
    [ -n "$pid" ] || return 1
    awk -v p="$path" '$2 == p && $3 == "fuse.pfs-sim" {found = 1} END {exit !found}' "/proc/$pid/mounts" 2>/dev/null
}

# pfs_mount NODE [EXTRA-OPTIONS...]: starts NODE's instance at $PFS_MNT.
pfs_mount() {
    local node=$1; shift
    pfs_umount "$node"
    rm -f "$PFS_RUN/$node.json" "$PFS_RUN/$node.pid"
    local settings
    mapfile -t settings < <(pfs_settings)
    on_node "$node" "$PFS_SIM" "${settings[@]}" "$@" --stats="$PFS_RUN/$node.json" \
        --pidfile="$PFS_RUN/$node.pid" "$PFS_DATA" "$PFS_MNT" || return 1
    local i
    for i in $(seq 50); do [ -s "$PFS_RUN/$node.pid" ] && pfs_mounted "$node" && return 0; sleep 0.1; done
    echo "pfs-sim: the instance for $node did not start" >&2
    return 1
}

# pfs_umount NODE: unmounts NODE's instance (lazily if it is busy) and waits for the daemon to exit.
# It works through the daemon's own namespace, so also after the node itself has gone away.
pfs_umount() {
    local node=$1 pid i
    pid=$(cat "$PFS_RUN/$node.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        nsenter -t "$pid" -m sh -c "umount '$PFS_MNT' 2>/dev/null || umount -l '$PFS_MNT'" 2>/dev/null || true
        for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill "$pid" 2>/dev/null || true
    elif pfs_mounted "$node"; then
        on_node "$node" sh -c "umount '$PFS_MNT' 2>/dev/null || umount -l '$PFS_MNT'" || true
    fi
    rm -f "$PFS_RUN/$node.pid"
    return 0
}

# pfs_stats NODE: prints the instance's counters (JSON), freshly written.
pfs_stats() {
    local node=$1 pid seq i
    pid=$(cat "$PFS_RUN/$node.pid")
    seq=$(jq -r .seq "$PFS_RUN/$node.json" 2>/dev/null || echo 0)
    kill -USR1 "$pid"
    for i in $(seq 100); do
        [ "$(jq -r .seq "$PFS_RUN/$node.json" 2>/dev/null || echo 0)" -gt "$seq" ] && break
        sleep 0.05
    done
    cat "$PFS_RUN/$node.json"
}

# pfs_reset NODE: zeroes the instance's counters.
pfs_reset() {
    local node=$1 pid seq i
    pid=$(cat "$PFS_RUN/$node.pid")
    seq=$(jq -r .seq "$PFS_RUN/$node.json" 2>/dev/null || echo 0)
    kill -USR2 "$pid"
    for i in $(seq 100); do
        [ "$(jq -r .seq "$PFS_RUN/$node.json" 2>/dev/null || echo 0)" -gt "$seq" ] && break
        sleep 0.05
    done
}

# pfs_down: stops every instance this library started (whether or not its node is still up), and
# forgets the shared servers, so that the next instances start with fresh ones (no virtual nodes).
pfs_down() {
    local file
    for file in "$PFS_RUN"/*.pid; do
        [ -e "$file" ] || continue
        pfs_umount "$(basename "$file" .pid)"
    done
    rm -f "$PFS_RUN/mds"
    return 0
}

# ---- jobs and the image store, for the benchmarks that run on the bed's nodes ------------------

# bench_submit SBATCH-ARGS...: submits a batch job as the bed's user; prints its id.
bench_submit() {
    as_bench_user sbatch --parsable "$@" | cut -d';' -f1
}

# bench_wait JOB [SECONDS]: waits until JOB has left the queue (default: 600 s).
bench_wait() {
    local job=$1 deadline=$((SECONDS + ${2:-600}))
    while squeue -h -j "$job" 2>/dev/null | grep -q .; do
        if ((SECONDS >= deadline)); then
            echo "bench: job $job still queued after ${2:-600}s; cancelling it" >&2
            scancel "$job"; return 1
        fi
        sleep 0.3
    done
}

# prolog_ms JOB: the mean over nodes of the plugin's "root ready in X ms" for JOB.
prolog_ms() {
    grep -hE "job $1: root ready in" "$SLURM_DIR"/log/slurmd-n*.log 2>/dev/null |
        sed -E 's/.*root ready in ([0-9.]+) ms.*/\1/' |
        awk '{s += $1; n++} END {if (n) printf "%.0f\n", s / n; else print ""}'
}

store_tag_file() { echo "$IMAGE_STORE/tags/docker%3A127.0.0.1%3A5000%2Fbench%2F$1%3Alatest"; }

# store_add NAME HEX SQUASHFS META: makes docker:127.0.0.1:5000/bench/NAME:latest the image
# sha256:HEX of the store, whose files are links to SQUASHFS and META (e.g. on the simulated
# filesystem, where the site's imagePath would be).
store_add() {
    local name=$1 hex=$2
    ln -sfn "$3" "$IMAGE_STORE/$hex.squashfs"
    ln -sfn "$4" "$IMAGE_STORE/$hex.meta.json"
    echo "sha256:$hex" > "$(store_tag_file "$name")"
    chmod 644 "$(store_tag_file "$name")"
}

# store_remove NAME: removes what store_add NAME made, and any store entry left linked to the
# simulated filesystem by an earlier run that was interrupted.
store_remove() {
    local tag hex link
    tag=$(store_tag_file "$1")
    if [ -f "$tag" ]; then
        hex=$(sed 's/^sha256://' "$tag")
        rm -f "$IMAGE_STORE/$hex.squashfs" "$IMAGE_STORE/$hex.meta.json" "$tag"
    fi
    for link in "$IMAGE_STORE"/*.squashfs "$IMAGE_STORE"/*.meta.json; do
        [ -L "$link" ] && [[ "$(readlink "$link")" == "$PFS_MNT"/* ]] && rm -f "$link"
    done
    return 0
}

# bed_alive: true while the bed's four nodes are up (another user of the bed may take it down).
bed_alive() {
    local node
    [ -f "$BED_ENV" ] || return 1
    for node in n1 n2 n3 n4; do pid_alive "$SLURM_DIR/slurmd-$node.pid" || return 1; done
    [ "$(sinfo -h -N -t idle,alloc,mix -o %N 2>/dev/null | sort -u | wc -l)" = 4 ]
}

# bed_wait: waits up to 5 minutes for the bed to be up again, then brings it up itself.
bed_wait() {
    local i
    for i in $(seq 150); do bed_alive && return 0; sleep 2; done
    echo "bench: the test bed is still down; bringing it up" >&2
    bench_setup
    bed_alive
}

# image_meta DIGEST SOURCE CMD: a .meta.json for an image made here (as tests/harness/make-store.py).
image_meta() {
    jq -n --arg d "$1" --arg s "$2" --arg c "$3" '{format: "squashfs", digest: $d, manifestDigest: $d,
        layers: [], env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        entrypoint: null, cmd: [$c], workdir: null, user: null, labels: {}, userACL: [], groupACL: [],
        source: $s, created: (now | todate)}'
}

# machine_line: one line describing this machine and its load, for the results.
machine_line() {
    printf '%s CPUs (%s), %s GiB, kernel %s, load average %s' "$(nproc)" \
        "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" \
        "$(awk '/MemTotal/ {printf "%d", $2 / 1048576}' /proc/meminfo)" "$(uname -r)" \
        "$(cut -d' ' -f1-3 /proc/loadavg)"
}
