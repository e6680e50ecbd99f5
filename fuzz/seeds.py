#!/usr/bin/python3
"""Writes the seed inputs of the fuzz targets into DIR/TARGET/, generated here so that no binary
input is committed: a handful of valid and nearly valid examples of what each parser reads.

    fuzz/seeds.py DIR
"""
import gzip
import io
import json
import os
import sys
import tarfile

HEX = "0123456789abcdef" * 4


def write(directory, target, name, data):
    path = os.path.join(directory, target)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def tar(entries, compress=False):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = 0o4755 if name.endswith("suid") else 0o644
            if kind == tarfile.REGTYPE:
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
            else:
                info.linkname = payload
                archive.addfile(info)
    data = raw.getvalue()
    return gzip.compress(data) if compress else data


def main():
    out = sys.argv[1]
    for i, text in enumerate([
        "ubuntu", "docker:ubuntu:22.04", "127.0.0.1:5000/test/busybox:latest", "localhost/x/y:1",
        "registry.example.org:5000/a/b/c:tag@sha256:" + HEX, "id:sha256:" + HEX, HEX, "custom:tool:1.2",
        "local:/opt/root", "Docker.IO/Library/Ubuntu", "a//b", "x:y:z", "docker:",
    ]):
        write(out, "reference", "seed%02d" % i, text)
    for i, text in enumerate([
        "/a:/b", "/a:/b:ro", "/x:/scratch:perNodeCache=size=512m", "/data:/data:ro:rec:slave;/tmp:/var/tmp:private",
        "/x:/y:perNodeCache=size=1g,bs=4k,fs=xfs,method=loop", "/a/../b:/c", "/home:/home;/global",
        "-i\0busybox\0-V\0/a:/b\0--\0ls\0-l", "--image=docker:ubuntu\0--entrypoint\0-e\0A=b\0--env-file=/x\0-E",
        "NAME=value", "mpich,gpu", "none", "200G", "1.5k",
    ]):
        write(out, "volume", "seed%02d" % i, text)
    example = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "etc", "udiRoot.conf.example")
    with open(example, "rb") as f:
        write(out, "config", "example", f.read())
    write(out, "config", "small", "udiMount=/u\nloopMount=/l\nimagePath=/i\nsiteFs=/a:/b:ro;/c\\\n:/d\n"
          "module_mpich_siteEnvPrepend=LD_LIBRARY_PATH=/x\nperNodeCacheSizeLimit=2G\nimageExpandedSizeLimit=1g\n")
    write(out, "config", "metadata", json.dumps({
        "format": "squashfs", "digest": "sha256:" + HEX, "env": ["A=b"], "entrypoint": ["/bin/sh"],
        "userACL": [1000], "groupACL": [], "labels": {"a": "b"}}))
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + HEX, "size": 10}
    write(out, "manifest", "manifest", json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + HEX, "size": 3},
        "layers": [layer, layer]}))
    write(out, "manifest", "index", json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"digest": "sha256:" + HEX, "size": 1, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                      {"digest": "sha256:" + HEX, "size": 1, "platform": {"os": "linux", "architecture": "amd64"}}]}))
    write(out, "manifest", "config", json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05.123456789Z",
        "config": {"Env": ["PATH=/bin"], "Entrypoint": ["/x"], "Cmd": ["-h"], "WorkingDir": "/w", "User": "1:2",
                   "Labels": {"k": "v"}}}))
    write(out, "manifest", "challenge", 'Bearer realm="https://auth.example.org/token",service="registry",scope="repository:a/b:pull", Basic realm="x"')
    write(out, "manifest", "errors", json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown", "detail": {}}]}))
    write(out, "manifest", "platform", "linux/arm64/v8")
    # Tar entries: kind byte, path, NUL, [target, NUL]; 8 starts the next lower layer; 0xF0+ are tokens.
    write(out, "tarentry", "plain", b"\x01etc\x00\x00etc/passwd\x00\x02etc/link\x00passwd\x00\x03etc/hard\x00etc/passwd\x00")
    write(out, "tarentry", "whiteouts", b"\x00\xf3a\x00\x00\xf4\x00\x08\x01a\x00\x00a/x\x00\x00b\x00\x08\x03h\x00b\x00")
    write(out, "tarentry", "escapes", b"\x00\xf2/x\x00\x02l\x00/etc\x00\x00l/x\x00\x06dev/null\x00\x03k\x00\xf2/etc\x00")
    # Found by fuzzing, kept as regressions: a small file, then a refused entry (libsquashfs leaked
    # the pending fragment block of the abandoned image).
    write(out, "tarentry", "regression-fragment-leak", b"\x00\x08\x00\x00")
    write(out, "layer", "plain.tar", tar([("etc", tarfile.DIRTYPE, ""), ("etc/hosts", tarfile.REGTYPE, b"127.0.0.1 localhost\n"),
                                         ("bin/suid", tarfile.REGTYPE, b"x"), ("link", tarfile.SYMTYPE, "/etc/hosts"),
                                         ("hard", tarfile.LNKTYPE, "etc/hosts")]))
    write(out, "layer", "whiteouts.tar.gz", tar([("a/.wh..wh..opq", tarfile.REGTYPE, b""), (".wh.b", tarfile.REGTYPE, b""),
                                                 ("a/c", tarfile.REGTYPE, b"c" * 1000)], compress=True))
    write(out, "layer", "long.tar", tar([("d/" * 40 + "f", tarfile.REGTYPE, b"deep"), ("n" * 200, tarfile.FIFOTYPE, "")]))


if __name__ == "__main__":
    main()
