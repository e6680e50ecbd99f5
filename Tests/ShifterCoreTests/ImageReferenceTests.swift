import Testing

@testable import ShifterCore

private let hex = String(repeating: "0123456789abcdef", count: 4)

struct ImageReferenceTests {
    @Test(arguments: [
        ("ubuntu", "docker:registry-1.docker.io/library/ubuntu:latest"),
        ("ubuntu:14.04", "docker:registry-1.docker.io/library/ubuntu:14.04"),
        ("nersc/mpi-ubuntu:14.04", "docker:registry-1.docker.io/nersc/mpi-ubuntu:14.04"),
        ("docker:scanon/hello-vm", "docker:registry-1.docker.io/scanon/hello-vm:latest"),
        ("docker:ubuntu:14.04", "docker:registry-1.docker.io/library/ubuntu:14.04"),
        ("registry.example.org:5000/a/b/c:tag@sha256:\(hex)", "docker:registry.example.org:5000/a/b/c:tag@sha256:\(hex)"),
        ("localhost/x", "docker:localhost/x:latest"),
        ("localhost:5000/x", "docker:localhost:5000/x:latest"),
        ("localhost:5000/x:1", "docker:localhost:5000/x:1"),
        ("ubuntu@sha256:\(hex)", "docker:registry-1.docker.io/library/ubuntu@sha256:\(hex)"),
        ("docker.io/ubuntu", "docker:registry-1.docker.io/library/ubuntu:latest"),
        ("index.docker.io/library/ubuntu", "docker:registry-1.docker.io/library/ubuntu:latest"),
        ("registry-1.docker.io/ubuntu", "docker:registry-1.docker.io/library/ubuntu:latest"),
        ("Quay.IO/coreos/etcd:v3.5", "docker:quay.io/coreos/etcd:v3.5"),
        ("ghcr.io/a__b/c.d-e---f:Tag_1.0-rc", "docker:ghcr.io/a__b/c.d-e---f:Tag_1.0-rc"),
        ("localhost", "docker:registry-1.docker.io/library/localhost:latest"),
        ("a.b", "docker:registry-1.docker.io/library/a.b:latest"),
        ("a_b:_x", "docker:registry-1.docker.io/library/a_b:_x"),
        ("id:sha256:\(hex)", "id:sha256:\(hex)"),
        ("id:\(hex)", "id:sha256:\(hex)"),
        ("custom:mycustom", "custom:mycustom:latest"),
        ("custom:site/tools:v2", "custom:site/tools:v2"),
        ("local:/scratch/root/", "local:/scratch/root"),
        ("local://opt//root/./x", "local:/opt/root/x"),
    ])
    func parsesValidReference(input: String, canonical: String) throws {
        let reference = try ImageReference.parse(input)
        #expect(reference.canonical == canonical)
        #expect(try ImageReference.parse(reference.canonical) == reference)
    }

