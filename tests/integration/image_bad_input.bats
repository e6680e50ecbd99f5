#!/usr/bin/env bats
# shifterimg pull of broken or hostile images: each fails with one line on stderr that names the
# image and the reason, exits 1, and leaves the image store as it was. The images are served by a
# small registry started here (over TLS with the bed's certificate), which can also misbehave in
# ways a real registry will not: wrong blob content, oversized manifests, 503s, cross-host redirects.

load helpers
bats_require_minimum_version 1.5.0

SHIFTERIMG=${SHIFTERIMG:-$SHIFTER_PREFIX/bin/shifterimg}
FAKE_PORT=${FAKE_REGISTRY_PORT:-5010}

setup_file() {
    local_import_work
    export FAKE=127.0.0.1:$FAKE_PORT
    cat > "$WORK/registry.py" <<'PY'
import base64, gzip, hashlib, http.server, io, json, ssl, sys, tarfile, threading

port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
USER, PASSWORD = "fakeuser", "fakepass"

def tar_of(entries, compress=True):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.REGTYPE:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                info.linkname = payload
                tar.addfile(info)
    data = raw.getvalue()
    return gzip.compress(data) if compress else data

def truncated_half(data):
    return data[: len(data) // 2]

def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()

good = tar_of([("etc", tarfile.DIRTYPE, ""), ("etc/hello", tarfile.REGTYPE, b"hello\n" * 40000)])
noise = bytes((i * 7919 >> 3) & 0xFF for i in range(600000))
layers = {
    "good": good,
    "notatar": b"this is plainly not a tar archive\n" * 100,
    "truncated": truncated_half(gzip.compress(tar_of([("big", tarfile.REGTYPE, noise)], compress=False))),
    "dotdot": tar_of([("ok", tarfile.REGTYPE, b"ok"), ("../escaped", tarfile.REGTYPE, b"evil")]),
    "absolute": tar_of([("/etc/evil", tarfile.REGTYPE, b"evil")]),
    "symlink": tar_of([("link", tarfile.SYMTYPE, "/etc"), ("link/passwd", tarfile.REGTYPE, b"root::0:0::/:/bin/sh\n")]),
    "hardlink": tar_of([("present", tarfile.REGTYPE, b"x"), ("link", tarfile.LNKTYPE, "missing")]),
}
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": ["A=b"]}, "rootfs": {"type": "layers", "diff_ids": []}}).encode()
blobs = {digest(config): config}
manifests = {}

def manifest(layer_blobs, extra=None):
    body = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(b), "size": len(b)} for b in layer_blobs]}
    if extra:
        body.update(extra)
    return json.dumps(body).encode()

for case, data in layers.items():
    blobs[digest(data)] = data
    manifests[case] = manifest([data])
# Distinct annotations give each case its own manifest digest, so none is already in the store.
manifests["mismatch"] = manifest([good], {"annotations": {"case": "mismatch"}})
manifests["nolayers"] = manifest([])
manifests["bigmanifest"] = manifest([good], {"annotations": {"padding": "x" * (4 * 1024 * 1024 + 100)}})
manifests["flaky"] = manifest([good], {"annotations": {"case": "flaky"}})
manifests["redirect"] = manifest([good], {"annotations": {"case": "redirect"}})
flaky_failures = {"left": 2}
lock = threading.Lock()

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        sys.stderr.write("%s %s auth=%s\n" % (self.command, self.path, "Authorization" in self.headers))

    def send(self, status, body=b"", headers=None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        parts = self.path.split("/")
        if self.path in ("/v2/", "/v2"):
            return self.send(200, b"{}", {"Content-Type": "application/json"})
        if self.path.startswith("/storage/"):
            # Blob storage on another origin: it must never see the registry's credentials.
            if "Authorization" in self.headers:
                return self.send(400, b"credentials leaked to blob storage")
            return self.send(200, blobs[self.path.split("/")[-1]])
        if len(parts) < 6 or parts[1] != "v2" or parts[2] != "bad":
            return self.send(404, json.dumps({"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known to registry"}]}).encode())
        case, kind, ref = parts[3], parts[4], parts[5]
        if case == "redirect":
            expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                                 {"WWW-Authenticate": 'Basic realm="fake"'})
        if kind == "manifests":
            if case not in manifests or ref != "latest":
                return self.send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
            return self.send(200, manifests[case], {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        if kind == "blobs":
            if case == "mismatch" and ref == digest(good):
                return self.send(200, good[:-10] + b"0123456789")
            if case == "flaky" and ref == digest(good):
                with lock:
                    if flaky_failures["left"] > 0:
                        flaky_failures["left"] -= 1
                        return self.send(503, b"try again", {"Retry-After": "0"})
            if case == "redirect" and ref == digest(good):
                return self.send(307, b"", {"Location": f"https://localhost:{port}/storage/{ref}"})
            if ref in blobs:
                return self.send(200, blobs[ref])
            return self.send(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}')
        return self.send(404)

    do_HEAD = do_GET

server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
PY
    start_test_registry "$WORK/registry.py" "$FAKE_PORT" "$BED_DIR/ca/server.crt" "$BED_DIR/ca/server.key"
}

teardown_file() {
    [ -f "$WORK/registry.pid" ] && kill "$(cat "$WORK/registry.pid")" 2>/dev/null || true
}

simg() { "$SHIFTERIMG" --config "$WORK/udiRoot.conf" "$@"; }

store_state() { (cd "$WORK/images" && find . -mindepth 1 -printf '%p %s %T@\n' | sort); }

# expect_failure REF PATTERN [STATUS]: the pull fails (with STATUS, 1 unless given) with one stderr line naming REF and matching PATTERN,
# and the store is unchanged.
expect_failure() {
    local ref=$1 pattern=$2 want=${3:-1} before
    before=$(store_state)
    run --separate-stderr simg pull "$ref"
    echo "status=$status"
    echo "stderr: $stderr"
    [ "$status" -eq "$want" ]
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == "shifterimg: pull $ref: "* ]]
    [[ "$stderr" =~ $pattern ]]
    [ "$(store_state)" = "$before" ]
}

