#!/usr/bin/env bats
# The gateway's signature policy against images signed as cosign signs them (tests/harness/
# sign-image.py, written from cosign's signature specification: Debian packages no cosign), on the
# bed's anonymous registry: accepted keys of both kinds (ECDSA P-256, Ed25519), and each refusal
# with its message: unsigned, another key, another digest, another repository, a corrupted
# signature, a payload said to be huge, a missing payload, a rejected scope, an archive import;
# the refusals counted in the metrics; the signer in the record and in `shifterimg images`; and
# the nodes' requireSignedImages and acceptedSigners, at submission and in the prolog.

load helpers
bats_require_minimum_version 1.5.0

SHIFTERIMG=${SHIFTERIMG:-$SHIFTER_PREFIX/bin/shifterimg}
SIGN=${SHIFTER_SOURCE:-.}/tests/harness/sign-image.py

sign() { # REPOSITORY KEY [FAULT...]: signs REPOSITORY:latest; prints the digest signed
    /usr/bin/python3 "$SIGN" sign --registry "$REGISTRY_ANON" --repository "$1" --tag latest --key "$WORK/keys/$2.key" \
        --ca "$CA_BUNDLE" "${@:3}"
}

push() { # REPOSITORY [TAG]: the test's own image (not in the bed's store) at REPOSITORY:TAG (latest)
    skopeo copy --quiet "oci:$WORK/oci:signed" "docker://$REGISTRY_ANON/$1:${2:-latest}"
}

fingerprint() { openssl pkey -pubin -in "$WORK/keys/$1.pub" -outform DER | sha256sum | cut -c1-64; }

simg() { # USER SUBCOMMAND...: shifterimg with the test gateway's configuration
    local user=$1; shift
    (cd "$WORK" && runuser -u "$user" -- env XDG_CONFIG_HOME="$WORK/cfg-$user" SHIFTER_CA_BUNDLE="$CA_BUNDLE" \
        "$SHIFTERIMG" --config "$WORK/udiRoot.conf" "$@")
}

setup_file() {
    WORK=$(mktemp -d /tmp/shifter-signatures.XXXXXX)
    export WORK
    mkdir -p "$WORK/images" "$WORK/keys" "$WORK/cfg-$BED_USER" "$WORK/out"
    chmod 755 "$WORK" "$WORK/images"
    chmod 777 "$WORK/out"
    chown "$BED_USER" "$WORK/cfg-$BED_USER"
    for key in build:ecdsa group:ed25519 other:ecdsa; do
        /usr/bin/python3 "$SIGN" keygen --type "${key#*:}" --out "$WORK/keys/${key%%:*}"
    done
    # An image of the test's own, so that no image of the bed's store shares its digest.
    skopeo copy --quiet "docker://$IMAGE_BUSYBOX" "oci:$WORK/oci:base"
    umoci unpack --rootless --image "$WORK/oci:base" "$WORK/bundle" >/dev/null
    echo "signed by the test's build key" > "$WORK/bundle/rootfs/signed-marker"
    umoci repack --image "$WORK/oci:signed" "$WORK/bundle" >/dev/null
    rm -rf "$WORK/bundle"
    for repository in good good-ed unsigned otherkey retagged identity corrupt huge missing rejected/x referrer \
        bundle bundle-ed bundle-retagged bundle-attestation bundle-otherkey keys; do
        push "sig/$repository"
    done
    # A multi-platform index of the image, signed as a whole.
    push sig/multi platform
    MULTI_INDEX=$(/usr/bin/python3 "$SIGN" index --registry "$REGISTRY_ANON" --repository sig/multi --tag latest --of platform --ca "$CA_BUNDLE")
    export MULTI_INDEX
    sign sig/multi build >/dev/null
    sign sig/referrer build --referrer >/dev/null
    sign sig/keys build >/dev/null
    # Cosign 3's form: a Sigstore bundle (a DSSE envelope of an in-toto Statement) as a referrer.
    sign sig/bundle build --bundle >/dev/null
    sign sig/bundle-ed group --bundle >/dev/null
    sign sig/bundle-retagged build --bundle --digest "sha256:$(printf other-image | sha256sum | cut -c1-64)" >/dev/null
    sign sig/bundle-attestation build --bundle --predicate-type https://spdx.dev/Document >/dev/null
    sign sig/bundle-otherkey other --bundle >/dev/null
    GOOD_DIGEST=$(sign sig/good build)
    export GOOD_DIGEST
    sign sig/good-ed group >/dev/null
    sign sig/otherkey other >/dev/null
    sign sig/retagged build --digest "sha256:$(printf other-image | sha256sum | cut -c1-64)" >/dev/null
    sign sig/identity build --identity "$REGISTRY_ANON/sig/good" >/dev/null
    sign sig/corrupt build --corrupt-signature >/dev/null
    sign sig/huge build --layer-size 10000000000 >/dev/null
    sign sig/missing build --missing-blob >/dev/null
    sign sig/rejected/x build >/dev/null
    PORT=$(free_port)
    export PORT
    # The bed's own store is the system's, so the runtime tests run what the gateway pulled.
    cat >"$WORK/imagegw.conf" <<CONF
{
    "listen": "127.0.0.1:$PORT",
    "database": "$WORK/state.sqlite",
    "systems": {"bed": {"imagePath": "$BED_DIR/images"}},
    "registries": {"anon": {"url": "https://$REGISTRY_ANON", "caBundle": "$CA_BUNDLE", "auth": "anonymous"}},
    "defaultRegistry": "$REGISTRY_ANON",
    "minPullIntervalSeconds": 0,
    "admins": ["root"],
    "importUsers": ["$BED_USER"],
    "signaturePolicy": {
        "default": "accept",
        "archives": "reject",
        "scopes": {
            "$REGISTRY_ANON/sig": {"signedBy": ["$WORK/keys/build.pub", "$WORK/keys/group.pub"]},
            "$REGISTRY_ANON/sig/rejected": "reject"
        }
    }
}
CONF
    cat >"$WORK/udiRoot.conf" <<CONF
udiMount=$WORK/udiMount
loopMount=$WORK/loopMount
imagePath=$BED_DIR/images
imageGateway=http://127.0.0.1:$PORT
system=bed
gatewayTimeout=30
CONF
    chmod 644 "$WORK/udiRoot.conf"
    start_gateway "$PORT"
}

