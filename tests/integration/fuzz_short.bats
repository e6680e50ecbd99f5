#!/usr/bin/env bats
# The libFuzzer targets (fuzz/targets) for a short run each; `make fuzz` runs them for longer.
# Each target feeds generated input to one parser of the product: image references, volumes and
# the setuid command's options, udiRoot.conf, registry manifests, tar entries, whole layers.

load helpers

@test "fuzz (short): 3000 runs of each target find no crash, leak or hang" {
    run env FUZZ_BUILD="${FUZZ_BUILD:-$SHIFTER_SOURCE/fuzz/.build-fuzz}" "$SHIFTER_SOURCE/fuzz/run" --runs 3000
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(grep -c '^fuzz: [a-z]*: 3000 runs in ' <<<"$output")" -eq 6 ]
}
