#!/bin/bash
# Import benchmark: pull a Debian root filesystem with Python, NumPy and SciPy (3 layers) from the
# test bed's registry and turn it into a squashfs image, with shifterimg and, side by side, with the
# peers' pipelines:
#   skopeo copy + umoci unpack + mksquashfs (gzip, its default)    Sarus and the old Shifter
#   the same with mksquashfs -comp zstd -Xcompression-level 3      the peers given our compressor
#   ch-image pull + ch-convert -o squash                           Charliecloud
# Each pipeline runs RUNS times (default 3); the medians, ratios, image sizes and peak memory are
# printed and written to bench/import/RESULTS.md.
#
#   bench/import/run.sh [RUNS]
#
# Needs root, the test bed up (tests/harness/bed up), network access to a Debian mirror the first
# time (the image is built once with debootstrap and cached in $BENCH_DIR), and shifterimg
# ($SHIFTERIMG, default: the bed's installed one).
set -euo pipefail
RUNS=${1:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
BED_DIR=${BED_DIR:-/var/tmp/shifter-bed}
BENCH_DIR=${BENCH_DIR:-/var/tmp/shifter-bench}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=${SUITE:-bookworm}
[ -f "$BED_DIR/env" ] || { echo "run.sh: the test bed is not up (tests/harness/bed up)" >&2; exit 1; }
set -a; . "$BED_DIR/env"; set +a
SHIFTERIMG=${SHIFTERIMG:-$BED_DIR/install/bin/shifterimg}
IMAGE=$REGISTRY_ANON/bench/numpy:latest
export REQUESTS_CA_BUNDLE=$CA_BUNDLE SHIFTER_CA_BUNDLE=$CA_BUNDLE
log() { printf 'run.sh: %s\n' "$*" >&2; }

for tool in debootstrap umoci skopeo mksquashfs ch-image ch-convert /usr/bin/time; do
    command -v "$tool" >/dev/null || { log "missing $tool (apt-get install debootstrap umoci skopeo squashfs-tools charliecloud charliecloud-builders time)"; exit 1; }
done
[ -x "$SHIFTERIMG" ] || { log "no shifterimg at $SHIFTERIMG"; exit 1; }
mkdir -p "$BENCH_DIR"

# The image: debootstrap once, then one layer per step with umoci repack --refresh-bundle:
# the base system, then the Python standard library, then dist-packages with NumPy and SciPy.
build_image() {
    local layout=$BENCH_DIR/oci rootfs=$BENCH_DIR/rootfs bundle=$BENCH_DIR/bundle
    if [ ! -f "$layout/complete" ]; then
        if [ ! -f "$rootfs/.complete" ]; then
            log "debootstrap $SUITE with python3-numpy and python3-scipy (once)"
            rm -rf "$rootfs"
            debootstrap --variant=minbase --include=python3-numpy,python3-scipy "$SUITE" "$rootfs" "$MIRROR" >/dev/null
            rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
            touch "$rootfs/.complete"
        fi
        log "building the three-layer OCI image"
        rm -rf "$layout" "$bundle"
        umoci init --layout "$layout"
        umoci new --image "$layout:bench"
        umoci unpack --image "$layout:bench" "$bundle" >/dev/null
        local step
        for step in base stdlib packages; do
            case $step in
                base) tar -C "$rootfs" --exclude=./.complete --exclude='./usr/lib/python3*' -cf - . ;;
                stdlib) tar -C "$rootfs" -cf - ./usr/lib/python3.11 ;;
                packages) tar -C "$rootfs" -cf - ./usr/lib/python3 ;;
            esac | tar -C "$bundle/rootfs" --numeric-owner -xpf -
            umoci repack --refresh-bundle --image "$layout:bench" "$bundle"
        done
        umoci config --image "$layout:bench" --config.cmd python3
        rm -rf "$bundle"
        touch "$layout/complete"
    fi
    skopeo copy -q --dest-cert-dir "$CA_DIR" "oci:$layout:bench" "docker://$IMAGE"
}

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }

# stage NAME COMMAND...: runs one stage under /usr/bin/time, appending "NAME WALL_S MAXRSS_KB".
stage() {
    local name=$1; shift
    /usr/bin/time -f "$name %e %M" -a -o "$STAGES" "$@" >/dev/null 2>"$BENCH_DIR/stage.err" \
        || { log "$name failed:"; cat "$BENCH_DIR/stage.err" >&2; exit 1; }
}