    @Test(arguments: [
        ("", "image reference is empty"),
        ("Ubuntu", "repository names must be lowercase"),
        ("nersc/MPI", "repository names must be lowercase"),
        ("docker:", "no image name after \"docker:\""),
        ("ubuntu:", "tag is empty"),
        ("ubuntu:-x", "tag \"-x\" is invalid"),
        ("ubuntu:a b", "tag \"a b\" is invalid"),
        ("ubuntu:" + String(repeating: "t", count: 129), "tag is longer than 128 characters"),
        ("ubuntu@sha256:abc", "must be sha256: followed by 64 lowercase hex digits"),
        ("ubuntu@md5:\(hex)", "must be sha256:"),
        ("ubuntu@sha256:\(hex.uppercased())", "must be sha256:"),
        ("/ubuntu", "empty component"),
        ("a//b", "empty component"),
        ("a/b/", "empty component"),
        ("a..b", "name component \"a..b\" is invalid"),
        ("-a", "name component \"-a\" is invalid"),
        ("a_", "name component \"a_\" is invalid"),
        ("_a", "name component \"_a\" is invalid"),
        ("a___b", "name component \"a___b\" is invalid"),
        ("localhost:99999/x", "registry port \"99999\""),
        ("localhost:/x", "registry port \"\""),
        ("bad_host.org/x", "registry host \"bad_host.org\""),
        ("-h.org/x", "registry host \"-h.org\""),
        ("ex ample.org/x", "registry host"),
        ("sha256:\(hex)", "this is an image id; write it as id:sha256:\(hex)"),
        (hex, "this is an image id; write it as id:sha256:\(hex)"),
        ("id:abc", "an image id is 64 lowercase hex digits"),
        ("id:sha256:\(hex.uppercased())", "an image id"),
        ("custom:Name", "repository names must be lowercase"),
        ("custom:x@sha256:\(hex)", "custom images cannot be pinned by digest"),
        ("local:relative/dir", "must be absolute"),
        ("local:/a/../etc", "may not contain \"..\""),
        ("local:/", "the host root"),
        ("local:/a\tb", "contains \"\\t\""),
        ("a\nb", "name component \"a\\nb\" is invalid"),
        ("r.io/" + String(repeating: "a", count: 260), "name is longer than 255 characters"),
    ])
    func rejectsInvalidReference(input: String, fragment: String) {
        #expect {
            try ImageReference.parse(input)
        } throws: { error in
            guard let error = error as? ImageReferenceError else { return false }
            return error.input == input && error.description.contains(fragment)
                && error.description.hasPrefix("image \"") && !error.description.contains("\n")
        }
    }

    @Test func errorQuotesTheReference() {
        #expect(throws: ImageReferenceError(input: "Ubuntu", reason: "repository names must be lowercase")) {
            try ImageReference.parse("Ubuntu")
        }
        let error = ImageReferenceError(input: "Ubuntu", reason: "repository names must be lowercase")
        #expect(error.description == #"image "Ubuntu": repository names must be lowercase"#)
    }

    @Test func exposesParts() throws {
        let reference = try ImageReference.parse("registry.example.org:5000/a/b/c:tag@sha256:\(hex)")
        #expect(reference.type == .docker)
        #expect(reference.registry == "registry.example.org:5000")
        #expect(reference.repository == "a/b/c")
        #expect(reference.tag == "tag")
        #expect(reference.digest == "sha256:\(hex)")
        #expect(reference.path == nil)
        #expect(reference.dockerReference == "registry.example.org:5000/a/b/c@sha256:\(hex)")

        let pinned = try ImageReference.parse("ubuntu@sha256:\(hex)")
        #expect(pinned.tag == nil)

        let plain = try ImageReference.parse("ubuntu")
        #expect(plain.dockerReference == "registry-1.docker.io/library/ubuntu:latest")

        let id = try ImageReference.parse("id:\(hex)")
        #expect(id.registry == nil && id.repository == "" && id.tag == nil && id.digest == "sha256:\(hex)")
        #expect(id.dockerReference == nil)

        let local = try ImageReference.parse("local:/srv/root")
        #expect(local.path == "/srv/root" && local.registry == nil && local.repository == "")
    }

    @Test(arguments: [
        (ImageType.custom, "mytool", "custom:mytool:latest"),
        (ImageType.id, hex, "id:sha256:\(hex)"),
        (ImageType.local, "/srv/root", "local:/srv/root"),
        (ImageType.docker, "ubuntu", "docker:registry-1.docker.io/library/ubuntu:latest"),
        (ImageType.custom, "docker:ubuntu", "docker:registry-1.docker.io/library/ubuntu:latest"),
    ])
    func usesDefaultTypeWithoutPrefix(type: ImageType, input: String, canonical: String) throws {
        #expect(try ImageReference.parse(input, defaultType: type).canonical == canonical)
    }
}
