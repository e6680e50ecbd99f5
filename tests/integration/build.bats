#!/usr/bin/env bats
# The installed build: what a site puts on its compute nodes.

load helpers

# Libraries a compute node may need for libshifter.so: glibc and the C/C++ runtime (shifter needs none).
allowed_libs='^(linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libutil\.so\.1|libstdc\+\+\.so\.6|libgcc_s\.so\.1|/lib64/ld-linux-x86-64\.so\.2)$'

needed_libs() { ldd "$1" | awk '{print $1}'; }

@test "libshifter.so links glibc and the C/C++ runtime only" {
    run needed_libs "$SHIFTER_PREFIX/lib/shifter/libshifter.so"
    [ "$status" -eq 0 ]
    echo "$output"
    ! grep -vE "$allowed_libs" <<<"$output" || false
}

@test "shifter is a static position-independent executable: no loader, no shared library, its addresses still random" {
    file=$SHIFTER_PREFIX/bin/shifter
    run readelf -lW "$file"
    echo "$output"
    [[ "$output" == *"Elf file type is DYN (Position-Independent Executable file)"* ]]
    [[ "$output" == *"GNU_RELRO"* ]]
    [[ "$output" != *"INTERP"* ]]
    run readelf -d "$file"
    echo "$output"
    [[ "$output" == *"BIND_NOW"* ]]
    [[ "$output" == *"PIE"* ]]
    [ "$(grep -cE '\((NEEDED|RPATH|RUNPATH)\)' <<<"$output")" -eq 0 ]
    run ldd "$file"
    [[ "$output" == *"statically linked"* ]]
}

@test "shifter's start-up order is current and in effect: the build has most of its functions, placed in its order" {
    # Of the functions Sources/shifter-command/startup.order lists, the ones the binary has, and
    # how many of the steps from one to the next go up in address. A list gone stale (the names
    # changed) fails the first count: run bench/runtime/startup-order.sh again. A link that left
    # the list out places them as it likes, and about half the steps go up.
    nm "$SHIFTER_PREFIX/bin/shifter" | awk 'NF == 3 { print $3, $1 }' >"$BATS_TEST_TMPDIR/symbols"
    read -r present missing ascending < <(awk '
        NR == FNR { address[$1] = $2; next }
        $1 in address { if (n++ && address[$1] > last) up++; last = address[$1]; next }
        { missing++ }
        END { print n + 0, missing + 0, up + 0 }' "$BATS_TEST_TMPDIR/symbols" "$SHIFTER_SOURCE/Sources/shifter-command/startup.order")
    echo "$present present, $missing missing, $ascending of $((present - 1)) steps ascending"
    [ "$present" -ge 500 ]
    [ $((present * 10)) -ge $(((present + missing) * 9)) ]
    [ $((ascending * 4)) -ge $(((present - 1) * 3)) ]
}

@test "libshifter.so carries no RPATH or RUNPATH: it searches no directory of its own" {
    run readelf -d "$SHIFTER_PREFIX/lib/shifter/libshifter.so"
    [ "$status" -eq 0 ]
    [[ "$output" == *"(NEEDED)"* ]]
    [ "$(grep -cE '\((RPATH|RUNPATH)\)' <<<"$output")" -eq 0 ]
}

@test "shifter is installed setuid root" {
    [ "$(stat -c '%U %a' "$SHIFTER_PREFIX/bin/shifter")" = "root 4755" ]
}

@test "the SPANK plugin exports only slurm_spank_* and plugin_* symbols" {
    run sh -c "nm -D --defined-only '$SHIFTER_PREFIX/lib/shifter/shifter_spank.so' | awk '{print \$3}'"
    [ "$status" -eq 0 ]
    echo "$output"
    grep -q '^slurm_spank_init$' <<<"$output"
    ! grep -vE '^(slurm_spank_[a-z_]+|plugin_(name|type|version)|spank_plugin_version)$' <<<"$output" || false
}

@test "the SPANK plugin is built with RELRO and BIND_NOW" {
    run readelf -d "$SHIFTER_PREFIX/lib/shifter/shifter_spank.so"
    [[ "$output" == *"BIND_NOW"* ]]
    run readelf -l "$SHIFTER_PREFIX/lib/shifter/shifter_spank.so"
    [[ "$output" == *"GNU_RELRO"* ]]
}

@test "libshifter.so stays loaded across dlclose (nodelete)" {
    run readelf -d "$SHIFTER_PREFIX/lib/shifter/libshifter.so"
    [[ "$output" == *"NODELETE"* ]]
}

@test "the executables report their version" {
    for exe in shifter shifterimg shifter-imagegw; do
        run "$SHIFTER_PREFIX/bin/$exe" --version
        [ "$status" -eq 0 ]
        [[ "$output" =~ [0-9]+\.[0-9]+\.[0-9]+ ]]
    done
}

@test "srun lists the plugin's --image, --volume and --module options" {
    run as_user "$BED_USER" srun --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"--image=image"* ]]
    [[ "$output" == *"--volume=volumes"* ]]
    [[ "$output" == *"--module=modules"* ]]
}

@test "sbatch lists the plugin's options too" {
    run as_user "$BED_USER" sbatch --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"--image=image"* ]]
}
