#!/bin/bash
# The per-node write cache against the simulated parallel filesystem (bench/pfs-sim): the seed's
# small-transaction test (dd if=/dev/zero bs=512 count=N) and a 512-byte random-write IOPS test
# (fio, psync), on 1, 2 and 4 nodes with 1 and 2 writers per node, each run
#   pfs         directly on the simulated parallel filesystem (every write(2) is one request), as a
#               job writing to its scratch directory would (plain srun, no container)
#   pfs-wb      the same with the client's write-back cache on (pfs-sim --writeback: the kernel
#               merges small writes into large requests, closer to what a Lustre client does);
#               not with QUICK=1
#   cache       in a perNodeCache volume (--volume=/x:/scratch:perNodeCache=size=1g) whose backing
#               file the prolog creates on the same simulated filesystem: each node's view of
#               perNodeCachePath is its simulator instance for the duration of the benchmark
# Rates are per writer, from the writer's own clock: "written" when the last write(2) returned,
# "synced" after fsync of the file (its data on the parallel filesystem). Both ways run the same
# dd and fio binaries (in the cache way from a small image made of this machine's binaries).
#
#   bench/cache/run.sh         (QUICK=1: smaller counts, no pfs-wb)
# Writes bench/cache/results.csv and bench/cache/RESULTS.md.
. "$(dirname "$0")/../common.sh"
. "$BENCH_ROOT/bench/pfs-sim/lib.sh"
QUICK=${QUICK:-0}
BENCH_DIR=${BENCH_DIR:-/var/tmp/shifter-bench}
HERE=$BENCH_ROOT/bench/cache
FINAL_CSV=$HERE/results.csv
CONFIGS=("1 1" "1 2" "2 1" "2 2" "4 1" "4 2")   # nodes, writers per node
WAYS=(pfs cache pfs-wb)
# Writes per writer: directly on the PFS (each about 1 ms) and in the cache (dd: 512 MiB, fio: 256 MiB
# of random writes over its 64 MiB file), so that each test runs for seconds.
if [ "$QUICK" = 1 ]; then
    WAYS=(pfs cache)
    COUNT_PFS=${COUNT_PFS:-1500} COUNT_DD_CACHE=${COUNT_DD_CACHE:-262144} COUNT_FIO_CACHE=${COUNT_FIO_CACHE:-262144}
else
    COUNT_PFS=${COUNT_PFS:-3000} COUNT_DD_CACHE=${COUNT_DD_CACHE:-1048576} COUNT_FIO_CACHE=${COUNT_FIO_CACHE:-524288}
fi
CACHE_SIZE=2g   # the bed's perNodeCacheSizeLimit: two writers' dd files fit
IMAGE_NAME=iotools
IMAGE_REF=127.0.0.1:5000/bench/$IMAGE_NAME:latest
ALL_NODES=(n1 n2 n3 n4)

OUT=$(mktemp -d /tmp/shifter-bench.XXXXXX); chmod 777 "$OUT"
CSV=$OUT/results.csv   # moved to $FINAL_CSV when every run has completed
JOB=""
cleanup() {
    [ -n "$JOB" ] && scancel "$JOB" 2>/dev/null && bench_wait "$JOB" 60
    local node
    for node in "${ALL_NODES[@]}"; do cache_unbind "$node"; done
    store_remove "$IMAGE_NAME"
    pfs_down
    rm -rf "$OUT"
    bench_teardown
}
trap cleanup EXIT
log() { printf 'cache: %s\n' "$*" >&2; }

