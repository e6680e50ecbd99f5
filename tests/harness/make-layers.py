#!/usr/bin/python3
"""Writes the hand-made layer tars of the bed's `layered` image, and the multi-platform index.

Layers are written with tarfile so each OCI rule is exercised exactly: whiteouts, an opaque
directory, a directory replaced by a file, hard links within and across layers, symlinks,
owners, modes and xattrs.

  make-layers.py layers OUTDIR          -> OUTDIR/layer2.tar, OUTDIR/layer3.tar
  make-layers.py index LAYOUT SRC DEST  -> tag DEST in LAYOUT: an index of SRC (amd64) + an arm64 twin
"""
import hashlib
import io
import json
import os
import sys
import tarfile
import time

MTIME = 1700000000


def add(tar, name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, link="", xattrs=None):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = MTIME
    info.linkname = link
    if xattrs:
        info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def layers(outdir):
    with tarfile.open(os.path.join(outdir, "layer2.tar"), "w", format=tarfile.PAX_FORMAT) as tar:
        for d in ["data", "data/keep", "data/gone", "data/gone/sub", "data/opaque", "data/dir2file", "data/hl"]:
            add(tar, d, tarfile.DIRTYPE, mode=0o755)
        add(tar, "data/keep/a", data=b"kept file\n", xattrs={"user.shifter": "one"})
        add(tar, "data/keep/removed", data=b"removed by a file whiteout\n")
        add(tar, "data/gone/b", data=b"in a deleted directory\n")
        add(tar, "data/gone/sub/c", data=b"deeper in a deleted directory\n")
        add(tar, "data/opaque/old1", data=b"hidden by the opaque marker\n")
        add(tar, "data/opaque/old2", data=b"hidden too\n")
        add(tar, "data/dir2file/z", data=b"in a directory that becomes a file\n")
        add(tar, "data/hl/orig", data=b"hard-linked content\n", mode=0o600, uid=1234, gid=5678)
        add(tar, "data/hl/link1", tarfile.LNKTYPE, link="data/hl/orig")
        # A link whose tar entry says 0644, as some image builders write: Linux shows it as 0777.
        add(tar, "data/sym", tarfile.SYMTYPE, link="keep/a", mode=0o644)
        add(tar, "data/abs-sym", tarfile.SYMTYPE, link="/etc/os-release", mode=0o777)
        add(tar, "data/owned", data=b"owned by 1234:5678\n", mode=0o640, uid=1234, gid=5678)
        add(tar, "data/script.sh", data=b"#!/bin/sh\necho script ran\n", mode=0o755)
        add(tar, "data/sticky", tarfile.DIRTYPE, mode=0o1777)
    with tarfile.open(os.path.join(outdir, "layer3.tar"), "w", format=tarfile.PAX_FORMAT) as tar:
        add(tar, "data", tarfile.DIRTYPE, mode=0o755)
        add(tar, "data/.wh.gone")
        add(tar, "data/keep", tarfile.DIRTYPE, mode=0o755)
        add(tar, "data/keep/.wh.removed")
        add(tar, "data/opaque", tarfile.DIRTYPE, mode=0o750)
        add(tar, "data/opaque/.wh..wh..opq")
        add(tar, "data/opaque/new", data=b"the only entry after the opaque marker\n")
        add(tar, "data/.wh.dir2file")
        add(tar, "data/dir2file", data=b"now a file\n")
        add(tar, "data/hl2", tarfile.LNKTYPE, link="data/hl/orig")
        add(tar, "data/hl/link3", tarfile.LNKTYPE, link="data/hl/orig")
        add(tar, "data/top", data=b"from the top layer\n", xattrs={"user.layer": "three"})


def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest)
    with open(path, "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def read_blob(layout, digest):
    with open(os.path.join(layout, "blobs", "sha256", digest.split(":", 1)[1]), "rb") as f:
        return f.read()


def index(layout, src, dest):
    with open(os.path.join(layout, "index.json")) as f:
        top = json.load(f)
    source = next(m for m in top["manifests"]
                  if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == src)
    manifest = json.loads(read_blob(layout, source["digest"]))
    config = json.loads(read_blob(layout, manifest["config"]["digest"]))
    config["architecture"] = "arm64"
    config["variant"] = "v8"
    config.setdefault("config", {}).setdefault("Labels", {})["org.example.arch"] = "arm64"
    cdigest, csize = blob(layout, json.dumps(config).encode())
    arm = dict(manifest)
    arm["config"] = dict(manifest["config"], digest=cdigest, size=csize)
    adigest, asize = blob(layout, json.dumps(arm).encode())
    idx = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": adigest, "size": asize,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": source["digest"],
             "size": source["size"], "platform": {"architecture": "amd64", "os": "linux"}},
        ],
    }
    idigest, isize = blob(layout, json.dumps(idx).encode())
    top["manifests"] = [m for m in top["manifests"]
                        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != dest]
    top["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": idigest,
                             "size": isize, "annotations": {"org.opencontainers.image.ref.name": dest}})
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(top, f)


if __name__ == "__main__":
    if sys.argv[1:2] == ["layers"] and len(sys.argv) == 3:
        layers(sys.argv[2])
    elif sys.argv[1:2] == ["index"] and len(sys.argv) == 5:
        index(*sys.argv[2:])
    else:
        sys.exit(__doc__)
