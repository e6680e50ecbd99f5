#!/usr/bin/env bats
# MPI through the MPICH ABI: the seed's hello-vm image (an MPI hello world built against MPICH,
# with its own libmpich) runs across the four bed nodes with `srun --mpi=pmi2`, and with
# --module=mpich it runs on the host's MPICH instead of its own. An image of another MPI ABI is
# refused by the module's root hook, which never looks outside the container root.

load helpers
bats_require_minimum_version 1.5.0

HOOK_SOURCE=$SHIFTER_SOURCE/etc/modules/mpich/abi-check.sh
MODULE_LIB=/opt/udiImage/modules/mpich/lib

setup() {
    U=$BED_USER
    IMAGE_HELLO=$REGISTRY_ANON/test/hello-vm:latest
    IMAGE_OPENMPI=$REGISTRY_ANON/test/hello-openmpi:latest
    OUT=$(mktemp -d /tmp/shifter-mpi.XXXXXX)
    chmod 777 "$OUT"
    # The host's libmpich.so.12 (the module's) and the image's copy of it, under its file name.
    ARCH=$(gcc -print-multiarch)
    HOST_LIBMPICH=$(readlink -f "/usr/lib/$ARCH/libmpich.so.12" || true)
    HOST_INODE=$(stat -c %i "$HOST_LIBMPICH" 2>/dev/null || echo none)
    IMAGE_LIBMPICH=/usr/lib/$ARCH/${HOST_LIBMPICH##*/}
    # The bed's nodes share one kernel and host name, so UCX takes ranks on two bed nodes for ranks
    # of one host and maps their shared memory through /proc/PID/fd, which the kernel refuses
    # between two user namespaces: with entryMode=userns each bed node's job has its own. On a
    # cluster a node's ranks share their job's one namespace there (userns.bats runs MPICH between
    # two such ranks, unchanged). Here UCX opens the segments by name instead.
    if [ "$ENTRY_MODE" = userns ]; then export UCX_POSIX_USE_PROC_LINK=n; fi
}

teardown() {
    rm -rf "$OUT"
}

need_mpi_images() {
    [ -f "$IMAGE_STORE/tags/docker%3A127.0.0.1%3A5000%2Ftest%2Fhello-vm%3Alatest" ] ||
        skip "the bed has no MPI images (install mpich and libmpich-dev, then run tests/harness/bed up)"
}

# check_ranks FILE PATH INODE-TEST: FILE holds the 8 ranks' lines, 2 per node on n1..n4, each
# with the MPI library PATH mapped, whose inode passes INODE-TEST (e.g. "-eq 123").
check_ranks() {
    local file=$1 path=$2 test=$3 line inode
    [ "$(grep -c '^rank ' "$file")" -eq 8 ]
    [ "$(grep '^rank ' "$file" | awk '{print $2}' | sort -n | tr '\n' ' ')" = "0 1 2 3 4 5 6 7 " ]
    [ "$(grep '^rank ' "$file" | awk '{print $4}' | sort -u)" = 8 ]
    [ "$(grep '^rank ' "$file" | awk '{print $8}' | sort | tr '\n' ' ')" = "n1 n1 n2 n2 n3 n3 n4 n4 " ]
    while read -r line; do
        [ "$(echo "$line" | awk '{print $10}')" = "$path" ] || { echo "wrong library: $line" >&2; return 1; }
        inode=$(echo "$line" | awk '{print $12}')
        # shellcheck disable=SC2086
        [ "$inode" $test ] || { echo "wrong inode: $line" >&2; return 1; }
    done < <(grep '^rank ' "$file")
    grep -qx 'sum 28 of 8 ranks ok' "$file"
}

@test "hello-vm runs 8 ranks on 4 nodes with srun --mpi=pmi2 and the host's MPICH through --module=mpich" {
    need_mpi_images
    job=$(submit "$U" -N4 -n8 -o "$OUT/out" --image="$IMAGE_HELLO" --module=mpich --wrap "
        srun --mpi=pmi2 -n 8 shifter /app/hello
        srun -N1 -n1 shifter env LD_TRACE_LOADED_OBJECTS=1 /app/hello | sed 's/^[[:space:]]*/ldso /'
        srun -N1 -n1 shifter sh -c 'echo \"env \$LD_LIBRARY_PATH\"'")
    wait_job "$job" 300
    cat "$OUT/out"
    [ "$(job_state "$job")" = COMPLETED ]
    check_ranks "$OUT/out" "$MODULE_LIB/libmpich.so.12" "-eq $HOST_INODE"
    # The loader takes the MPI and its network stack from the module, glibc from the image.
    grep -q "^ldso libmpich.so.12 => $MODULE_LIB/libmpich.so.12 " "$OUT/out"
    grep -q "^ldso libucp.so.0 => $MODULE_LIB/libucp.so.0 " "$OUT/out"
    grep -q "^ldso libc.so.6 => /lib/$ARCH/libc.so.6 " "$OUT/out"
    grep -qx "env $MODULE_LIB" "$OUT/out"
    assert_nodes_clean "$job"
}

@test "without the module hello-vm runs on its own MPICH, a different file from the host's" {
    need_mpi_images
    job=$(submit "$U" -N4 -n8 -o "$OUT/out" --image="$IMAGE_HELLO" --wrap "srun --mpi=pmi2 -n 8 shifter /app/hello")
    wait_job "$job" 300
    cat "$OUT/out"
    [ "$(job_state "$job")" = COMPLETED ]
    check_ranks "$OUT/out" "$IMAGE_LIBMPICH" "-ne $HOST_INODE"
    assert_nodes_clean "$job"
}

@test "an image of another MPI ABI is refused by the mpich module with the reason" {
    need_mpi_images
    reason="mpich module: the image's MPI does not have the ABI of the site's MPICH (libmpi.so.12/libmpich.so.12): found libmpi.so.40 of Open MPI in /opt/openmpi/lib; rebuild the image against an MPI of the MPICH ABI or run it without --module=mpich"
    # Without the module the image runs.
    run shifter_as "$U" --image="$IMAGE_OPENMPI" ls /opt/openmpi/lib
    [ "$status" -eq 0 ]
    [[ "$output" == *libmpi.so.40* ]]
    # shifter refuses it before running anything.
    run shifter_as "$U" --image="$IMAGE_OPENMPI" --module=mpich echo ran
    echo "$output"
    [ "$status" -eq 1 ]
    [ "$output" = "shifter: module mpich roothook $(grep -o '^module_mpich_roothook=.*' "$SITE_CONFIG" | cut -d= -f2) failed with status 1: $reason" ]
    assert_no_leaks
    # So does the job's prolog: the job fails, says why, and leaves the nodes clean and in service.
    job=$(submit "$U" -N2 -o "$OUT/out" --image="$IMAGE_OPENMPI" --module=mpich --wrap "srun -N2 shifter true; echo after-srun")
    wait_job "$job" 120
    cat "$OUT/out"
    [ "$(job_state "$job")" = FAILED ]
    grep -q "shifter: the job's container could not be set up on node n[0-9]: job $job: .*$reason" "$OUT/out"
    ! grep -q after-srun "$OUT/out" || false
    [ -z "$(sinfo -h -N -t drain,drng -o %N)" ]
    assert_nodes_clean "$job"
}

@test "an image with no MPI at all is accepted by the mpich module" {
    need_mpi_images
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" --module=mpich sh -c 'echo "$LD_LIBRARY_PATH"; ls /opt/udiImage/modules/mpich/lib/libmpi.so.12'
    [ "$status" -eq 0 ]
    [ "$output" = "$(printf '%s\n%s' "$MODULE_LIB" "$MODULE_LIB/libmpi.so.12")" ]
}

# The root hook on its own, on roots made here.

hook_root() {
    ROOT=$OUT/root
    rm -rf "$ROOT"
    mkdir -p "$ROOT/usr/lib/x86_64-linux-gnu" "$ROOT/usr/lib64" "$ROOT/etc"
    ln -s usr/lib "$ROOT/lib"
    ln -s usr/lib64 "$ROOT/lib64"
}

run_hook() {
    local before after
    before=$(cd "$OUT" && find . -printf '%p %y %s %T@ %l\n' | sort)
    run /bin/sh "$HOOK_SOURCE" "$ROOT"
    after=$(cd "$OUT" && find . -printf '%p %y %s %T@ %l\n' | sort)
    # It writes nothing.
    [ "$before" = "$after" ]
}

@test "abi-check: MPICH of the ABI is accepted, in a merged /usr and behind absolute links" {
    hook_root
    touch "$ROOT/usr/lib/x86_64-linux-gnu/libmpich.so.12.2.2"
    ln -s /usr/lib/x86_64-linux-gnu/libmpich.so.12.2.2 "$ROOT/usr/lib/x86_64-linux-gnu/libmpich.so.12"
    touch "$ROOT/usr/lib/x86_64-linux-gnu/libmpi.so.40"   # an unused other MPI does not matter
    run_hook
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    # libmpi.so.12 alone (Intel MPI, Cray MPICH), found through ld.so.conf.d.
    hook_root
    mkdir -p "$ROOT/opt/intel/mpi/lib" "$ROOT/etc/ld.so.conf.d"
    printf 'include /etc/ld.so.conf.d/*.conf\n' > "$ROOT/etc/ld.so.conf"
    printf '# Intel MPI\n/opt/intel/mpi/lib\n' > "$ROOT/etc/ld.so.conf.d/impi.conf"
    touch "$ROOT/opt/intel/mpi/lib/libmpi.so.12.0.0" "$ROOT/opt/intel/mpi/lib/libmpi.so.40"
    ln -s libmpi.so.12.0.0 "$ROOT/opt/intel/mpi/lib/libmpi.so.12"
    run_hook
    [ "$status" -eq 0 ]
}

@test "abi-check: other ABIs are refused, Open MPI 1.10's libmpi.so.12 included" {
    hook_root
    touch "$ROOT/usr/lib/x86_64-linux-gnu/libmpich.so.3.0.4"
    ln -s libmpich.so.3.0.4 "$ROOT/lib/x86_64-linux-gnu/libmpich.so.3"
    run_hook
    [ "$status" -eq 1 ]
    [ "$output" = "mpich module: the image's MPI does not have the ABI of the site's MPICH (libmpi.so.12/libmpich.so.12): found libmpich.so.3 in /usr/lib/x86_64-linux-gnu; rebuild the image against an MPI of the MPICH ABI or run it without --module=mpich" ]
    hook_root
    mkdir -p "$ROOT/usr/local/lib"
    touch "$ROOT/usr/local/lib/libmpi.so.12" "$ROOT/usr/local/lib/libopen-pal.so.13"
    run_hook
    [ "$status" -eq 1 ]
    [[ "$output" == *"found libmpi.so.12 of Open MPI in /usr/local/lib;"* ]]
    # An image with no MPI is not the module's business.
    hook_root
    run_hook
    [ "$status" -eq 0 ]
}

@test "abi-check: links in the image never lead out of the root" {
    hook_root
    # Links that would find the host's libmpich if followed on the host: they do not count.
    ln -s /usr/lib/x86_64-linux-gnu/libmpich.so.12.2.2 "$ROOT/usr/lib/x86_64-linux-gnu/libmpich.so.12"
    ln -s ../../../../../../../../../../usr/lib/x86_64-linux-gnu/libmpich.so.12.2.2 "$ROOT/usr/lib64/libmpich.so.12"
    ln -s "$(readlink -f /usr/lib/x86_64-linux-gnu/libmpich.so.12)" "$ROOT/usr/lib/libmpi.so.12"
    # A host ld.so.conf and a directory link out of the root are not read either.
    ln -s /etc/ld.so.conf "$ROOT/etc/ld.so.conf"
    ln -s / "$ROOT/usr/local"
    touch "$ROOT/usr/lib/x86_64-linux-gnu/libmpi.so.40"
    run_hook
    [ "$status" -eq 1 ]
    [[ "$output" == *"found libmpi.so.40 in /usr/lib/x86_64-linux-gnu;"* ]]
    [[ "$output" != *"libmpich.so.12 "* ]]
    # Link loops end.
    hook_root
    ln -s b "$ROOT/usr/lib/a"; ln -s a "$ROOT/usr/lib/b"; ln -s a "$ROOT/usr/lib/libmpich.so.12"
    ln -s ld.so.conf "$ROOT/etc/ld.so.conf"
    run_hook
    [ "$status" -eq 0 ]
    # A root that is not an absolute directory is refused.
    run /bin/sh "$HOOK_SOURCE" relative/root
    [ "$status" -eq 1 ]
    [[ "$output" == "mpich module: usage: "* ]]
}