# The image: busybox, coreutils' dd, date and sync, fio, their libraries, and the writer script.
build_image() {
    local image=$BENCH_DIR/iotools.squashfs stamp
    stamp=$({ sha256sum "$HERE/writer"; dpkg-query -W fio coreutils busybox-static libc6; } | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$BENCH_DIR/iotools.stamp" 2>/dev/null)" != "$stamp" ] || [ ! -f "$image" ]; then
        log "building the iotools image from this machine's binaries"
        local root=$BENCH_DIR/iotools-root applet binary lib
        rm -rf "$root"; mkdir -p "$root"/usr/{bin,lib,lib64} "$root"/{etc,tmp,bench,scratch}
        chmod 1777 "$root/tmp"
        for lib in bin sbin lib lib64; do [ -e "$root/$lib" ] || ln -s "usr/${lib/sbin/bin}" "$root/$lib"; done
        cp /bin/busybox "$root/usr/bin/busybox"
        for applet in $(/bin/busybox --list); do [ -e "$root/usr/bin/$applet" ] || ln -s busybox "$root/usr/bin/$applet"; done
        for binary in /usr/bin/fio /usr/bin/dd /usr/bin/date /usr/bin/sync; do
            rm -f "$root/usr/bin/${binary##*/}"; cp "$binary" "$root/usr/bin/"
            ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
                local real dest
                real=$(readlink -f "$lib"); dest=${lib#/usr}; dest=$root/usr${dest}
                mkdir -p "$(dirname "$dest")"
                [ -e "$dest" ] || cp "$real" "$dest"
            done
        done
        cp "$HERE/writer" "$root/bench/writer"; chmod 755 "$root/bench/writer"
        mksquashfs "$root" "$image.tmp" -comp zstd -Xcompression-level 3 -noappend -quiet -no-progress -all-root >/dev/null
        chmod 644 "$image.tmp"; mv "$image.tmp" "$image"
        rm -rf "$root"
        echo "$stamp" > "$BENCH_DIR/iotools.stamp"
    fi
    local hex
    hex=$(sha256sum "$image" | cut -d' ' -f1)
    image_meta "sha256:$hex" "docker:$IMAGE_REF" /bin/sh > "$BENCH_DIR/iotools.meta.json"
    chmod 644 "$BENCH_DIR/iotools.meta.json"
    store_add "$IMAGE_NAME" "$hex" "$image" "$BENCH_DIR/iotools.meta.json"
}

# cache_bind NODE: NODE's perNodeCachePath becomes a directory on its simulator instance.
cache_bind() {
    on_node "$1" mount --bind "$PFS_MNT/pernode-cache" "$CACHE_PATH"
}
cache_unbind() {
    [ -n "${CACHE_PATH:-}" ] && [ -n "$(node_pid "$1")" ] || return 0
    while awk -v p="$CACHE_PATH" '$2 == p && $3 == "fuse.pfs-sim" {f = 1} END {exit !f}' "/proc/$(node_pid "$1")/mounts"; do
        on_node "$1" umount "$CACHE_PATH" 2>/dev/null || on_node "$1" umount -l "$CACHE_PATH" || break
    done
}

# instances WAY: every node's simulator instance, started for WAY.
instances() {
    local node
    for node in "${ALL_NODES[@]}"; do
        cache_unbind "$node"
        if [ "$1" = pfs-wb ]; then pfs_mount "$node" --writeback; else pfs_mount "$node"; fi
        [ "$1" = cache ] && cache_bind "$node"
    done
    return 0
}

cat > "$OUT/job.sh" <<'JOB'
#!/bin/bash
# job.sh WAY DD-COUNT FIO-COUNT WRITER: the dd step, then the fio step.
way=$1 dd_count=$2 fio_count=$3 writer=$4
if [ "$way" = cache ]; then
    srun shifter /bench/writer dd /scratch "$dd_count"
    srun shifter /bench/writer fio /scratch "$fio_count"
else
    dir=$PFS_MNT/scratch/job-$SLURM_JOB_ID
    mkdir -p "$dir"
    srun "$writer" dd "$dir" "$dd_count"
    srun "$writer" fio "$dir" "$fio_count"
    rmdir "$dir"
fi
JOB
chmod 755 "$OUT/job.sh"
install -m 755 "$HERE/writer" "$OUT/writer"

# run_one WAY NODES WRITERS: one job; appends a CSV row per test.
run_one() {
    local way=$1 nodes=$2 writers=$3 tag="$1.$2.$3" node
    # Each test runs for seconds: a small-write cache (the perNodeCache, or the client's write-back
    # cache for dd) gets as many writes as the perNodeCache.
    local dd_count=$COUNT_PFS fio_count=$COUNT_PFS
    if [ "$way" = cache ]; then dd_count=$COUNT_DD_CACHE fio_count=$COUNT_FIO_CACHE; fi
    if [ "$way" = pfs-wb ]; then dd_count=$COUNT_DD_CACHE; fi
    for node in "${ALL_NODES[@]}"; do pfs_reset "$node"; done
    local extra=()
    [ "$way" = cache ] && extra=(--image="$IMAGE_REF" --volume="/x:/scratch:perNodeCache=size=$CACHE_SIZE")
    local attempt
    for attempt in 1 2 3; do
        # The bed is shared: if it went down or its nodes restarted, wait for it and start the
        # node's instances again (a restarted node has a new mount namespace).
        bed_wait || { log "the test bed is down"; exit 1; }
        for node in "${ALL_NODES[@]}"; do
            if ! pfs_mounted "$node" || { [ "$way" = cache ] && ! pfs_mounted "$node" "$CACHE_PATH"; }; then
                log "$tag: starting $node's instance again (the node restarted)"
                cache_unbind "$node"
                if [ "$way" = pfs-wb ]; then pfs_mount "$node" --writeback; else pfs_mount "$node"; fi
                if [ "$way" = cache ]; then cache_bind "$node"; fi
            fi
        done
        rm -f "$OUT/job.$tag.log"
        JOB=$(bench_submit -N "$nodes" --ntasks-per-node="$writers" -o "$OUT/job.$tag.log" \
            --export=ALL,PFS_MNT="$PFS_MNT" "${extra[@]}" "$OUT/job.sh" "$way" "$dd_count" "$fio_count" "$OUT/writer")
        bench_wait "$JOB" 900 || true
        local want=$((nodes * writers)) log_file=$OUT/job.$tag.log
        if grep -q "container could not be set up" "$log_file" 2>/dev/null; then
            # A prolog that failed to set a node up: run again, and say so in RESULTS.md.
            log "$tag: job $JOB: the prolog failed: $(grep -m1 'could not be set up' "$log_file")"
            echo "$tag job $JOB: $(grep -m1 'could not be set up' "$log_file" | sed 's/.*: job [0-9]*: //')" >> "$OUT/retried"
        elif [ "$(grep -cE '^dd ' "$log_file" 2>/dev/null)" = "$want" ] && [ "$(grep -cE '^fio ' "$log_file")" = "$want" ]; then
            break
        else
            log "$tag: job $JOB did not complete (did the test bed go down?); again"
            echo "$tag job $JOB: did not complete (the test bed went down or restarted during it)" >> "$OUT/retried"
        fi
        for node in "${ALL_NODES[@]}"; do if pfs_mounted "$node"; then pfs_reset "$node"; fi; done
    done
    local job=$JOB; JOB=""
    local meta=0 data=0 mb=0
    for node in "${ALL_NODES[@]}"; do
        pfs_stats "$node" > "$OUT/stats.$tag.$node.json"
        meta=$((meta + $(jq .meta_ops "$OUT/stats.$tag.$node.json")))
        data=$((data + $(jq .data_ops "$OUT/stats.$tag.$node.json")))
    done
    mb=$(jq -s 'map(.bytes_written) | add / 1048576 | round' "$OUT"/stats."$tag".n*.json)
    local kind lines
    for kind in dd fio; do
        lines=$(grep -E "^$kind " "$OUT/job.$tag.log" || true)
        if [ "$(grep -c . <<<"$lines")" != $((nodes * writers)) ]; then
            log "$tag: expected $((nodes * writers)) $kind writers, got:"; cat "$OUT/job.$tag.log" >&2; exit 1
        fi
        # Per writer: MB/s (dd) or IOPS (fio), at "written" and at "synced"; mean over writers.
        awk -v way="$way" -v n="$nodes" -v w="$writers" -v kind="$kind" -v meta="$meta" -v data="$data" \
            -v mb="$mb" -v job="$job" '
            { c = $4; tw = $6 - $5; ts = $7 - $5
              if (kind == "dd") { rw += c * 512 / tw / 1e6; rs += c * 512 / ts / 1e6 }
              else { rw += c / tw; rs += c / ts }
              k++; count = c; sw += tw; ss += ts }
            END { printf "%s,%s,%d,%d,%d,%.3f,%.3f,%.1f,%.1f,%.1f,%.1f,%d,%d,%d,%s\n", kind, way, n, w, count,
                  sw / k, ss / k, rw / k, rs / k, rw, rs, meta / n, data / n, mb, job }' <<<"$lines" >> "$CSV"
        log "$(tail -n 1 "$CSV")"
    done
}

bench_setup
CACHE_PATH=$(sed -n 's/^perNodeCachePath=//p' "$SITE_CONFIG" | tail -n 1)
[ -n "$CACHE_PATH" ] || { log "no perNodeCachePath in $SITE_CONFIG"; exit 1; }
pfs_build
mkdir -p "$PFS_DATA/scratch" "$PFS_DATA/pernode-cache"
chown "$BED_USER" "$PFS_DATA/scratch"; chmod 755 "$PFS_DATA/scratch"; chmod 700 "$PFS_DATA/pernode-cache"
build_image
echo "test,way,nodes,writers_per_node,count,seconds_written,seconds_synced,per_writer_written,per_writer_synced,aggregate_written,aggregate_synced,meta_ops_per_node,data_requests_per_node,mib_to_pfs,job" > "$CSV"
MACHINE=$(machine_line)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
for way in "${WAYS[@]}"; do
    instances "$way"
    for config in "${CONFIGS[@]}"; do
        # shellcheck disable=SC2086
        run_one "$way" $config
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
cp "$CSV" "$FINAL_CSV"
RETRIED=$(cat "$OUT/retried" 2>/dev/null || true)

python3 - "$FINAL_CSV" "$HERE/RESULTS.md" "$MACHINE" "$STARTED" "$LOAD_AFTER" "$QUICK" "$COUNT_PFS" "$COUNT_DD_CACHE" \
    "$COUNT_FIO_CACHE" "$CACHE_SIZE" "$RETRIED" <<'PY'
import csv, sys
path, out, machine, started, load_after, quick, count_pfs, count_dd, count_fio, size, retried = sys.argv[1:]
rows = list(csv.DictReader(open(path)))
ways = list(dict.fromkeys(r["way"] for r in rows))
def get(test, way, n, w, key):
    for r in rows:
        if r["test"] == test and r["way"] == way and r["nodes"] == n and r["writers_per_node"] == w:
            return float(r[key])
    return None
configs = list(dict.fromkeys((r["nodes"], r["writers_per_node"]) for r in rows))
L = ["# Per-node write cache", ""]
L.append(f"Command: `bench/cache/run.sh`{' (QUICK=1)' if quick == '1' else ''}, started {started}.")
L.append(f"Machine: {machine}; load average after: {load_after}. The four Slurm nodes share this machine's cores and disk.")
L.append(f"Simulated parallel filesystem: one pfs-sim instance per node, 0.5 ms per metadata request, 1 ms per data "
         f"request. Writes of 512 bytes per writer: {int(count_pfs):,} directly on it (dd with the write-back "
         f"client: {int(count_dd):,}); in the cache (a {size.upper()} XFS perNodeCache volume whose sparse file "
         f"the prolog made on it) {int(count_dd):,} for dd and {int(count_fio):,} for fio. One run per row.")
L.append("")
for test, unit, label in (("dd", "MB/s", "dd if=/dev/zero bs=512 (MB/s per writer)"),
                          ("fio", "IOPS", "fio 512-byte random writes (IOPS per writer)")):
    L.append(f"**{label}**, \"written\" / \"synced\" (after fsync of the file):")
    L.append("")
    head = "| nodes / writers per node |"
    for way in ways:
        head += f" {way} |"
    head += " cache ÷ pfs (synced) |" + (" cache ÷ pfs-wb (synced) |" if "pfs-wb" in ways else "")
    L.append(head)
    L.append("|---" * (head.count("|") - 1) + "|")
    for n, w in configs:
        line = f"| {n}/{w} |"
        for way in ways:
            a, b = get(test, way, n, w, "per_writer_written"), get(test, way, n, w, "per_writer_synced")
            line += f" {a:,.1f} / {b:,.1f} |" if a is not None else " |"
        c, p = get(test, "cache", n, w, "per_writer_synced"), get(test, "pfs", n, w, "per_writer_synced")
        line += f" {c / p:,.0f}x |" if c and p else " |"
        if "pfs-wb" in ways:
            q = get(test, "pfs-wb", n, w, "per_writer_synced")
            line += f" {c / q:,.1f}x |" if c and q else " |"
        L.append(line)
    L.append("")
L.append("Requests that reached the simulated filesystem per node (dd and fio steps together):")
L.append("")
L.append("| nodes / writers per node | " + " | ".join(f"{w}: metadata / data requests, MiB" for w in ways) + " |")
L.append("|---" * (len(ways) + 1) + "|")
for n, w in configs:
    line = f"| {n}/{w} |"
    for way in ways:
        r = [x for x in rows if x["test"] == "dd" and x["way"] == way and x["nodes"] == n and x["writers_per_node"] == w]
        line += f" {r[0]['meta_ops_per_node']} / {r[0]['data_requests_per_node']}, {r[0]['mib_to_pfs']} |" if r else " |"
    L.append(line)
if retried.strip():
    L.append("")
    L.append("Jobs run again (the rows above are from the runs that worked):")
    L.append("")
    for line in retried.strip().splitlines():
        L.append(f"- {line}")
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
