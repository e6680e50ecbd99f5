# Shared set-up for the benchmark scripts: the installed build and the test bed.
# Benchmarks are timed side by side in one run and reported as ratios; they are not tests.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$BENCH_ROOT/tests/harness/lib.sh"
PREFIX=$BED_DIR/install
BED_STARTED=0

bench_deps() {
    local missing=()
    for package in hyperfine charliecloud crun podman jq; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# bench_setup: builds and installs Shifter and brings the bed up unless it already is.
bench_setup() {
    [ "$(id -u)" = 0 ] || bed_die "benchmarks need root (they start the test bed)"
    "$BENCH_ROOT/tests/harness/install-deps"
    bench_deps
    if [ "${SKIP_BUILD:-0}" != 1 ]; then
        make -s -C "$BENCH_ROOT" all >/dev/null
        make -s -C "$BENCH_ROOT" install PREFIX="$PREFIX" SYSCONFDIR="$PREFIX/etc" >/dev/null
    fi
    if [ ! -f "$BED_ENV" ]; then
        BED_SPANK_PLUGIN=$PREFIX/lib/shifter/shifter_spank.so \
            "$BENCH_ROOT/tests/harness/bed" up
        BED_STARTED=1
    fi
    set -a; . "$BED_ENV"; set +a
}

# bench_teardown: takes the bed down again if bench_setup brought it up (KEEP_BED=1: leaves it up,
# for a machine where others use the bed too).
bench_teardown() {
    if [ "$BED_STARTED" = 1 ] && [ "${KEEP_BED:-0}" != 1 ]; then "$BENCH_ROOT/tests/harness/bed" down; fi
}

# as_bench_user COMMAND...: runs COMMAND as the bed's user without a login session (setpriv only
# sets ids and execs, so it adds nothing to what is timed).
as_bench_user() {
    setpriv --reuid="$(id -u "$BED_USER")" --regid="$(id -g "$BED_USER")" --init-groups \
        env HOME=/tmp USER="$BED_USER" PATH="$PREFIX/bin:/usr/bin:/bin" SLURM_CONF="$SLURM_CONF" "$@"
}

# median_ms FILE: the median of a hyperfine JSON export, in milliseconds.
median_ms() {
    jq -r '.results[0].median * 1000' "$1"
}

# busybox_digest: the id of the bed's busybox test image.
busybox_digest() {
    cat "$IMAGE_STORE/tags/docker%3A127.0.0.1%3A5000%2Ftest%2Fbusybox%3Alatest"
}

# start_prepared_job: submits a job on n1 that sleeps in the busybox image and sets JOB once its
# prolog has recorded the prepared root (state.json in n1's mount namespace).
start_prepared_job() {
    JOB=$(as_bench_user sbatch --parsable -w n1 -N1 -o /dev/null --image="$IMAGE_BUSYBOX" --wrap "sleep 600" | cut -d';' -f1)
    until [ "$(squeue -h -j "$JOB" -o %T)" = RUNNING ]; do sleep 0.2; done
    for _ in $(seq 100); do
        nsenter -t "$(cat "$SLURM_DIR/slurmd-n1.pid")" -m test -f "$BED_DIR/udiMount/job-$JOB/state.json" && return 0
        sleep 0.1
    done
    bed_die "job $JOB's prepared root on n1 was not recorded within 10 s"
}
