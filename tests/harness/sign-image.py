#!/usr/bin/python3
"""Signs an image in an OCI distribution registry the way cosign does with a key, for the tests.

Debian packages no cosign, so this writes the same objects from cosign's published signature
specification (specs/SIGNATURE_SPEC.md in sigstore/cosign: key-based, tag-discovered, no Rekor,
no Fulcio) and the simple-signing payload format (docs/containers-signature.5.md in
containers/image):

  payload blob  {"critical":{"identity":{"docker-reference":"HOST:PORT/NAME"},
                 "image":{"docker-manifest-digest":"sha256:..."},
                 "type":"cosign container image signature"},"optional":null}
                mediaType application/vnd.dev.cosign.simplesigning.v1+json
  config blob   a minimal OCI image config whose one diff_id is the payload digest
  manifest      OCI image manifest, one layer (the payload) annotated with
                "dev.cosignproject.cosign/signature": base64(signature of the payload bytes),
                tagged sha256-<hex>.sig in the image's own repository.

ECDSA P-256 signs SHA-256 of the payload (ASN.1 DER signature); Ed25519 signs the payload.

  sign-image.py keygen --type ecdsa|ed25519 --out PREFIX
  sign-image.py sign --registry HOST:PORT --repository NAME --tag TAG --key PREFIX.key
                [--ca CAFILE] [--user U --password P] [--referrer | --bundle] [one fault option]
  sign-image.py verify --registry HOST:PORT --repository NAME --tag TAG --pub PREFIX.pub [--bundle]
                [--ca ...]
  sign-image.py index --registry HOST:PORT --repository NAME --tag TAG --of TAG2 [--ca ...]

`sign --referrer` stores the signature as an OCI 1.1 referrer of the image (an artifact manifest
with artifactType application/vnd.dev.cosign.artifact.sig.v1+json and a subject, listed in the
index at tag sha256-<hex>, the referrers tag schema) instead of the .sig tag. `index` makes a
multi-platform index of one manifest, for the tests of a signed index.

`sign --bundle` writes what cosign 3 (and cosign 2.6+ with --new-bundle-format) stores for
`cosign sign --key`, with no transparency log entry and no certificate: a Sigstore bundle v0.3
(protobuf-specs sigstore_bundle.proto, JSON form) whose content is a DSSE envelope of an in-toto
Statement, attached as an OCI 1.1 referrer (specs/BUNDLE_SPEC.md in sigstore/cosign):

  statement     {"_type":"https://in-toto.io/Statement/v1",
                 "subject":[{"digest":{"sha256":"HEX"},"annotations":{}}],
                 "predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}
                (no subject name: nothing signed names the repository)
  bundle blob   {"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json",
                 "verificationMaterial":{"publicKey":{"hint":base64(SHA-256(SPKI DER))}},
                 "dsseEnvelope":{"payload":base64(statement),
                                 "payloadType":"application/vnd.in-toto+json",
                                 "signatures":[{"sig":base64(signature)}]}}
                signature over PAE = "DSSEv1 " LEN(type) " " type " " LEN(payload) " " payload
                (LEN in ASCII decimal): ECDSA P-256 over its SHA-256, Ed25519 pure over PAE (what
                sigstore-go and cosign's verify --key check for DSSE; cosign's signer loads Ed25519
                keys as Ed25519ph, which they do not accept)
  config blob   {} (the OCI empty descriptor, application/vnd.oci.empty.v1+json, 2 bytes)
  manifest      OCI image manifest, artifactType application/vnd.dev.sigstore.bundle.v0.3+json,
                its one layer the bundle (that mediaType), subject the image, annotations
                dev.sigstore.bundle.content=dsse-envelope, dev.sigstore.bundle.predicateType and
                org.opencontainers.image.created; pushed by digest and added (kept sorted by
                digest) to the index at tag sha256-<hex>, as go-containerregistry does for
                cosign where the registry has no referrers API.
`verify --bundle` checks that form, through the referrers API or else that tag.

Fault options (each makes a signature a verifier must reject): --identity REF (not with
--bundle, which signs no reference), --digest sha256:X, --corrupt-signature, --layer-size N,
--missing-blob (the payload or bundle blob is deleted once the manifest is in, which needs the
registry's storage delete enabled), --tag-for sha256:X, and with --bundle --predicate-type URI
(a verifier that takes only cosign's signing predicate must reject it).
`verify` is an independent check used to self-test this tool. Errors: one line, exit 1.
"""
import argparse
import base64
import datetime
import hashlib
import json
import re
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

