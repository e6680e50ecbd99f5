#!/usr/bin/env bats
# make demo's script on the running bed (KEEP=1 leaves the bed up for the tests after it).

load helpers

@test "the demo pulls the seed's image and runs 8 MPI ranks on 4 nodes" {
    run env KEEP=1 "$SHIFTER_SOURCE/demo/run"
    echo "$output" | tail -30
    [ "$status" -eq 0 ]
    [[ "$output" == *"ranks that said hello:       8, from nodes n1 n2 n3 n4"* ]]
    [[ "$output" == *"pulled docker:127.0.0.1:5000/scanon/hello-vm:latest sha256:"* ]]
    [ "$(grep -c '^rank [0-7] of 8 on .* mpi /opt/udiImage/modules/mpich/lib/libmpich.so.12' <<<"$output")" -eq 8 ]
    # sbatch resolved the tag through the gateway.
    [[ "$output" =~ gateway\ lookups\ by\ sbatch:\ +[1-9] ]]
    # The demo put the site configuration back as it was.
    grep -qx 'imageGateway=local' "$SITE_CONFIG"
}
