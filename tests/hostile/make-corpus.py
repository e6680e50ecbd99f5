#!/usr/bin/python3
"""Writes the hostile-image corpus: layers, configs and manifests that broken or malicious image
tools could produce, as a blob directory that tests/hostile/registry.py serves.

    make-corpus.py OUTDIR [--many-files N] [--bomb-mib N]

OUTDIR/blobs/sha256:HEX holds every blob, OUTDIR/manifests/CASE holds each case's manifest (with
OUTDIR/manifests/CASE.type, its Content-Type), OUTDIR/overrides.json the blobs the registry serves
with other content than their digest says. Every path a case tries to write outside the image
contains "hostile-escape", so a search of the host for that string finds any escape. Nothing here
is committed as a binary: the corpus is rebuilt from this script at test time.
"""
import gzip
import hashlib
import io
import json
import os
import struct
import sys
import tarfile
import zlib

ESCAPE = "hostile-escape"


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Entry:
    """One tar entry. kind: file, dir, symlink, hardlink, chr, blk, fifo."""

    def __init__(self, name, kind="file", data=b"", target="", mode=None, uid=0, gid=0, pax=None):
        self.name, self.kind, self.data, self.target = name, kind, data, target
        self.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
        self.uid, self.gid, self.pax = uid, gid, pax or {}


TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
         "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
         "fifo": tarfile.FIFOTYPE}


def tar_of(entries):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = TYPES[e.kind]
            info.mode, info.uid, info.gid, info.mtime = e.mode, e.uid, e.gid, 1700000000
            info.pax_headers = dict(e.pax)
            if e.kind in ("symlink", "hardlink"):
                info.linkname = e.target
            if e.kind in ("chr", "blk"):
                info.devmajor, info.devminor = 8, 0
            if e.kind == "file":
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return raw.getvalue()


def ustar_header(name, size=0, typeflag=b"0", mode=0o644):
    """A plain ustar header, written by hand: tarfile is too slow for a million entries."""
    header = bytearray(512)
    header[0:len(name)] = name
    header[100:108] = b"%07o\0" % mode
    header[108:116] = b"0000000\0"
    header[116:124] = b"0000000\0"
    header[124:136] = b"%011o\0" % size
    header[136:148] = b"%011o\0" % 1700000000
    header[148:156] = b" " * 8
    header[156:157] = typeflag
    header[257:263] = b"ustar\0"
    header[263:265] = b"00"
    checksum = sum(header)
    header[148:156] = b"%06o\0 " % checksum
    return bytes(header)


def many_files_layer(count):
    """COUNT empty files in directories of 1000, gzip-compressed as it is produced."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    parts = []
    for directory in range((count + 999) // 1000):
        chunk = [ustar_header(b"d%04d/" % directory, typeflag=b"5", mode=0o755)]
        for index in range(directory * 1000, min(count, directory * 1000 + 1000)):
            chunk.append(ustar_header(b"d%04d/f%07d" % (directory, index)))
        parts.append(compressor.compress(b"".join(chunk)))
    parts.append(compressor.compress(b"\0" * 1024))
    parts.append(compressor.flush())
    return b"".join(parts)


def zeros_layer(mib):
    """A tar of one file of MIB MiB of zeros, gzip-compressed as it is produced: about 1000:1."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    size = mib << 20
    parts = [compressor.compress(ustar_header(b"bomb", size=size))]
    block = b"\0" * (1 << 20)
    for _ in range(mib):
        parts.append(compressor.compress(block))
    parts.append(compressor.compress(b"\0" * 1024))
    parts.append(compressor.flush())
    return b"".join(parts)