PAYLOAD_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
REFERRER_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
MANIFEST_TYPES = [
    "application/vnd.oci.image.index.v1+json",
    OCI_MANIFEST,
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
]
SIG_ANNOTATION = "dev.cosignproject.cosign/signature"
SIG_TYPE = "cosign container image signature"
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_TYPES = [BUNDLE_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3"]
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
INTOTO_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
MAX_BLOB = 4 << 20


class Failure(Exception):
    pass


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class Registry:
    """A small OCI distribution client: anonymous, HTTP basic or bearer-token auth."""

    def __init__(self, host, repository, ca=None, user=None, password=None, actions="pull,push"):
        self.base = f"https://{host}/v2/{repository}/"
        self.repository, self.actions = repository, actions
        self.context = ssl.create_default_context(cafile=ca)
        self.basic = None
        if user is not None:
            self.basic = "Basic " + base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        self.auth = None  # the Authorization header that worked

    def _send(self, method, url, body=None, headers=None, limit=None):
        request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
        if self.auth:
            request.add_header("Authorization", self.auth)
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=30) as response:
                return response.status, response.headers, response.read(limit) if limit else response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read(64 << 10)
        except (urllib.error.URLError, OSError) as error:
            raise Failure(f"{method} {url}: {getattr(error, 'reason', error)}")

    def request(self, method, path, body=None, headers=None, limit=None):
        url = urllib.parse.urljoin(self.base, path)
        status, head, data = self._send(method, url, body, headers, limit)
        if status == 401 and self._authenticate(head.get("WWW-Authenticate", "")):
            status, head, data = self._send(method, url, body, headers, limit)
        return status, head, data

    def _authenticate(self, challenge):
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            if not self.basic or self.auth == self.basic:
                raise Failure("registry wants basic credentials: give --user and --password")
            self.auth = self.basic
            return True
        if scheme != "bearer":
            raise Failure(f"unsupported authentication challenge: {challenge!r}")
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        if "realm" not in params:
            raise Failure(f"bearer challenge without realm: {challenge!r}")
        query = {"scope": f"repository:{self.repository}:{self.actions}"}
        if "service" in params:
            query["service"] = params["service"]
        url = params["realm"] + ("&" if "?" in params["realm"] else "?") + urllib.parse.urlencode(query)
        self.auth = self.basic
        status, _, data = self._send("GET", url)
        if status != 200:
            raise Failure(f"token service {params['realm']} answered {status}")
        answer = json.loads(data)
        token = answer.get("token") or answer.get("access_token")
        if not token:
            raise Failure("token service gave no token")
        self.auth = "Bearer " + token
        return True

    def check(self, status, data, what, ok=(200,)):
        if status not in ok:
            raise Failure(f"{what}: HTTP {status} {data[:200].decode(errors='replace').strip()}")

    def manifest(self, reference):
        status, head, data = self.request("GET", f"manifests/{reference}",
                                          headers={"Accept": ", ".join(MANIFEST_TYPES)})
        self.check(status, data, f"manifest {self.repository}:{reference}")
        digest = sha256(data)
        claimed = head.get("Docker-Content-Digest")
        if claimed and claimed != digest:
            raise Failure(f"registry says {claimed} but the manifest bytes hash to {digest}")
        return digest, data

    def push_blob(self, data):
        status, head, body = self.request("POST", "blobs/uploads/")
        self.check(status, body, "start blob upload", ok=(202,))
        location = urllib.parse.urljoin(self.base, head.get("Location", ""))
        location += ("&" if "?" in location else "?") + "digest=" + urllib.parse.quote(sha256(data))
        status, _, body = self.request("PUT", location, body=data,
                                       headers={"Content-Type": "application/octet-stream"})
        self.check(status, body, "finish blob upload", ok=(201,))

    def push_manifest(self, tag, data, media_type=OCI_MANIFEST):
        status, _, body = self.request("PUT", f"manifests/{tag}", body=data,
                                       headers={"Content-Type": media_type})
        self.check(status, body, f"push manifest {tag}", ok=(201,))

    def blob(self, digest, size):
        status, _, data = self.request("GET", f"blobs/{digest}", limit=min(size, MAX_BLOB) + 1)
        self.check(status, data, f"blob {digest}")
        return data