@test "the test registry serves a good image that pulls" {
    run simg pull "$FAKE/bad/good:latest"
    echo "$output"
    [ "$status" -eq 0 ]
    [ -n "$(ls "$WORK/images"/*.squashfs)" ]
}

@test "an unknown tag" {
    # Exit status 2: no such image, as shifterimg lookup says it too.
    expect_failure "$FAKE/bad/good:nope" 'manifest "nope" of bad/good not found \(MANIFEST_UNKNOWN' 2
}

@test "an unknown repository on the bed's registry" {
    expect_failure "$REGISTRY_ANON/test/no-such-image:latest" 'not found \((NAME|MANIFEST)_UNKNOWN' 2
}

@test "wrong credentials give the registry's 401" {
    printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REGISTRY_BASIC" "$(printf '%s:wrong' "$REGISTRY_USER" | base64)" \
        > "$XDG_CONFIG_HOME/auth.json.tmp"
    mkdir -p "$XDG_CONFIG_HOME/shifter"
    install -m 600 "$XDG_CONFIG_HOME/auth.json.tmp" "$XDG_CONFIG_HOME/shifter/auth.json"
    expect_failure "$REGISTRY_BASIC/test/busybox:latest" "credentials of user \"$REGISTRY_USER\" were refused.*401"
    run simg login --username "$REGISTRY_USER" --password-stdin "$REGISTRY_TOKEN" <<<"wrong"
    [ "$status" -eq 1 ]
    [[ "$output" == *"were refused"* ]]
    rm -f "$XDG_CONFIG_HOME/shifter/auth.json"
}

@test "an unreachable registry" {
    expect_failure "127.0.0.1:1/test/busybox:latest" 'cannot fetch manifest .*(onnect|refused).*tried 4 times'
}

@test "a blob whose content does not match its digest" {
    expect_failure "$FAKE/bad/mismatch:latest" 'blob sha256:[0-9a-f]{64} has content with digest sha256:'
}

@test "a truncated layer" {
    expect_failure "$FAKE/bad/truncated:latest" 'layer sha256:[0-9a-f]{64}: .*([Tt]runcated|[Dd]amaged|unexpected end)'
}

@test "a layer that is not a tar" {
    expect_failure "$FAKE/bad/notatar:latest" 'layer sha256:[0-9a-f]{64}: not a readable tar'
}

@test "a tar entry with ../ in its path" {
    expect_failure "$FAKE/bad/dotdot:latest" 'entry "../escaped": path contains ".."'
}

@test "a tar entry with an absolute path" {
    expect_failure "$FAKE/bad/absolute:latest" 'entry "/etc/evil": path is absolute'
}

@test "a symlink followed by an entry written through it" {
    expect_failure "$FAKE/bad/symlink:latest" 'entry "link/passwd" lies beneath "link", which is a symbolic link'
}

@test "a hard link to a file that does not exist" {
    expect_failure "$FAKE/bad/hardlink:latest" 'hard link "link" .* points to "missing", which no layer'
}

@test "a manifest over 4 MiB" {
    expect_failure "$FAKE/bad/bigmanifest:latest" 'larger than the limit of 4194304 bytes'
}

@test "a manifest that lists no layers" {
    expect_failure "$FAKE/bad/nolayers:latest" 'lists no layers'
}

@test "a 503 from the registry is retried" {
    run simg pull "$FAKE/bad/flaky:latest"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(grep -c 'GET /v2/bad/flaky/blobs/' "$WORK/registry.log")" -ge 3 ]
}

@test "a redirect to blob storage on another host drops the Authorization header" {
    run simg login --username fakeuser --password-stdin "$FAKE" <<<"fakepass"
    [ "$status" -eq 0 ]
    simg rm "$FAKE/bad/good:latest" >/dev/null 2>&1 || true
    run simg pull "$FAKE/bad/redirect:latest"
    echo "$output"
    [ "$status" -eq 0 ]
    grep -q '^GET /storage/sha256:[0-9a-f]* auth=False$' "$WORK/registry.log"
    ! grep -q '^GET /storage/.* auth=True$' "$WORK/registry.log" || false
}

@test "no staging directory is left in the store" {
    [ -z "$(find "$WORK/images" -maxdepth 1 -name '.import-*')" ]
}