class Corpus:
    def __init__(self, out):
        self.out = out
        self.overrides = {}
        os.makedirs(os.path.join(out, "blobs"), exist_ok=True)
        os.makedirs(os.path.join(out, "manifests"), exist_ok=True)

    def blob(self, data):
        name = digest(data)
        path = os.path.join(self.out, "blobs", name)
        if not os.path.exists(path):
            with open(path + ".tmp", "wb") as f:
                f.write(data)
            os.rename(path + ".tmp", path)
        return name, len(data)

    def config(self, case):
        body = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                           "config": {"Env": ["PATH=/bin", "HOSTILE_CASE=" + case]},
                           "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        return body

    def image(self, case, layers, manifest_type="application/vnd.oci.image.manifest.v1+json",
              content_type=None, layer_type="application/vnd.oci.image.layer.v1.tar+gzip",
              config=None, declared_sizes=None, extra=None):
        """Writes a case: LAYERS are compressed layer blobs, bottom first."""
        config = config if config is not None else self.config(case)
        config_digest, config_size = self.blob(config)
        descriptors = []
        for index, data in enumerate(layers):
            name, size = self.blob(data)
            if declared_sizes and declared_sizes[index] is not None:
                size = declared_sizes[index]
            descriptors.append({"mediaType": layer_type, "digest": name, "size": size})
        body = {"schemaVersion": 2, "mediaType": manifest_type,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": config_digest, "size": config_size},
                "layers": descriptors, "annotations": {"hostile.case": case}}
        if manifest_type is None:
            del body["mediaType"]
        body.update(extra or {})
        data = json.dumps(body, indent=1).encode()
        with open(os.path.join(self.out, "manifests", case), "wb") as f:
            f.write(data)
        with open(os.path.join(self.out, "manifests", case + ".type"), "w") as f:
            f.write(content_type or manifest_type or "application/vnd.oci.image.manifest.v1+json")
        return digest(data)

    def layer(self, case, *layers, **options):
        return self.image(case, [gzip.compress(tar_of(entries), 6) for entries in layers], **options)

    def override(self, real_digest, served):
        """The registry serves SERVED for REAL_DIGEST (a digest mismatch)."""
        self.overrides[real_digest] = self.blob(served)[0]

    def finish(self):
        with open(os.path.join(self.out, "overrides.json"), "w") as f:
            json.dump(self.overrides, f)