def sig_tag(digest):
    return digest.replace(":", "-") + ".sig"


def payload_for(reference, digest):
    return compact({"critical": {"identity": {"docker-reference": reference},
                                 "image": {"docker-manifest-digest": digest},
                                 "type": SIG_TYPE},
                    "optional": None})


def statement_for(digest, predicate_type=SIGN_PREDICATE):
    """The in-toto Statement cosign signs for an image in the bundle form."""
    algorithm, hexdigest = digest.split(":", 1)
    return compact({"_type": STATEMENT_TYPE,
                    "subject": [{"digest": {algorithm: hexdigest}, "annotations": {}}],
                    "predicateType": predicate_type, "predicate": {}})


def pae(payload_type, payload):
    """DSSE's pre-authentication encoding, what the envelope's signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def key_hint(public):
    """cosign's public key hint: base64 of SHA-256 of the DER SubjectPublicKeyInfo."""
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def sign_bytes(key, data):
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    raise Failure("not an ECDSA or Ed25519 private key")


def verify_bytes(public, signature, data):
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, data)
        else:
            raise Failure("public key is neither ECDSA nor Ed25519")
    except InvalidSignature:
        raise Failure("signature does not verify")


def add_referrer(registry, digest, entry):
    """Adds entry to the referrers tag index of digest (sha256-HEX), as go-containerregistry does."""
    tag = digest.replace(":", "-")
    status, _, data = registry.request("GET", f"manifests/{tag}", headers={"Accept": OCI_INDEX})
    if status == 404:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    else:
        registry.check(status, data, f"referrers index {tag}")
        index = json.loads(data)
        if index.get("schemaVersion") != 2 or index.get("mediaType") != OCI_INDEX:
            raise Failure(f"tag {tag} is not an OCI image index")
    if all(m.get("digest") != entry["digest"] for m in index["manifests"]):
        index["manifests"] = sorted(index["manifests"] + [entry], key=lambda m: m.get("digest", ""))
        registry.push_manifest(tag, compact(index), OCI_INDEX)
    return tag


def referrers(registry, digest):
    """The referrers of digest: the referrers API, or else the index at the tag sha256-HEX."""
    status, head, data = registry.request("GET", f"referrers/{digest}", headers={"Accept": OCI_INDEX})
    if status != 200 or head.get("Content-Type", "").split(";")[0].strip() != OCI_INDEX:
        status, _, data = registry.request("GET", f"manifests/{digest.replace(':', '-')}",
                                           headers={"Accept": OCI_INDEX})
        if status == 404:
            return []
        registry.check(status, data, "referrers index")
    index = json.loads(data)
    if index.get("mediaType", OCI_INDEX) != OCI_INDEX:
        raise Failure("referrers index is not an OCI image index")
    return index.get("manifests", [])


