#!/usr/bin/env bats
# The documentation's commands work as written: every ```sh block of the guides runs as the bed's
# user (```sh root blocks as root, from the source tree), and must exit 0.

load helpers

# blocks FILE KIND: prints the blocks of FILE whose fence is exactly ```KIND, separated by NUL.
blocks() {
    awk -v kind="$2" '
        $0 == "```" kind { inside = 1; next }
        inside && $0 == "```" { inside = 0; printf "%c", 0; next }
        inside { print }
    ' "$1"
}

run_blocks() { # FILE
    local file=$1 block count=0
    while IFS= read -r -d '' block; do
        count=$((count + 1))
        echo "--- root block $count of $file"
        (cd "$SHIFTER_SOURCE" && env PATH="$SHIFTER_PREFIX/bin:$PATH" SHIFTER_CA_BUNDLE="$CA_BUNDLE" bash -euo pipefail -c "$block") || return 1
    done < <(blocks "$file" "sh root")
    while IFS= read -r -d '' block; do
        count=$((count + 1))
        echo "--- user block $count of $file"
        (cd /tmp && runuser -u "$BED_USER" -- env PATH="$SHIFTER_PREFIX/bin:/usr/bin:/bin" USER="$BED_USER" \
            HOME="/home/$BED_USER" SLURM_CONF="$SLURM_CONF" bash -euo pipefail -c "$block") || return 1
    done < <(blocks "$file" sh)
    [ "$count" -gt 0 ]
}

@test "the user guide's commands run" {
    run run_blocks "$SHIFTER_SOURCE/docs/user-guide.md"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"Shifter test busybox"* ]]
    [[ "$output" == *"entry hello"* ]]
    rm -rf "/tmp/$BED_USER-data"
}

@test "the Pyxis page's commands run" {
    run run_blocks "$SHIFTER_SOURCE/docs/coming-from-pyxis.md"
    echo "$output"
    rm -rf "/tmp/$BED_USER-pyxis"
    [ "$status" -eq 0 ]
    [[ "$output" == *"key: value"* ]]
    [[ "$output" == *"scratch"* ]]
}

@test "the administrator guide's commands run" {
    run run_blocks "$SHIFTER_SOURCE/docs/admin-guide.md"
    echo "$output"
    rm -rf /tmp/shifter-stage
    [ "$status" -eq 0 ]
    [[ "$output" == *"shifter_spank.so"* ]]
}

@test "the README's and guides' example configuration parses without warnings" {
    run env PATH="$SHIFTER_PREFIX/bin:$PATH" shifterimg --config "$SHIFTER_SOURCE/etc/udiRoot.conf.example" -v images
    echo "$output"
    [[ "$output" != *warning* ]]
    [[ "$output" != *"unknown key"* ]]
}
