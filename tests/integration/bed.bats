#!/usr/bin/env bats
# The test bed itself: registries over TLS with authentication, and the four-node Slurm cluster.

load helpers

@test "anonymous registry serves the pushed busybox image over TLS" {
    run curl -sf --cacert "$CA_BUNDLE" -H "Accept: $MANIFEST_TYPES" \
        "https://$REGISTRY_ANON/v2/test/busybox/manifests/latest"
    [ "$status" -eq 0 ]
    [ "$(jq -r '.layers | length' <<<"$output")" -ge 1 ]
}

@test "registry certificate is refused without the bed's CA" {
    run curl -s -o /dev/null "https://$REGISTRY_ANON/v2/"
    [ "$status" -eq 60 ]   # curl: peer certificate cannot be authenticated
}

@test "token registry challenges with a Docker Hub style bearer realm" {
    run curl -s -D - -o /dev/null --cacert "$CA_BUNDLE" "https://$REGISTRY_TOKEN/v2/test/busybox/manifests/latest"
    [[ "$output" == *" 401"* ]]
    [[ "$output" == *'Bearer realm="'"$TOKEN_SERVICE"'",service="shifter-test-registry",scope="repository:test/busybox:pull"'* ]]
}

@test "token service refuses wrong credentials" {
    run curl -s -o /dev/null -w '%{http_code}' --cacert "$CA_BUNDLE" -u "$REGISTRY_USER:wrong" \
        "$TOKEN_SERVICE?service=shifter-test-registry&scope=repository:test/busybox:pull"
    [ "$output" = 401 ]
}

@test "token registry serves the image with a bearer token, same digest as the anonymous one" {
    token=$(registry_token test/layered)
    [ -n "$token" ]
    authed=$(curl -sf -D - -o /dev/null --cacert "$CA_BUNDLE" -H "Authorization: Bearer $token" \
        -H "Accept: $MANIFEST_TYPES" "https://$REGISTRY_TOKEN/v2/test/layered/manifests/latest" \
        | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
    anon=$(curl -sf -D - -o /dev/null --cacert "$CA_BUNDLE" -H "Accept: $MANIFEST_TYPES" \
        "https://$REGISTRY_ANON/v2/test/layered/manifests/latest" \
        | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
    [[ "$authed" == sha256:* ]]
    [ "$authed" = "$anon" ]
}

@test "a token for one repository does not open another" {
    token=$(registry_token test/busybox)
    run curl -s -o /dev/null -w '%{http_code}' --cacert "$CA_BUNDLE" -H "Authorization: Bearer $token" \
        -H "Accept: $MANIFEST_TYPES" "https://$REGISTRY_TOKEN/v2/test/layered/manifests/latest"
    [ "$output" = 401 ]
}

@test "basic-auth registry needs the right password" {
    url="https://$REGISTRY_BASIC/v2/test/busybox/manifests/latest"
    [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA_BUNDLE" -H "Accept: $MANIFEST_TYPES" "$url")" = 401 ]
    [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA_BUNDLE" -u "$REGISTRY_USER:wrong" -H "Accept: $MANIFEST_TYPES" "$url")" = 401 ]
    [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA_BUNDLE" -u "$REGISTRY_USER:$REGISTRY_PASSWORD" -H "Accept: $MANIFEST_TYPES" "$url")" = 200 ]
}

@test "multi-platform image is an index with amd64 and arm64 manifests" {
    run curl -sf --cacert "$CA_BUNDLE" -H "Accept: $MANIFEST_TYPES" \
        "https://$REGISTRY_ANON/v2/test/multiarch/manifests/latest"
    [ "$status" -eq 0 ]
    [ "$(jq -r .mediaType <<<"$output")" = application/vnd.oci.image.index.v1+json ]
    [ "$(jq -r '[.manifests[].platform.architecture] | sort | join(",")' <<<"$output")" = amd64,arm64 ]
}

@test "layered image carries whiteouts, an opaque directory and hard links in its layers" {
    manifest=$(curl -sf --cacert "$CA_BUNDLE" -H "Accept: $MANIFEST_TYPES" \
        "https://$REGISTRY_ANON/v2/test/layered/manifests/latest")
    [ "$(jq -r '.layers | length' <<<"$manifest")" -eq 3 ]
    top=$(jq -r '.layers[2].digest' <<<"$manifest")
    listing=$(curl -sfL --cacert "$CA_BUNDLE" "https://$REGISTRY_ANON/v2/test/layered/blobs/$top" | tar -tvzf -)
    [[ "$listing" == *"data/.wh.gone"* ]]
    [[ "$listing" == *"data/opaque/.wh..wh..opq"* ]]
    [[ "$listing" == *"data/hl2 link to data/hl/orig"* ]]
    config=$(jq -r .config.digest <<<"$manifest")
    cfg=$(curl -sfL --cacert "$CA_BUNDLE" "https://$REGISTRY_ANON/v2/test/layered/blobs/$config")
    [ "$(jq -r '.config.WorkingDir' <<<"$cfg")" = /data ]
    [ "$(jq -c '.config.Entrypoint' <<<"$cfg")" = '["/bin/echo","entry"]' ]
}

@test "munge credentials round-trip" {
    run sh -c 'munge -n | unmunge'
    [ "$status" -eq 0 ]
    [[ "$output" == *"STATUS:"*"Success"* ]]
}

@test "srun -N4 as a non-root user reaches four nodes in four mount namespaces" {
    run as_user "$BED_USER" srun -N4 --ntasks-per-node=1 sh -c 'echo "$SLURMD_NODENAME $(readlink /proc/self/ns/mnt) $(id -un)"'
    [ "$status" -eq 0 ]
    [ "$(wc -l <<<"$output")" -eq 4 ]
    [ "$(awk '{print $1}' <<<"$output" | sort -u | tr '\n' ' ')" = "n1 n2 n3 n4 " ]
    [ "$(awk '{print $2}' <<<"$output" | sort -u | wc -l)" -eq 4 ]
    [ "$(awk '{print $3}' <<<"$output" | sort -u)" = "$BED_USER" ]
    # None of them is the namespace the tests run in.
    ! grep -q "$(readlink /proc/self/ns/mnt)" <<<"$output" || false
}

@test "BED_NODES sets the node count; a count the bed cannot make is refused before anything starts" {
    for bad in 0 65 four -1; do
        run env BED_NODES="$bad" "$SHIFTER_SOURCE/tests/harness/bed" status
        [ "$status" -eq 1 ]
        [ "$output" = "bed: error: BED_NODES=$bad: expected a node count from 1 to 64" ]
    done
    # The running bed says how many nodes it has, and Slurm agrees.
    [ "$BED_NODES" -ge 1 ]
    [ "$(sinfo -h -N -o %N | sort -u | wc -l)" -eq "$BED_NODES" ]
    [ "$(wc -w <<<"$BED_NODE_LIST")" -eq "$BED_NODES" ]
}