def keygen(args):
    key = ec.generate_private_key(ec.SECP256R1()) if args.type == "ecdsa" else ed25519.Ed25519PrivateKey.generate()
    with open(args.out + ".key", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(args.out + ".pub", "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))


def sign(args):
    with open(args.key, "rb") as f:
        try:
            key = serialization.load_pem_private_key(f.read(), password=None)
        except (ValueError, TypeError):
            raise Failure(f"{args.key}: not an unencrypted PEM private key")
    registry = Registry(args.registry, args.repository, args.ca, args.user, args.password,
                        actions="pull,push,delete" if args.missing_blob else "pull,push")
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise Failure(f"{args.key}: not an ECDSA or Ed25519 private key")
    digest, raw = registry.manifest(args.tag)
    signed_digest = args.digest or digest
    if args.bundle:
        return sign_bundle(args, key, registry, digest, raw, signed_digest)
    payload = payload_for(args.identity or f"{args.registry}/{args.repository}", signed_digest)
    signature = sign_bytes(key, payload)
    if args.corrupt_signature:
        signature = signature[:-2] + bytes([signature[-2] ^ 0x01, signature[-1] ^ 0x80])
    config = compact({"architecture": "", "created": "0001-01-01T00:00:00Z",
                      "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
                      "rootfs": {"type": "layers", "diff_ids": [sha256(payload)]}, "config": {}})
    layer = {"mediaType": PAYLOAD_TYPE,
             "size": args.layer_size if args.layer_size is not None else len(payload),
             "digest": sha256(payload),
             "annotations": {SIG_ANNOTATION: base64.b64encode(signature).decode()}}
    registry.push_blob(payload)
    registry.push_blob(config)
    if args.referrer:
        # OCI 1.1: an artifact whose subject is the image, found through the referrers API or,
        # where the registry has none, the index at the tag sha256-HEX (the referrers tag schema).
        subject = {"mediaType": json.loads(raw).get("mediaType", OCI_MANIFEST), "digest": digest, "size": len(raw)}
        manifest = compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": REFERRER_TYPE,
                            "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": sha256(config)},
                            "layers": [layer], "subject": subject})
        registry.push_manifest(sha256(manifest), manifest)
        tag = digest.replace(":", "-")
        index = compact({"schemaVersion": 2, "mediaType": OCI_INDEX,
                         "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(manifest), "size": len(manifest),
                                        "artifactType": REFERRER_TYPE}]})
        registry.push_manifest(tag, index, OCI_INDEX)
    else:
        manifest = compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                            "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": sha256(config)},
                            "layers": [layer]})
        tag = sig_tag(args.tag_for or digest)
        registry.push_manifest(tag, manifest)
    if args.missing_blob:  # registries refuse a manifest naming an unknown blob: delete it after
        status, _, body = registry.request("DELETE", f"blobs/{sha256(payload)}")
        registry.check(status, body, "delete payload blob (needs storage delete enabled)", ok=(202,))
    print(signed_digest)
    print(f"signed {args.registry}/{args.repository}@{signed_digest} as :{tag} ({sha256(manifest)})",
          file=sys.stderr)


def sign_bundle(args, key, registry, digest, raw, signed_digest):
    """cosign's bundle form: a Sigstore bundle of a DSSE-signed in-toto Statement, as a referrer."""
    statement = statement_for(signed_digest, args.predicate_type or SIGN_PREDICATE)
    signature = sign_bytes(key, pae(INTOTO_TYPE, statement))
    if args.corrupt_signature:
        signature = signature[:-2] + bytes([signature[-2] ^ 0x01, signature[-1] ^ 0x80])
    bundle = compact({"mediaType": BUNDLE_TYPE,
                      "verificationMaterial": {"publicKey": {"hint": key_hint(key.public_key())}},
                      "dsseEnvelope": {"payload": base64.b64encode(statement).decode(),
                                       "payloadType": INTOTO_TYPE,
                                       "signatures": [{"sig": base64.b64encode(signature).decode()}]}})
    registry.push_blob(bundle)
    registry.push_blob(EMPTY_CONFIG)
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    subject = {"mediaType": json.loads(raw).get("mediaType", OCI_MANIFEST), "size": len(raw), "digest": digest}
    manifest = compact({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": EMPTY_TYPE, "size": len(EMPTY_CONFIG), "digest": sha256(EMPTY_CONFIG),
                   "artifactType": BUNDLE_TYPE},
        "layers": [{"mediaType": BUNDLE_TYPE,
                    "size": args.layer_size if args.layer_size is not None else len(bundle),
                    "digest": sha256(bundle)}],
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                        "dev.sigstore.bundle.predicateType": args.predicate_type or SIGN_PREDICATE,
                        "org.opencontainers.image.created": created},
        "subject": subject, "artifactType": BUNDLE_TYPE})
    registry.push_manifest(sha256(manifest), manifest)
    tag = add_referrer(registry, args.tag_for or digest, {"mediaType": OCI_MANIFEST, "size": len(manifest),
                                                          "digest": sha256(manifest), "artifactType": BUNDLE_TYPE})
    if args.missing_blob:
        status, _, body = registry.request("DELETE", f"blobs/{sha256(bundle)}")
        registry.check(status, body, "delete bundle blob (needs storage delete enabled)", ok=(202,))
    print(signed_digest)
    print(f"signed {args.registry}/{args.repository}@{signed_digest} as a bundle referrer {sha256(manifest)}"
          f" listed at :{tag}", file=sys.stderr)


