#!/bin/bash
# Import benchmark: pull two images of different shape from the test bed's registry and turn each
# into a squashfs image, with shifterimg and, side by side, with the peers' pipelines. The images:
#   numpy   Debian minbase with Debian's python3-numpy and python3-scipy, 3 layers: many small files
#   wheels  Debian minbase with Python, and the NumPy, SciPy, pandas and pyarrow wheels from PyPI
#           unpacked in a second layer: fewer files, large shared libraries
# The pipelines:
#   skopeo copy + umoci unpack + mksquashfs (gzip, its default)    Sarus and the old Shifter
#   the same with mksquashfs -comp zstd -Xcompression-level 3      the peers given our compressor
#   ch-image pull + ch-convert -o squash                           Charliecloud
# Each pipeline runs RUNS times (default 3); the medians, ratios, image sizes and peak memory are
# printed and written to bench/import/RESULTS.md.
#
#   bench/import/run.sh [RUNS]
#
# Needs root, the test bed up (tests/harness/bed up), network access to a Debian mirror and to PyPI
# the first time (the images are built once, with debootstrap and pip download, and cached in
# $BENCH_DIR), and shifterimg ($SHIFTERIMG, default: the bed's installed one).
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
WHEELS=${WHEELS:-numpy scipy pandas pyarrow}
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
    skopeo copy -q --dest-cert-dir "$CA_DIR" "oci:$layout:bench" "docker://$REGISTRY_ANON/bench/numpy:latest"
}

