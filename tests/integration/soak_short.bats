#!/usr/bin/env bats
# The short soak (tests/soak/soak, run in full by `make soak`): 28 jobs of mixed images, volumes
# and per-node caches, 4 at a time, every 7th cancelled, while an image gateway pulls and expires.
# Nothing may be left on any node, and the gateway's database must agree with its store.

load helpers

@test "soak (short): 28 mixed jobs end correctly and leave nothing behind" {
    local start=$SECONDS
    run env SHIFTER_PREFIX="$SHIFTER_PREFIX" "$SHIFTER_SOURCE/tests/soak/soak" --jobs 28 --parallel 4 --deadline 170
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "${lines[-1]}" == "soak: 28 of 28 jobs in "*", 0 wrong; leaked: 0 mounts, 0 loop devices, 0 directories, 0 cache files, 0 processes; 0 nodes drained; gateway consistent"* ]]
    [ $((SECONDS - start)) -lt 180 ]
}