def make_index(args):
    """An OCI index at TAG listing the manifest at --of for linux/amd64 and linux/arm64."""
    registry = Registry(args.registry, args.repository, args.ca, args.user, args.password, actions="pull,push")
    digest, raw = registry.manifest(getattr(args, "of"))
    entries = [{"mediaType": json.loads(raw).get("mediaType", OCI_MANIFEST), "digest": digest, "size": len(raw),
                "platform": {"architecture": arch, "os": "linux"}} for arch in ("amd64", "arm64")]
    index = compact({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    registry.push_manifest(args.tag, index, OCI_INDEX)
    print(sha256(index))


def verify(args):
    with open(args.pub, "rb") as f:
        try:
            public = serialization.load_pem_public_key(f.read())
        except ValueError:
            raise Failure(f"{args.pub}: not a PEM public key")
    registry = Registry(args.registry, args.repository, args.ca, args.user, args.password, actions="pull")
    digest, _ = registry.manifest(args.tag)
    if args.bundle:
        return verify_bundle(registry, public, digest, f"{args.registry}/{args.repository}")
    _, raw = registry.manifest(sig_tag(digest))
    manifest = json.loads(raw)
    if manifest.get("mediaType") != OCI_MANIFEST or manifest.get("config", {}).get("mediaType") != CONFIG_TYPE:
        raise Failure("signature manifest is not an OCI image manifest with an OCI config")
    problems = []
    for layer in manifest.get("layers", []):
        try:
            if layer.get("mediaType") != PAYLOAD_TYPE:
                raise Failure(f"layer mediaType {layer.get('mediaType')}")
            data = registry.blob(layer["digest"], layer["size"])
            if len(data) != layer["size"] or sha256(data) != layer["digest"]:
                raise Failure(f"payload blob does not match its descriptor ({len(data)} bytes)")
            signature = base64.b64decode(layer.get("annotations", {}).get(SIG_ANNOTATION, ""), validate=True)
            verify_bytes(public, signature, data)
            payload = json.loads(data)
            critical = payload.get("critical", {})
            if set(payload) != {"critical", "optional"} or set(critical) != {"identity", "image", "type"}:
                raise Failure("payload members are not those of simple signing")
            if critical["type"] != SIG_TYPE:
                raise Failure(f"payload type {critical['type']!r}")
            if critical["image"] != {"docker-manifest-digest": digest}:
                raise Failure(f"payload signs {critical['image']}, not {digest}")
            if critical["identity"] != {"docker-reference": f"{args.registry}/{args.repository}"}:
                raise Failure(f"payload identity is {critical['identity']}")
            print(f"verified {args.registry}/{args.repository}@{digest}")
            return
        except (Failure, KeyError, TypeError, ValueError) as error:
            problems.append(str(error) or type(error).__name__)
    raise Failure("no valid signature: " + ("; ".join(problems) or "no layers"))


def verify_bundle(registry, public, digest, name):
    """Some referrer of digest is a bundle whose DSSE-signed Statement names digest as cosign signs."""
    problems = []
    for entry in referrers(registry, digest):
        try:
            if entry.get("mediaType") != OCI_MANIFEST:
                continue  # an index or anything else cannot be a bundle's manifest
            _, raw = registry.manifest(entry["digest"])
            if sha256(raw) != entry["digest"]:
                raise Failure("referrer manifest does not match its digest")
            manifest = json.loads(raw)
            layers = manifest.get("layers", [])
            if len(layers) != 1 or layers[0].get("mediaType") not in BUNDLE_TYPES:
                continue  # not a Sigstore bundle (cosign's other referrers, attestations by other tools)
            if manifest.get("subject", {}).get("digest") != digest:
                raise Failure(f"bundle manifest's subject is {manifest.get('subject', {}).get('digest')}")
            layer = layers[0]
            data = registry.blob(layer["digest"], layer["size"])
            if len(data) != layer["size"] or sha256(data) != layer["digest"]:
                raise Failure(f"bundle blob does not match its descriptor ({len(data)} bytes)")
            bundle = json.loads(data)
            if bundle.get("mediaType") not in BUNDLE_TYPES:
                raise Failure(f"bundle mediaType {bundle.get('mediaType')}")
            if "publicKey" not in bundle.get("verificationMaterial", {}):
                raise Failure("bundle is not signed with a key (certificate or none)")
            envelope = bundle.get("dsseEnvelope")
            if not isinstance(envelope, dict) or "messageSignature" in bundle:
                raise Failure("bundle content is not a DSSE envelope")
            if envelope.get("payloadType") != INTOTO_TYPE:
                raise Failure(f"payloadType {envelope.get('payloadType')}")
            if len(envelope.get("signatures", [])) != 1:
                raise Failure("DSSE envelope in a bundle must have exactly one signature")
            payload = base64.b64decode(envelope["payload"], validate=True)
            signature = base64.b64decode(envelope["signatures"][0]["sig"], validate=True)
            verify_bytes(public, signature, pae(envelope["payloadType"], payload))
            statement = json.loads(payload)
            if statement.get("_type") != STATEMENT_TYPE:
                raise Failure(f"statement _type {statement.get('_type')}")
            if statement.get("predicateType") != SIGN_PREDICATE:
                raise Failure(f"predicateType {statement.get('predicateType')}")
            algorithm, hexdigest = digest.split(":", 1)
            if not any(s.get("digest", {}).get(algorithm) == hexdigest for s in statement.get("subject", [])):
                raise Failure(f"statement's subjects do not name {digest}")
            print(f"verified {name}@{digest} (bundle {entry['digest']})")
            return
        except (Failure, KeyError, TypeError, ValueError, AttributeError) as error:
            problems.append(str(error) or type(error).__name__)
    raise Failure("no valid bundle: " + ("; ".join(problems) or "no bundle referrers"))


class Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors too: one line, exit 1
        print(f"sign-image: {message}", file=sys.stderr)
        sys.exit(1)


def main():
    parser = Parser(description="Sign an image in a registry as cosign does with a key.")
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("keygen", help="write PREFIX.key (PKCS8 PEM) and PREFIX.pub (SPKI PEM)")
    gen.add_argument("--type", choices=["ecdsa", "ed25519"], default="ecdsa")
    gen.add_argument("--out", required=True, metavar="PREFIX")
    for name in ("sign", "verify", "index"):
        sub = commands.add_parser(name)
        sub.add_argument("--registry", required=True, metavar="HOST:PORT")
        sub.add_argument("--repository", required=True, metavar="NAME")
        sub.add_argument("--tag", required=True)
        sub.add_argument("--ca", metavar="CAFILE", help="CA bundle to verify the registry's TLS")
        sub.add_argument("--user")
        sub.add_argument("--password")
        if name == "verify":
            sub.add_argument("--pub", required=True, metavar="PREFIX.pub")
            sub.add_argument("--bundle", action="store_true", help="check the Sigstore bundle referrer form")
            continue
        if name == "index":
            sub.add_argument("--of", required=True, metavar="TAG", help="the platform manifest's tag")
            continue
        sub.add_argument("--key", required=True, metavar="PREFIX.key")
        faults = sub.add_mutually_exclusive_group()
        faults.add_argument("--identity", metavar="REF", help="docker-reference to write instead")
        faults.add_argument("--digest", metavar="sha256:X", help="sign X, tagged for the real digest")
        faults.add_argument("--corrupt-signature", action="store_true")
        faults.add_argument("--layer-size", type=int, metavar="N", help="declare the payload as N bytes")
        faults.add_argument("--missing-blob", action="store_true", help="delete the payload blob after pushing")
        faults.add_argument("--tag-for", metavar="sha256:X", help="tag the signature for digest X")
        faults.add_argument("--predicate-type", metavar="URI", help="with --bundle, sign this predicateType")
        form = sub.add_mutually_exclusive_group()
        form.add_argument("--referrer", action="store_true", help="store it as an OCI 1.1 referrer (subject and"
                          " sha256-HEX index) instead of the .sig tag")
        form.add_argument("--bundle", action="store_true",
                          help="store a Sigstore bundle (DSSE, in-toto) as an OCI 1.1 referrer, as cosign 3 does")
    args = parser.parse_args()
    if args.command == "sign" and args.bundle and args.identity is not None:
        parser.error("--identity: the bundle form signs no reference")
    if args.command == "sign" and not args.bundle and args.predicate_type is not None:
        parser.error("--predicate-type needs --bundle")
    for value in (getattr(args, "digest", None), getattr(args, "tag_for", None)):
        if value is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", value):
            parser.error(f"not a sha256 digest: {value}")
    try:
        {"keygen": keygen, "sign": sign, "verify": verify, "index": make_index}[args.command](args)
    except (Failure, OSError, ValueError) as error:
        print(f"sign-image: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
