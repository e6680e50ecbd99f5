#!/usr/bin/python3
"""Fills an image store with squashfs images made the peers' way (umoci unpack + mksquashfs),
independently of Shifter's own importer, so the runtime's tests do not depend on it.

  make-store.py LAYOUT STORE REGISTRY TAG[=UID]...

For each TAG of the OCI layout LAYOUT: STORE/<hex>.squashfs, STORE/<hex>.meta.json, and the tag
index entry for docker:REGISTRY/test/TAG:latest. TAG=UID makes the image private to that uid.
"""
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile


def tag_file_name(canonical: str) -> str:
    return (canonical.replace("%", "%25").replace("/", "%2F").replace(":", "%3A").replace("@", "%40"))


def blob(layout: str, digest: str) -> bytes:
    with open(os.path.join(layout, "blobs", "sha256", digest.split(":", 1)[1]), "rb") as f:
        return f.read()


def main() -> None:
    layout, store, registry, *tags = sys.argv[1:]
    os.makedirs(os.path.join(store, "tags"), exist_ok=True)
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    for spec in tags:
        tag, _, owner = spec.partition("=")
        entry = next(m for m in index["manifests"]
                     if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
        digest = entry["digest"]
        hexdigits = digest.split(":", 1)[1]
        manifest = json.loads(blob(layout, digest))
        config = json.loads(blob(layout, manifest["config"]["digest"])).get("config", {})
        image = os.path.join(store, hexdigits + ".squashfs")
        if not os.path.exists(image):
            work = tempfile.mkdtemp(dir=store)
            try:
                subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", f"{work}/bundle"],
                               check=True, capture_output=True)
                subprocess.run(["mksquashfs", f"{work}/bundle/rootfs", f"{work}/image.squashfs", "-noappend",
                                "-quiet", "-no-progress", "-comp", "zstd"], check=True, capture_output=True)
                os.chmod(f"{work}/image.squashfs", 0o644)
                os.rename(f"{work}/image.squashfs", image)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        canonical = f"docker:{registry}/test/{tag}:latest"
        meta = {
            "format": "squashfs", "digest": digest, "manifestDigest": digest,
            "layers": [layer["digest"] for layer in manifest["layers"]],
            "env": config.get("Env") or [], "entrypoint": config.get("Entrypoint"), "cmd": config.get("Cmd"),
            "workdir": config.get("WorkingDir") or None, "user": config.get("User") or None,
            "labels": config.get("Labels") or {}, "userACL": [int(owner)] if owner else [], "groupACL": [], "source": canonical,
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        # As the image store writes a private image: its file and full record root's alone, its
        # access list readable by everyone in a file of its own; a public one all readable.
        record = os.path.join(store, hexdigits + ".meta.json")
        access = os.path.join(store, hexdigits + ".access.json")
        with open(record, "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
        os.chmod(record, 0o600 if owner else 0o644)
        os.chmod(image, 0o600 if owner else 0o644)
        if owner:
            with open(access, "w") as f:
                json.dump({key: meta[key] for key in ("format", "digest", "manifestDigest", "userACL", "groupACL")}, f)
            os.chmod(access, 0o644)
        elif os.path.exists(access):
            os.unlink(access)
        with open(os.path.join(store, "tags", tag_file_name(canonical)), "w") as f:
            f.write(digest + "\n")
        print(f"{canonical} {digest}")


if __name__ == "__main__":
    main()
