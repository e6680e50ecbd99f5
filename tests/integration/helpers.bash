# Common setup for the integration tests: the bed's description and helpers to act as a user.
BED_DIR=${BED_DIR:-/var/tmp/shifter-bed}
[ -f "$BED_DIR/env" ] || { echo "the test bed is not up (run tests/harness/bed up)" >&2; exit 1; }
set -a
# shellcheck disable=SC1091
. "$BED_DIR/env"
set +a
SHIFTER_PREFIX=${SHIFTER_PREFIX:-$BED_DIR/install}
SHIFTER_SOURCE=${SHIFTER_SOURCE:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}

# as_user USER COMMAND...: runs COMMAND as USER with the bed's Slurm configuration.
as_user() {
    local user=$1; shift
    runuser -u "$user" -- env SLURM_CONF="$SLURM_CONF" PATH="$SHIFTER_PREFIX/bin:/usr/bin:/bin" "$@"
}

# registry_token REPOSITORY: a pull token from the bed's token service.
registry_token() {
    curl -sf --cacert "$CA_BUNDLE" -u "$REGISTRY_USER:$REGISTRY_PASSWORD" \
        "$TOKEN_SERVICE?service=shifter-test-registry&scope=repository:$1:pull" | jq -r .token
}

MANIFEST_TYPES='application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json'

SHIFTER=${SHIFTER:-$SHIFTER_PREFIX/bin/shifter}

# shifter_as USER ARGS...: runs the installed setuid shifter as USER from /tmp.
shifter_as() {
    local user=$1; shift
    (cd /tmp && runuser -u "$user" -- "$SHIFTER" "$@")
}

# assert_no_leaks: nothing of the bed's roots is mounted here and no loop device is bound.
assert_no_leaks() {
    local mounts loops
    mounts=$(grep -E " $BED_DIR/(udiMount|loopMount)" /proc/self/mountinfo || true)
    loops=$(losetup -a | grep -F "$BED_DIR" || true)
    if [ -n "$mounts$loops" ]; then
        echo "left behind: $mounts $loops" >&2
        return 1
    fi
}