# The second image: the same base without Debian's dist-packages, then one layer of wheels from
# PyPI unpacked as pip would install them (large shared libraries: libarrow, OpenBLAS, ...).
build_wheels_image() {
    local layout=$BENCH_DIR/oci-wheels rootfs=$BENCH_DIR/rootfs bundle=$BENCH_DIR/bundle-wheels wheels=$BENCH_DIR/wheels
    if [ ! -f "$layout/complete" ]; then
        if [ ! -f "$wheels/.complete" ]; then
            log "pip download $WHEELS (once)"
            rm -rf "$wheels"; mkdir -p "$wheels"
            # The bed's CA bundle (REQUESTS_CA_BUNDLE, for its registry) is not PyPI's.
            # shellcheck disable=SC2086
            env -u REQUESTS_CA_BUNDLE python3 -m pip download -q --only-binary :all: --python-version 3.11 --implementation cp \
                --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d "$wheels" $WHEELS
            touch "$wheels/.complete"
        fi
        log "building the two-layer wheels image"
        rm -rf "$layout" "$bundle"
        umoci init --layout "$layout"
        umoci new --image "$layout:bench"
        umoci unpack --image "$layout:bench" "$bundle" >/dev/null
        tar -C "$rootfs" --exclude=./.complete --exclude='./usr/lib/python3/dist-packages/*' -cf - . \
            | tar -C "$bundle/rootfs" --numeric-owner -xpf -
        umoci repack --refresh-bundle --image "$layout:bench" "$bundle"
        local site=$bundle/rootfs/usr/local/lib/python3.11/dist-packages wheel
        mkdir -p "$site"
        for wheel in "$wheels"/*.whl; do python3 -m zipfile -e "$wheel" "$site"; done
        umoci repack --refresh-bundle --image "$layout:bench" "$bundle"
        umoci config --image "$layout:bench" --config.cmd python3
        rm -rf "$bundle"
        touch "$layout/complete"
    fi
    skopeo copy -q --dest-cert-dir "$CA_DIR" "oci:$layout:bench" "docker://$REGISTRY_ANON/bench/wheels:latest"
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
IMAGES=(numpy wheels)
build_image
build_wheels_image
for name in "${IMAGES[@]}"; do
    IMAGE=$REGISTRY_ANON/bench/$name:latest
    for pipeline in "${PIPELINES[@]}"; do
        walls=()
        for run in $(seq "$RUNS"); do
            rm -rf "$BENCH_DIR/run"; mkdir -p "$BENCH_DIR/run"
            STAGES=$BENCH_DIR/stages-$name-$pipeline-$run; : > "$STAGES"
            drop_caches
            case $pipeline in
                shifterimg) run_shifterimg ;;
                umoci-gzip) run_umoci ;;
                umoci-zstd3) run_umoci -comp zstd -Xcompression-level 3 ;;
                charliecloud) run_charliecloud ;;
            esac
            walls+=("$(awk '{ s += $2 } END { printf "%.2f", s }' "$STAGES")")
            log "$name: $pipeline run $run: $(tr '\n' ' ' < "$STAGES")"
        done
        key=$name/$pipeline
        WALL[$key]=$(printf '%s\n' "${walls[@]}" | median)
        SIZE[$key]=$(stat -c %s "$OUTPUT")
        RSS[$key]=$(cat "$BENCH_DIR"/stages-"$name"-"$pipeline"-* | awk '$3 > m { m = $3 } END { print m }')
        DETAIL[$key]=$(awk '{ t[$1] = t[$1] " " $2 } END { for (s in t) printf "%s:%s; ", s, t[s] }' "$BENCH_DIR"/stages-"$name"-"$pipeline"-*)
    done
done
rm -rf "$BENCH_DIR/run"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
describe() {
    case $1 in
        numpy) echo "Debian $SUITE minbase + python3-numpy + python3-scipy, 3 layers, $(du -sh --apparent-size "$BENCH_DIR/rootfs" | cut -f1) unpacked, $(find "$BENCH_DIR/rootfs" | wc -l) files" ;;
        wheels) echo "Debian $SUITE minbase + Python, then the wheels of $WHEELS from PyPI unpacked in one layer ($(du -sh --apparent-size "$BENCH_DIR/wheels" | cut -f1) of wheels; the largest shared library $(python3 -c 'import sys, zipfile; print(max((i.file_size, i.filename.rsplit("/", 1)[-1]) for w in sys.argv[1:] for i in zipfile.ZipFile(w).infolist())[1])' "$BENCH_DIR"/wheels/*.whl)), 2 layers" ;;
    esac
}
{
    echo "# Import benchmark results"
    echo
    echo "Command: \`bench/import/run.sh $RUNS\` ($(date -u +%Y-%m-%d), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%d GiB", $2 / 1048576 }' /proc/meminfo))."
    echo "Load average before and after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine slows every pipeline alike)."
    echo "Each image is pulled from the bed's registry over TLS. shifterimg inflates gzip layers with ISA-L on a"
    echo "thread of its own, overlapped with tar parsing and squashfs compression on the other core."
    for name in "${IMAGES[@]}"; do
        fastest_peer=$(printf '%s\n' "${WALL[$name/umoci-gzip]}" "${WALL[$name/charliecloud]}" | sort -n | head -n 1)
        echo
        echo "## Image $name"
        echo
        echo "$(describe "$name"), as $REGISTRY_ANON/bench/$name:latest."
        echo
        echo "| pipeline | median wall (s) of $RUNS | image size (bytes) | peak RSS (MB) | per-stage walls (s) |"
        echo "|---|---|---|---|---|"
        for pipeline in "${PIPELINES[@]}"; do
            key=$name/$pipeline
            echo "| $name: $pipeline | ${WALL[$key]} | ${SIZE[$key]} | $((RSS[$key] / 1024)) | ${DETAIL[$key]} |"
        done
        echo
        echo "- Speed-up over the fastest peer at its defaults, $name image: $(ratio "$fastest_peer" "${WALL[$name/shifterimg]}")x (goal: 8x)."
        echo "- Speed-up over skopeo+umoci+mksquashfs with zstd level 3, $name image: $(ratio "${WALL[$name/umoci-zstd3]}" "${WALL[$name/shifterimg]}")x (goal: 3x)."
        echo "- Image size relative to skopeo+umoci+mksquashfs (gzip), $name image: $(ratio "${SIZE[$name/shifterimg]}" "${SIZE[$name/umoci-gzip]}")x (goal: at most 1.1x)."
        echo "- Peak memory of shifterimg, $name image: $((RSS[$name/shifterimg] / 1024)) MB (goal: under 500 MB)."
        # The floor of any importer: one gzip stream inflates on one core only, so the image's
        # largest layer bounds the import from below however the rest is overlapped with it.
        blobs=$BENCH_DIR/oci/blobs/sha256
        [ "$name" = wheels ] && blobs=$BENCH_DIR/oci-wheels/blobs/sha256
        largest=$(ls -S "$blobs" | head -n 1)
        GUNZIP_S=$( { /usr/bin/time -f %e gzip -dc < "$blobs/$largest" > /dev/null; } 2>&1 | tail -n 1)
        ZLIB_S=$( { /usr/bin/time -f %e python3 -c 'import sys, zlib
d = zlib.decompressobj(31)
with open(sys.argv[1], "rb") as f:
    while (b := f.read(1 << 20)): d.decompress(b)' "$blobs/$largest" > /dev/null; } 2>&1 | tail -n 1)
        echo
        echo "The image's largest layer ($(( $(stat -c %s "$blobs/$largest") / 1048576 )) MB, gzip) takes $GUNZIP_S s to decompress with \`gzip -dc\` and"
        echo "$ZLIB_S s with zlib, on one core; one gzip stream cannot be split across cores."
    done
} > "$HERE/RESULTS.md.tmp"
mv "$HERE/RESULTS.md.tmp" "$HERE/RESULTS.md"
cat "$HERE/RESULTS.md"