def main():
    args = sys.argv[1:]
    out = args[0]
    many = int(args[args.index("--many-files") + 1]) if "--many-files" in args else 1000000
    bomb_mib = int(args[args.index("--bomb-mib") + 1]) if "--bomb-mib" in args else 64
    busybox = "/bin/busybox"
    c = Corpus(out)
    ok = Entry("ok", data=b"ok\n")

    # A plain image that works, for the fault cases and as a control.
    c.layer("good", [Entry("etc", "dir"), Entry("etc/hello", data=b"hello\n" * 40000)])
    # Some 12 MiB that do not compress, for the filesystem-full case.
    c.image("big", [gzip.compress(tar_of([Entry("noise", data=os.urandom(12 << 20))]), 1)])

    # Paths that leave the root.
    c.layer("traversal", [ok, Entry("../../../../../../../../tmp/%s-traversal" % ESCAPE, data=b"x")])
    c.layer("traversal-nested", [ok, Entry("a/b/../../../%s-nested" % ESCAPE, data=b"x")])
    c.layer("absolute", [ok, Entry("/tmp/%s-absolute" % ESCAPE, data=b"x")])
    # A symbolic link out of the root, then a file written through it, in one layer.
    c.layer("symlink-write-through", [Entry("escape", "symlink", target="/tmp"),
                                      Entry("escape/%s-symlink" % ESCAPE, data=b"x")])
    c.layer("symlink-relative-write-through", [Entry("up", "symlink", target="../../../../../tmp"),
                                               Entry("up/%s-relsymlink" % ESCAPE, data=b"x")])
    # The same across two layers: the upper layer's directory replaces the lower layer's link.
    c.layer("symlink-cross-layer", [Entry("escape", "symlink", target="/tmp")],
            [Entry("escape/%s-crosslayer" % ESCAPE, data=b"inside\n")])
    # A link that points out of the root is only a link: it is stored as it is.
    c.layer("symlink-outside", [Entry("etc", "dir"), Entry("etc/shadow-link", "symlink", target="../../../../etc/shadow"),
                                Entry("abs-link", "symlink", target="/etc/shadow")])
    c.layer("symlink-loop", [Entry("a", "symlink", target="b"), Entry("b", "symlink", target="a")])
    # Hard links to outside paths.
    c.layer("hardlink-absolute", [ok, Entry("link", "hardlink", target="/etc/passwd")])
    c.layer("hardlink-relative", [ok, Entry("link", "hardlink", target="../../../etc/passwd")])
    c.layer("hardlink-through-symlink", [Entry("hostetc", "symlink", target="/etc"),
                                         Entry("link", "hardlink", target="hostetc/passwd")])
    c.layer("hardlink-cycle", [Entry("a", "hardlink", target="b"), Entry("b", "hardlink", target="a")])
    # Whiteouts that name something outside the directory they sit in.
    c.layer("whiteout-parent", [ok], [Entry("../.wh.%s-whiteout" % ESCAPE, data=b"")])
    c.layer("whiteout-dotdot", [ok], [Entry("etc/.wh...", data=b"")])
    c.layer("whiteout-dot", [ok], [Entry(".wh..", data=b"")])
    # Duplicate entries: within a layer the later one wins, as tar extraction does.
    c.layer("duplicate-entries", [Entry("dup", data=b"first\n"), Entry("dup", data=b"second\n"),
                                  Entry("swap", "dir"), Entry("swap/child", data=b"c"), Entry("swap", data=b"now a file\n")])
    # Names: over 4096 bytes in all, a component over 255 bytes, newlines.
    long_path = "/".join(["L%03d" % i + "x" * 246 for i in range(17)]) + "/end"
    c.layer("long-path", [Entry(long_path, data=b"deep\n")])
    c.layer("long-component", [ok, Entry("n" * 300, data=b"x")])
    c.layer("deep-nesting", [Entry("a/" * 100000 + "leaf", data=b"x")])
    c.layer("newline-name", [Entry("line1\nline2", data=b"nl\n"), Entry("dir\nname", "dir"),
                             Entry("dir\nname/file", data=b"f\n")])
    c.layer("newline-traversal", [ok, Entry("a\nb/../../%s-newline\nINJECTED LINE" % ESCAPE, data=b"x")])
    c.layer("root-replaced", [Entry(".", data=b"not a directory")])
    # A decompression bomb: BOMB_MIB MiB of zeros in about BOMB_MIB KiB; and the same hidden by a
    # whiteout in the layer above, so that its data would only be skipped.
    bomb = zeros_layer(bomb_mib)
    c.image("bomb", [bomb])
    c.image("bomb-hidden", [bomb, gzip.compress(tar_of([Entry(".wh.bomb", data=b""), ok]))])
    # A million empty files (or --many-files N).
    c.image("many-files", [many_files_layer(many)])
    # A setuid-root binary and device nodes.
    with open(busybox, "rb") as f:
        busybox_data = f.read()
    c.layer("setuid-and-devices", [
        Entry("bin", "dir"), Entry("bin/busybox", data=busybox_data, mode=0o4755, uid=0, gid=0),
        Entry("bin/sh", "symlink", target="busybox"), Entry("bin/id", "hardlink", target="bin/busybox"),
        Entry("dev", "dir"), Entry("dev/sda", "blk", mode=0o666), Entry("dev/mem", "chr", mode=0o666),
        Entry("dev/kmsg", "chr", mode=0o666), Entry("run", "dir"), Entry("run/fifo", "fifo"),
        Entry("cap", data=b"x", pax={"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\xc0\x00\x00\x00"}),
        Entry("etc", "dir"), Entry("etc/passwd", data=b"root::0:0:root:/root:/bin/sh\n"),
    ])
    # Manifests with a wrong media type.
    good_layer = [Entry("etc", "dir"), Entry("etc/hello", data=b"hello\n")]
    c.layer("mediatype-config", good_layer, manifest_type="application/vnd.oci.image.config.v1+json")
    c.layer("mediatype-html", good_layer, manifest_type="text/html")
    c.layer("mediatype-schema1", good_layer, manifest_type="application/vnd.docker.distribution.manifest.v1+prettyjws")
    c.layer("mediatype-absent", good_layer, manifest_type=None, content_type="application/json")
    c.layer("mediatype-layer-zstd-label", good_layer, layer_type="application/vnd.oci.image.layer.v1.tar+zstd")
    # Digests and sizes that do not match the content.
    mismatch_layer = gzip.compress(tar_of([Entry("real", data=b"real content\n")]))
    c.image("digest-mismatch-layer", [mismatch_layer])
    # Same length, other content: only the digest can tell.
    c.override(digest(mismatch_layer), mismatch_layer[:-12] + b"\0" * 12)
    config = c.config("digest-mismatch-config")
    c.image("digest-mismatch-config", [gzip.compress(tar_of(good_layer))], config=config)
    c.override(digest(config), config.replace(b"PATH=/bin", b"PATH=/evil"))
    c.image("size-understated", [gzip.compress(tar_of([Entry("f", data=os.urandom(4096))]))], declared_sizes=[100])
    c.image("size-overstated", [gzip.compress(tar_of([Entry("g", data=os.urandom(4096))]))], declared_sizes=[1 << 20])
    c.layer("not-sha256", good_layer, extra={"layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                                          "digest": "md5:" + "0" * 32, "size": 10}]})
    c.layer("digest-traversal", good_layer, extra={"layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                                               "digest": "sha256:../../../../%s" % ESCAPE, "size": 10}]})
    c.finish()


if __name__ == "__main__":
    main()