teardown_file() {
    stop_gateway
    # What the test pulled into the bed's store: its tags, and the test's own image.
    local tag id
    for tag in "$BED_DIR"/images/tags/*%2Fsig%2F* "$BED_DIR"/images/tags/*%2Fopen%2Fsame%3A*; do
        [ -f "$tag" ] || continue
        id=$(head -c 71 "$tag")
        rm -f "$tag" "$BED_DIR/images/${id#sha256:}".*
    done
    [[ $WORK == /tmp/shifter-signatures.* ]] && rm -rf "$WORK"
}

# reload_gateway LINE: sends the gateway SIGHUP and waits for its log to say LINE once more than
# before (the log is the event; the line is written when the reload is done).
reload_gateway() {
    local before
    before=$(grep -c "$1" "$WORK/gateway.log" || true)
    kill -HUP "$(cat "$WORK/gateway.pid")"
    for _ in $(seq 100); do
        [ "$(grep -c "$1" "$WORK/gateway.log" || true)" -gt "$before" ] && return 0
        sleep 0.1
    done
    echo "the gateway did not log \"$1\" after SIGHUP" >&2
    return 1
}

# refused REPOSITORY MESSAGE: a pull of REPOSITORY:latest fails, saying MESSAGE after the rule.
refused() {
    run --separate-stderr simg "$BED_USER" pull "sig/$1:latest"
    echo "$output"; echo "$stderr"
    [ "$status" -ne 0 ]
    [[ "$stderr" == *"$REGISTRY_ANON/sig/$1@sha256:"*": refused by the site's signature policy (scope $3): "*"$2"* ]]
    # Nothing of it was fetched or converted.
    run simg "$BED_USER" lookup "sig/$1:latest"
    [ "$status" -ne 0 ]
}

@test "another name of an image, pulled unsigned where no signature is asked for, shows the signer once a signed pull finds one" {
    skopeo copy --quiet "oci:$WORK/oci:signed" "docker://$REGISTRY_ANON/open/same:latest"
    run simg "$BED_USER" pull open/same:latest
    [ "$status" -eq 0 ]
    run simg "$BED_USER" images
    grep -qE "^docker:$REGISTRY_ANON/open/same:latest  .*  unsigned$" <<<"$output"
    run simg "$BED_USER" pull sig/good:latest
    [ "$status" -eq 0 ]
    id=$(simg "$BED_USER" lookup open/same:latest)
    # The record is the content's: the nodes see its signer under either name, and so does the list.
    jq -e --arg fp "sha256:$(fingerprint build)" '.signedBy == $fp' "$BED_DIR/images/${id#sha256:}.meta.json"
    run simg "$BED_USER" images
    echo "$output"
    grep -qE "^docker:$REGISTRY_ANON/open/same:latest  $id  .*  signed-by=sha256:$(fingerprint build)\(" <<<"$output"
}

@test "an image signed by an accepted ECDSA key is pulled, and its signer recorded and shown" {
    run --separate-stderr simg "$BED_USER" pull sig/good:latest
    echo "$output"; echo "$stderr"
    [ "$status" -eq 0 ]
    id=$(simg "$BED_USER" lookup sig/good:latest)
    jq -e --arg fp "sha256:$(fingerprint build)" --arg who "$REGISTRY_ANON/sig/good" \
        '.signedBy == $fp and .signedIdentity == $who' "$BED_DIR/images/${id#sha256:}.meta.json"
    run simg "$BED_USER" images
    echo "$output"
    grep -qE "^docker:$REGISTRY_ANON/sig/good:latest  $id  .*  public  signed-by=sha256:$(fingerprint build)\($REGISTRY_ANON/sig/good\)$" <<<"$output"
    # The index digest the signer signed is the one the gateway resolved.
    [ "$(jq -r .manifestDigest "$BED_DIR/images/${id#sha256:}.meta.json")" = "$GOOD_DIGEST" ]
}

@test "an image signed by an accepted Ed25519 key is pulled" {
    run simg "$BED_USER" pull sig/good-ed:latest
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "a signature stored as an OCI 1.1 referrer (the referrers tag, where the registry has no referrers API) is found" {
    run simg "$BED_USER" pull sig/referrer:latest
    echo "$output"
    [ "$status" -eq 0 ]
    # This registry has no referrers API, so the tag was what the gateway found.
    code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA_BUNDLE" "https://$REGISTRY_ANON/v2/sig/referrer/referrers/$GOOD_DIGEST")
    [ "$code" != 200 ]
}

@test "cosign 3's Sigstore bundles, ECDSA and Ed25519, are verified; the identity is the repository they were found in" {
    for repository in bundle bundle-ed; do
        run simg "$BED_USER" pull "sig/$repository:latest"
        echo "$output"
        [ "$status" -eq 0 ]
    done
    run simg "$BED_USER" images
    grep -qE "^docker:$REGISTRY_ANON/sig/bundle:latest  .*  signed-by=sha256:[0-9a-f]{64}\(" <<<"$output"
}

@test "a Sigstore bundle for another digest, another key, or an attestation rather than a signature is refused" {
    refused bundle-retagged "the signature is for sha256:$(printf other-image | sha256sum | cut -c1-64), not $GOOD_DIGEST" "$REGISTRY_ANON/sig"
    refused bundle-otherkey "no signature verifies with the accepted keys" "$REGISTRY_ANON/sig"
    refused bundle-attestation "the bundle is an attestation of type https://spdx.dev/Document, not a signature (https://sigstore.dev/cosign/sign/v1)" "$REGISTRY_ANON/sig"
}

@test "another spelling of a registry (a port written with a zero, HTTPS's :443) meets the same scope" {
    run --separate-stderr simg "$BED_USER" pull "${REGISTRY_ANON%:*}:0${REGISTRY_ANON##*:}/sig/unsigned:latest"
    echo "$stderr"
    [ "$status" -ne 0 ]
    [[ "$stderr" == *"refused by the site's signature policy (scope $REGISTRY_ANON/sig): the registry holds no signature"* ]]
}

@test "a signed multi-platform index: its platform's image is pulled; the platform manifest alone, unsigned, is refused" {
    run simg "$BED_USER" pull sig/multi:latest
    echo "$output"
    [ "$status" -eq 0 ]
    id=$(simg "$BED_USER" lookup sig/multi:latest)
    # The image is the platform's manifest, listed in the index the signature names (the index's
    # digest, not the platform's: a pull of the platform's alone finds no signature, below).
    [ "$id" = "$GOOD_DIGEST" ]
    [ "$MULTI_INDEX" != "$GOOD_DIGEST" ]
    run --separate-stderr simg "$BED_USER" pull "sig/multi@$GOOD_DIGEST"
    echo "$stderr"
    [ "$status" -ne 0 ]
    [[ "$stderr" == *"sig/multi@$GOOD_DIGEST: refused by the site's signature policy (scope $REGISTRY_ANON/sig): the registry holds no signature for it"* ]]
}

@test "an unsigned image in a signed scope is refused, saying so, before any layer is fetched" {
    refused unsigned "the registry holds no signature for it" "$REGISTRY_ANON/sig"
}

@test "an image signed by another key is refused, naming the keys accepted" {
    refused otherkey "no signature verifies with the accepted keys $WORK/keys/build.pub (sha256:$(fingerprint build))" "$REGISTRY_ANON/sig"
}

@test "a signature for another digest (a re-tagged image) is refused" {
    refused retagged "the signature is for sha256:$(printf other-image | sha256sum | cut -c1-64), not $GOOD_DIGEST (a signature copied from another image?)" "$REGISTRY_ANON/sig"
}

@test "a signature for another repository is refused" {
    refused identity "the signature is for $REGISTRY_ANON/sig/good, not $REGISTRY_ANON/sig/identity" "$REGISTRY_ANON/sig"
}

@test "a corrupted signature is refused" {
    refused corrupt "no signature verifies with the accepted keys" "$REGISTRY_ANON/sig"
}

@test "a signature whose payload is said to be huge is refused without fetching it" {
    refused huge "is said to be 10000000000 bytes, more than the 65536 a payload may have" "$REGISTRY_ANON/sig"
}

@test "a signature whose payload is missing is refused" {
    refused missing "cannot be read: registry $REGISTRY_ANON: signature payload" "$REGISTRY_ANON/sig"
    refused missing "of sig/missing not found (BLOB_UNKNOWN" "$REGISTRY_ANON/sig"
}

@test "a scope the policy rejects is refused, signed or not" {
    refused rejected/x "the policy rejects every image of this scope" "$REGISTRY_ANON/sig/rejected"
}

@test "an archive import is refused by the policy's rule for archives" {
    skopeo copy --quiet "oci:$WORK/oci:signed" "docker-archive:$WORK/image.tar"
    chmod 644 "$WORK/image.tar"
    run --separate-stderr simg "$BED_USER" import "$WORK/image.tar" sig-archive
    echo "$output"; echo "$stderr"
    [ "$status" -ne 0 ]
    [[ "$stderr" == *"refused by the site's signature policy (archives): an imported file carries no registry signature"* ]]
}

@test "a key file that others can write, or that is not root's, is refused, and so is every pull that needs it" {
    chmod 664 "$WORK/keys/build.pub"
    run --separate-stderr simg "$BED_USER" pull sig/keys:latest
    chmod 644 "$WORK/keys/build.pub"
    echo "$stderr"
    [ "$status" -ne 0 ]
    [[ "$stderr" == *"signature key $WORK/keys/build.pub: refused: writable by others (mode 664); chmod go-w"* ]]
    chown "$BED_USER" "$WORK/keys/build.pub"
    run --separate-stderr simg "$BED_USER" pull sig/keys:latest
    chown root "$WORK/keys/build.pub"
    echo "$stderr"
    [ "$status" -ne 0 ]
    [[ "$stderr" == *"signature key $WORK/keys/build.pub: refused: owned by uid $(id -u "$BED_USER"), not root"* ]]
}

@test "the gateway counts the refusals by reason and logs each" {
    metrics=$(curl -sf "http://127.0.0.1:$PORT/metrics")
    # At least as many of each as the tests above caused (the missing payload was pulled twice).
    for expected in unsigned:1 wrong-key:2 digest-mismatch:1 identity-mismatch:1 malformed:3 rejected:2; do
        count=$(sed -n "s/^shifter_gateway_signature_refusals_total{reason=\"${expected%:*}\"} //p" <<<"$metrics")
        echo "${expected%:*}: $count"
        [ "$count" -ge "${expected#*:}" ]
    done
    grep -q "refused by the site's signature policy (scope $REGISTRY_ANON/sig): the registry holds no signature" "$WORK/gateway.log"
}

@test "a policy reloaded (SIGHUP) applies to the next pull; reverify expires the images it no longer accepts, and the others keep their signer" {
    cp "$WORK/imagegw.conf" "$WORK/imagegw.conf.first"
    # A file that does not parse is logged on reload, and the policy in force stays.
    echo "{" > "$WORK/imagegw.conf"
    reload_gateway "signature policy not reloaded"
    run simg "$BED_USER" pull sig/good-ed:latest
    [ "$status" -eq 0 ]
    # The group's key is no longer accepted.
    sed "s|\"signedBy\": \[\"$WORK/keys/build.pub\", \"$WORK/keys/group.pub\"\]|\"signedBy\": [\"$WORK/keys/build.pub\"]|" \
        "$WORK/imagegw.conf.first" > "$WORK/imagegw.conf"
    ! grep -q group.pub "$WORK/imagegw.conf" || false
    reload_gateway "signature policy reloaded"
    run simg "$BED_USER" reverify
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"administrators only"* ]]
    run simg root reverify
    echo "$output"
    [ "$status" -eq 0 ]
    grep -q "^expired docker:$REGISTRY_ANON/sig/good-ed:latest sha256:" <<<"$output"
    grep -qx "kept $REGISTRY_ANON/sig/good:latest: signed by sha256:$(fingerprint build)" <<<"$output"
    # A multi-platform image is checked by its index's signature, as it was pulled.
    grep -qx "kept $REGISTRY_ANON/sig/multi:latest: signed by sha256:$(fingerprint build)" <<<"$output"
    grep -q "image refused by the signature policy" "$WORK/gateway.log"
    # And a new pull of it is refused.
    refused good-ed "no signature verifies with the accepted key $WORK/keys/build.pub" "$REGISTRY_ANON/sig"
    mv "$WORK/imagegw.conf.first" "$WORK/imagegw.conf"
    reload_gateway "signature policy reloaded"
}

@test "requireSignedImages: an image pulled without a signature check is refused at submission and by the prolog; a signed one runs" {
    cp /etc/shifter/udiRoot.conf "$WORK/site.conf"
    # A job queued before the policy changed.
    held=$(submit "$BED_USER" -H -w n1 -o "$WORK/out/held" --image="$IMAGE_BUSYBOX" --wrap "srun shifter true")
    echo "requireSignedImages=1" >> /etc/shifter/udiRoot.conf
    run -1 as_user "$BED_USER" sbatch -o /dev/null --image="$IMAGE_BUSYBOX" --wrap true
    echo "$output"
    [[ "$output" == *"this system runs signed images only (requireSignedImages), and the image's record names no signer"* ]]
    # A local: directory has no signature at all.
    run -1 as_user "$BED_USER" sbatch -o /dev/null --image=local:/usr --wrap true
    echo "$output"
    [[ "$output" == *"a local: directory carries no signature"* ]]
    scontrol release "$held"
    wait_job "$held"
    cat "$WORK/out/held"
    grep -q "names no signer" "$WORK/out/held"
    job=$(submit "$BED_USER" -w n1 -o "$WORK/out/good" --image="$REGISTRY_ANON/sig/good:latest" --wrap "srun shifter cat /signed-marker")
    wait_job "$job"
    cat "$WORK/out/good"
    grep -qx "signed by the test's build key" "$WORK/out/good"
    # A list of accepted signers that does not hold the image's.
    echo "acceptedSigners=sha256:$(fingerprint other)" >> /etc/shifter/udiRoot.conf
    run -1 as_user "$BED_USER" sbatch -o /dev/null --image="$REGISTRY_ANON/sig/good:latest" --wrap true
    echo "$output"
    [[ "$output" == *"it was signed by key sha256:$(fingerprint build), which is not one of this system's acceptedSigners"* ]]
}

teardown() {
    if [ -f "$WORK/site.conf" ]; then
        cat "$WORK/site.conf" > /etc/shifter/udiRoot.conf
        rm -f "$WORK/site.conf"
    fi
}
