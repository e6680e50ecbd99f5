#!/bin/bash
# Writes Sources/shifter-command/startup.order: the functions that `shifter` runs from its start to
# the exec of the command when it enters a prepared root, one symbol per line. The linker places
# them side by side (Package.swift), so that a start touches a few pages of code, not pages all over
# the binary. Run it again when the entry path changes much; a stale list costs only locality.
#
#   bench/runtime/startup-order.sh      needs root and the test bed; installs valgrind and capsh if missing
#
# The installed build runs, as a copy without the setuid bit, under valgrind's callgrind as the
# bed's user with the capabilities it needs to enter the root, for an `id:` and a `docker:`
# reference; callgrind records every function up to the first execve.
. "$(dirname "$0")/../common.sh"
for package in valgrind libcap2-bin; do   # callgrind; capsh
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
done
OUT=$(mktemp -d /tmp/shifter-order.XXXXXX); chmod 755 "$OUT"
JOB=""
cleanup() {
    [ -n "$JOB" ] && scancel "$JOB" 2>/dev/null
    rm -rf "$OUT"
    bench_teardown
}
trap cleanup EXIT
bench_setup

digest=$(busybox_digest)
# valgrind 3.19 cannot read the DWARF the Swift compiler writes and gives up; the function names
# it needs are in the symbol table, which a copy without the debug sections keeps.
strip --strip-debug -o "$OUT/shifter" "$PREFIX/bin/shifter"
chmod 0755 "$OUT/shifter"
mkdir -m 0777 "$OUT/profiles"
start_prepared_job

caps=cap_sys_chroot,cap_setuid,cap_setgid,cap_dac_override,cap_dac_read_search,cap_sys_admin,cap_setpcap
n=0
for image in "id:$digest" "$IMAGE_BUSYBOX"; do
    n=$((n + 1))
    nsenter -t "$(cat "$SLURM_DIR/slurmd-n1.pid")" -m env SLURM_JOB_ID="$JOB" \
        capsh --caps="$caps+eip" --keep=1 --user="$BED_USER" --inh="$caps" --addamb="$caps" -- -c \
        "cd $OUT/profiles && valgrind --tool=callgrind --demangle=no --dump-before='*execve*' \
            --callgrind-out-file=$OUT/profiles/run$n $OUT/shifter --image='$image' /bin/true" >"$OUT/log$n" 2>&1 ||
        { cat "$OUT/log$n" >&2; bed_die "shifter did not enter the prepared root under valgrind"; }
done
# Function names in the order callgrind first names them; addresses without a name are left out.
cat "$OUT"/profiles/run*.1 | sed -n 's/^c\{0,1\}fn=([0-9]*) \(.*\)$/\1/p' | grep -v '^0x' | awk '!seen[$0]++' \
    > "$BENCH_ROOT/Sources/shifter-command/startup.order"
echo "$(wc -l < "$BENCH_ROOT/Sources/shifter-command/startup.order") functions in Sources/shifter-command/startup.order"
# The Makefile links shifter again when the list is newer than the binary.