run_shifterimg() {
    local store=$BENCH_DIR/run/store
    mkdir -p "$store"
    printf 'udiMount=%s\nloopMount=%s\nimagePath=%s\nimageGateway=local\n' \
        "$BENCH_DIR/run/u" "$BENCH_DIR/run/l" "$store" > "$BENCH_DIR/run/udiRoot.conf"
    stage pull "$SHIFTERIMG" --config "$BENCH_DIR/run/udiRoot.conf" pull "$IMAGE"
    OUTPUT=$(ls "$store"/*.squashfs)
}

run_umoci() { # COMPRESSION-OPTIONS...
    stage skopeo skopeo copy -q --src-cert-dir "$CA_DIR" "docker://$IMAGE" "oci:$BENCH_DIR/run/oci:img"
    stage umoci-unpack umoci unpack --image "$BENCH_DIR/run/oci:img" "$BENCH_DIR/run/bundle"
    stage mksquashfs mksquashfs "$BENCH_DIR/run/bundle/rootfs" "$BENCH_DIR/run/image.sqfs" -noappend -no-progress "$@"
    OUTPUT=$BENCH_DIR/run/image.sqfs
}

run_charliecloud() {
    # ch-image needs Debian's python3 (for lark), not whichever python3 is first on the PATH.
    local PATH=/usr/bin:/bin:/usr/sbin:/sbin
    # ch-convert finds the storage through CH_IMAGE_STORAGE only; ch-image wants $USER set.
    stage ch-image env USER="${USER:-root}" CH_IMAGE_STORAGE="$BENCH_DIR/run/ch" ch-image pull "$IMAGE"
    stage ch-convert env USER="${USER:-root}" CH_IMAGE_STORAGE="$BENCH_DIR/run/ch" \
        ch-convert -i ch-image -o squash "$IMAGE" "$BENCH_DIR/run/image.sqfs"
    OUTPUT=$BENCH_DIR/run/image.sqfs
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A WALL SIZE RSS DETAIL
PIPELINES=(shifterimg umoci-gzip umoci-zstd3 charliecloud)
build_image
for pipeline in "${PIPELINES[@]}"; do
    walls=()
    for run in $(seq "$RUNS"); do
        rm -rf "$BENCH_DIR/run"; mkdir -p "$BENCH_DIR/run"
        STAGES=$BENCH_DIR/stages-$pipeline-$run; : > "$STAGES"
        drop_caches
        case $pipeline in
            shifterimg) run_shifterimg ;;
            umoci-gzip) run_umoci ;;
            umoci-zstd3) run_umoci -comp zstd -Xcompression-level 3 ;;
            charliecloud) run_charliecloud ;;
        esac
        walls+=("$(awk '{ s += $2 } END { printf "%.2f", s }' "$STAGES")")
        log "$pipeline run $run: $(tr '\n' ' ' < "$STAGES")"
    done
    WALL[$pipeline]=$(printf '%s\n' "${walls[@]}" | median)
    SIZE[$pipeline]=$(stat -c %s "$OUTPUT")
    RSS[$pipeline]=$(cat "$BENCH_DIR"/stages-"$pipeline"-* | awk '$3 > m { m = $3 } END { print m }')
    DETAIL[$pipeline]=$(awk '{ t[$1] = t[$1] " " $2 } END { for (s in t) printf "%s:%s; ", s, t[s] }' "$BENCH_DIR"/stages-"$pipeline"-*)
done
rm -rf "$BENCH_DIR/run"

# The floor of any importer: one gzip stream decompresses on one core only, so the image's largest
# layer bounds the import from below however the rest is overlapped with it.
largest=$(ls -S "$BENCH_DIR/oci/blobs/sha256" | head -n 1)
largest_mb=$(( $(stat -c %s "$BENCH_DIR/oci/blobs/sha256/$largest") / 1048576 ))
GUNZIP_S=$( { /usr/bin/time -f %e gzip -dc < "$BENCH_DIR/oci/blobs/sha256/$largest" > /dev/null; } 2>&1 | tail -n 1)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
fastest_peer=$(printf '%s\n' "${WALL[umoci-gzip]}" "${WALL[charliecloud]}" | sort -n | head -n 1)
{
    echo "# Import benchmark results"
    echo
    echo "Command: \`bench/import/run.sh $RUNS\` ($(date -u +%Y-%m-%d), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%d GiB", $2 / 1048576 }' /proc/meminfo))."
    echo "Load average before and after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine slows every pipeline alike)."
    echo "Image: Debian $SUITE minbase + python3-numpy + python3-scipy, 3 layers, $(du -sh --apparent-size "$BENCH_DIR/rootfs" | cut -f1) unpacked, $(find "$BENCH_DIR/rootfs" | wc -l) files, pulled from the bed's registry ($IMAGE) over TLS."
    echo
    echo "| pipeline | median wall (s) of $RUNS | image size (bytes) | peak RSS (MB) | per-stage walls (s) |"
    echo "|---|---|---|---|---|"
    for pipeline in "${PIPELINES[@]}"; do
        echo "| $pipeline | ${WALL[$pipeline]} | ${SIZE[$pipeline]} | $((RSS[$pipeline] / 1024)) | ${DETAIL[$pipeline]} |"
    done
    echo
    echo "- Speed-up over the fastest peer at its defaults: $(ratio "$fastest_peer" "${WALL[shifterimg]}")x (goal: 5x)."
    echo "- Speed-up over skopeo+umoci+mksquashfs with zstd level 3: $(ratio "${WALL[umoci-zstd3]}" "${WALL[shifterimg]}")x (goal: 3x)."
    echo "- Image size relative to skopeo+umoci+mksquashfs (gzip): $(ratio "${SIZE[shifterimg]}" "${SIZE[umoci-gzip]}")x (goal: at most 1.1x)."
    echo "- Peak memory of shifterimg: $((RSS[shifterimg] / 1024)) MB (goal: under 500 MB)."
    echo
    echo "The floor: the image's largest layer ($largest_mb MB, gzip) takes $GUNZIP_S s to decompress with \`gzip -dc\`"
    echo "on one core, and one gzip stream cannot be split across cores. shifterimg downloads, decompresses"
    echo "and writes the squashfs image in one pass, overlapped with that stream, in ${WALL[shifterimg]} s; a 3x"
    echo "speed-up over skopeo+umoci+mksquashfs at zstd level 3 would need $(awk -v a="${WALL[umoci-zstd3]}" 'BEGIN { printf "%.2f", a / 3 }') s."
} > "$HERE/RESULTS.md.tmp"
mv "$HERE/RESULTS.md.tmp" "$HERE/RESULTS.md"
cat "$HERE/RESULTS.md"
