import Testing

@testable import ShifterCore

private func request(_ options: PyxisOptions, home: String? = "/home/u", directories: Set<String> = []) throws(PyxisOptionsError)
    -> PyxisOptions.Request
{
    try options.request(home: home, currentDirectory: "/work", sitePaths: ["/tmp", "/global/homes"]) { directories.contains($0) }
}

private func failure(_ options: PyxisOptions, home: String? = "/home/u", directories: Set<String> = []) -> String? {
    do {
        _ = try request(options, home: home, directories: directories)
        return nil
    } catch {
        return error.description
    }
}

@Suite("Pyxis-style options")
struct PyxisOptionsTests {
    @Test("image names in enroot's form become docker references", arguments: [
        ("ubuntu:22.04", "docker:ubuntu:22.04"),
        ("ubuntu", "docker:ubuntu"),
        ("nvcr.io#nvidia/pytorch:21.07-py3", "docker:nvcr.io/nvidia/pytorch:21.07-py3"),
        ("127.0.0.1:5000#test/busybox:latest", "docker:127.0.0.1:5000/test/busybox:latest"),
        ("library/centos", "docker:library/centos"),
        ("docker://ubuntu:22.04", "docker:ubuntu:22.04"),
        ("docker://nvcr.io#nvidia/pytorch:21.07-py3", "docker:nvcr.io/nvidia/pytorch:21.07-py3"),
        ("ubuntu@sha256:" + String(repeating: "ab", count: 32), "docker:ubuntu@sha256:" + String(repeating: "ab", count: 32)),
    ])
    func images(text: String, expected: String) throws {
        #expect(try request(PyxisOptions(image: text)).image == expected)
    }

    @Test("a path names an unpacked image directory, relative to the current directory")
    func paths() throws {
        #expect(try request(PyxisOptions(image: "/images/rootfs"), directories: ["/images/rootfs"]).image == "local:/images/rootfs")
        #expect(try request(PyxisOptions(image: "./rootfs"), directories: ["/work/./rootfs"]).image == "local:/work/./rootfs")
        #expect(failure(PyxisOptions(image: "/images/app.sqsh"))?.hasPrefix(
            "--container-image=/images/app.sqsh: a path must name an unpacked image directory") == true)
    }

    @Test("credentials in the name and malformed names are refused with the option named")
    func badImages() {
        #expect(failure(PyxisOptions(image: "alice@nvcr.io#nvidia/pytorch:1"))?.hasPrefix(
            "--container-image=alice@nvcr.io#nvidia/pytorch:1: credentials in the image name (USER@) are not taken") == true)
        #expect(failure(PyxisOptions(image: "#ubuntu")) == "--container-image=#ubuntu: expected REGISTRY#IMAGE[:TAG]")
        #expect(failure(PyxisOptions(image: "dockerd://ubuntu"))?.hasPrefix(
            "--container-image=dockerd://ubuntu: dockerd://: images come from a registry through the image gateway") == true)
        #expect(failure(PyxisOptions(image: "a#b#c")) == "--container-image=a#b#c: expected REGISTRY#IMAGE[:TAG]")
        #expect(failure(PyxisOptions(image: "Ubuntu Latest"))?.hasPrefix("--container-image=Ubuntu Latest: ") == true)
        #expect(failure(PyxisOptions(mounts: "/a:/b")) == "--container-mounts, --container-workdir and --container-env: need --container-image")
    }

    @Test("mounts become volumes of host paths; ro is kept, a missing target is the source, propagation flags change nothing")
    func mounts() throws {
        let options = PyxisOptions(image: "ubuntu", mounts: "/data:/data:ro,/scratch,/etc/os-release:/host/os-release:ro+rprivate,/a:/b:rw")
        #expect(try request(options).volumes == "/data:/data:ro:host;/scratch:/scratch:host;/etc/os-release:/host/os-release:ro:host;/a:/b:host")
        // Checked as the node checks a volume, and named as the user wrote it.
        #expect(failure(PyxisOptions(image: "ubuntu", mounts: "/d:/etc/x")) == "--container-mounts entry \"/d:/etc/x\": target may not be under /etc")
        #expect(failure(PyxisOptions(image: "ubuntu", mounts: "/d/../e:/x")) == "--container-mounts entry \"/d/../e:/x\": path \"/d/../e\" may not contain \"..\"")
        #expect(failure(PyxisOptions(image: "ubuntu", mounts: "/a:/b:x-create=dir"))?.hasPrefix(
            "--container-mounts entry \"/a:/b:x-create=dir\": flag \"x-create=dir\" is not supported") == true)
        #expect(failure(PyxisOptions(image: "ubuntu", mounts: "/a:/b,,/c")) == "--container-mounts entry \"\": expected SRC[:DST[:FLAGS]]")
        #expect(failure(PyxisOptions(image: "ubuntu", mounts: "/a:/b:ro:x")) == "--container-mounts entry \"/a:/b:ro:x\": expected SRC[:DST[:FLAGS]]")
    }

    @Test("tmpfs:DST[:size=SIZE] is a new tmpfs of the user's; other tmpfs flags are refused")
    func tmpfsMounts() throws {
        #expect(try request(PyxisOptions(image: "ubuntu", mounts: "tmpfs:/scratch,tmpfs:/s2:size=64M+rw,tmpfs:./s3")).volumes ==
            "/scratch:/scratch:tmpfs;/s2:/s2:tmpfs=64M;/s3:/s3:tmpfs")
        #expect(failure(PyxisOptions(image: "ubuntu", mounts: "tmpfs:/s:huge=within_size")) ==
            "--container-mounts entry \"tmpfs:/s:huge=within_size\": flag \"huge=within_size\" is not supported for a tmpfs (known: size=SIZE, rw, private, rprivate, nosuid, nodev)")
        #expect(failure(PyxisOptions(image: "ubuntu", mounts: "tmpfs")) ==
            "--container-mounts entry \"tmpfs\": a tmpfs mount needs its target: tmpfs:DST[:FLAGS]")
        #expect(failure(PyxisOptions(image: "ubuntu", mounts: "tmpfs:/s:size=0"))?.contains("tmpfs size must be more than 0") == true)
    }

    @Test("umount:DST leaves a site mount out")
    func umountMounts() throws {
        #expect(try request(PyxisOptions(image: "ubuntu", mounts: "umount:/tmp,/d:/d")).volumes == "/tmp:/tmp:umount;/d:/d:host")
        #expect(failure(PyxisOptions(image: "ubuntu", mounts: "umount:/tmp:ro")) ==
            "--container-mounts entry \"umount:/tmp:ro\": expected umount:DST, the site mount to leave out")
    }

    @Test("a path may hold spaces, in the source, the target or both, as in Pyxis; a tab or a quote is refused")
    func mountsWithSpaces() throws {
        let options = PyxisOptions(image: "ubuntu", mounts: "/tmp/my dir:/mnt/test,/tmp:/mnt/my mount,/tmp/my dir:/mnt/my  mount 2:ro")
        #expect(try request(options).volumes == "/tmp/my dir:/mnt/test:host;/tmp:/mnt/my mount:host;/tmp/my dir:/mnt/my  mount 2:ro:host")
        #expect(failure(PyxisOptions(image: "ubuntu", mounts: "/tmp/a\tb:/b")) ==
            "--container-mounts entry \"/tmp/a\tb:/b\": path \"/tmp/a\\tb\" contains \"\\t\"; only letters, digits, spaces and _ . / + - are allowed")
    }

    @Test("a source starting with . is relative to the current directory, a target starting with . to the container's /")
    func relativeMounts() throws {
        let options = PyxisOptions(image: "ubuntu", mounts: "./:/data,./config.yaml:/app/config.yaml:ro,/x:./y,./in")
        #expect(try request(options).volumes == "/work:/data:host;/work/config.yaml:/app/config.yaml:ro:host;/x:/y:host;/work/in:/in:host")
        #expect(failure(PyxisOptions(image: "ubuntu", mounts: "../up:/up")) ==
            "--container-mounts entry \"../up:/up\": path \"/work/../up\" may not contain \"..\"")
        #expect(throws: PyxisOptionsError(option: "--container-mounts entry \"./x:/x\"", reason: "a relative source needs a current directory")) {
            _ = try PyxisOptions(image: "ubuntu", mounts: "./x:/x").request(home: nil, currentDirectory: nil, sitePaths: []) { _ in false }
        }
    }

    @Test("--container-mount-home: a home on a site filesystem is there already, any other is the host's; the default and --no- ask nothing")
    func home() throws {
        let global = PyxisOptions(image: "ubuntu", mounts: "/d:/d", mountHome: true)
        #expect(try request(global, home: "/global/homes/u").volumes == "/d:/d:host")
        #expect(try request(global, home: "/global/homes").volumes == "/d:/d:host")
        #expect(try request(global, home: "/home/u").volumes == "/d:/d:host;/home/u:/home/u:host")
        #expect(try request(PyxisOptions(image: "ubuntu", mountHome: false)).volumes == "")
        #expect(try request(PyxisOptions(image: "ubuntu")).volumes == "")
        // A path that merely starts with a site path's name is not below it.
        #expect(try request(PyxisOptions(image: "ubuntu", mountHome: true), home: "/global/homesick/u").volumes ==
            "/global/homesick/u:/global/homesick/u:host")
        // A home the volume grammar cannot take is refused under the option's name.
        #expect(failure(PyxisOptions(image: "ubuntu", mountHome: true), home: "/home/a\"b") ==
            "--container-mount-home: path \"/home/a\\\"b\" contains \"\\\"\"; only letters, digits, spaces and _ . / + - are allowed")
        do {
            _ = try request(PyxisOptions(image: "ubuntu", mountHome: true), home: nil)
            Issue.record("a user without a home directory was given one")
        } catch {
            #expect(error.description.hasPrefix("--container-mount-home: the user has no absolute home directory") == true)
        }
    }

    @Test("workdir must be absolute; env names are checked and kept in order, once each")
    func workdirAndEnvironment() throws {
        #expect(try request(PyxisOptions(image: "ubuntu", workdir: "/usr/local/bin")).workdir == "/usr/local/bin")
        #expect(try request(PyxisOptions(image: "ubuntu")).workdir == nil)
        #expect(failure(PyxisOptions(image: "ubuntu", workdir: "../")) == "--container-workdir=../: the path must be absolute")
        #expect(try request(PyxisOptions(image: "ubuntu", environment: "LD_LIBRARY_PATH,CUDA_VERSION,LD_LIBRARY_PATH"))
            .environmentNames == ["LD_LIBRARY_PATH", "CUDA_VERSION"])
        #expect(failure(PyxisOptions(image: "ubuntu", environment: "A,1B")) == "--container-env=A,1B: \"1B\" is not a variable name")
    }

    @Test("--container-remap-root is refused with the reason")
    func remapRoot() {
        #expect(failure(PyxisOptions(image: "ubuntu", remapRoot: true)) ==
            "--container-remap-root: Shifter runs every container as the submitting user, never as root, remapped or not; remove the option")
    }
    @Test("PYXIS_CONTAINER_* stand for the options the command line left unset, as Pyxis reads them", arguments: [
        (PyxisOptions(), [:], PyxisOptions()),
        (PyxisOptions(), ["PYXIS_CONTAINER_IMAGE": "ubuntu", "PYXIS_CONTAINER_WORKDIR": "/w", "PYXIS_CONTAINER_ENV": "A,B"],
         PyxisOptions(image: "ubuntu", workdir: "/w", environment: "A,B")),
        // The command line wins, the mounts as a whole; an empty variable is unset.
        (PyxisOptions(image: "a", mounts: "/x:/y"), ["PYXIS_CONTAINER_IMAGE": "b", "PYXIS_CONTAINER_MOUNTS": "/z"],
         PyxisOptions(image: "a", mounts: "/x:/y")),
        (PyxisOptions(), ["PYXIS_CONTAINER_IMAGE": "", "PYXIS_CONTAINER_MOUNT_HOME": ""], PyxisOptions()),
        // Yes-or-no variables, in each of Pyxis' spellings.
        (PyxisOptions(), ["PYXIS_CONTAINER_MOUNT_HOME": "yes", "PYXIS_CONTAINER_REMAP_ROOT": "1"],
         PyxisOptions(mountHome: true, remapRoot: true)),
        (PyxisOptions(), ["PYXIS_CONTAINER_MOUNT_HOME": "n", "PYXIS_CONTAINER_ENTRYPOINT": "false", "PYXIS_CONTAINER_ENTRYPOINT_LOG": "y"],
         PyxisOptions(mountHome: false, entrypoint: false, entrypointLog: true)),
        (PyxisOptions(mountHome: false), ["PYXIS_CONTAINER_MOUNT_HOME": "true"], PyxisOptions(mountHome: false)),
        // PYXIS_CONTAINER_READONLY counts only where neither the option nor ..._WRITABLE decided.
        (PyxisOptions(), ["PYXIS_CONTAINER_READONLY": "1"], PyxisOptions(writable: false)),
        (PyxisOptions(), ["PYXIS_CONTAINER_READONLY": "no"], PyxisOptions(writable: true)),
        (PyxisOptions(), ["PYXIS_CONTAINER_WRITABLE": "1", "PYXIS_CONTAINER_READONLY": "1"], PyxisOptions(writable: true)),
        (PyxisOptions(writable: false), ["PYXIS_CONTAINER_WRITABLE": "1"], PyxisOptions(writable: false)),
        (PyxisOptions(), ["PYXIS_CONTAINER_NAME": "c", "PYXIS_CONTAINER_SAVE": "/s.sqsh", "PYXIS_CONTAINER_UNSHARE": "net"],
         PyxisOptions(name: "c", save: "/s.sqsh", unshare: "net")),
    ] as [(PyxisOptions, [String: String], PyxisOptions)])
    func environmentDefaults(given: PyxisOptions, variables: [String: String], expected: PyxisOptions) throws {
        #expect(try given.withEnvironmentDefaults(variables) == expected)
    }

    @Test("a yes-or-no variable Pyxis would ignore is refused, named", arguments: [
        ("MOUNT_HOME", "maybe"), ("REMAP_ROOT", "TRUE"), ("ENTRYPOINT", "2"), ("WRITABLE", "on"), ("READONLY", " 1"),
    ])
    func badFlags(name: String, value: String) {
        let error = #expect(throws: PyxisOptionsError.self) {
            try PyxisOptions().withEnvironmentDefaults(["PYXIS_CONTAINER_" + name: value])
        }
        #expect(error?.description == "PYXIS_CONTAINER_\(name)=\(value): expected 1, true, yes or y, or 0, false, no or n")
    }

    @Test("Pyxis options Shifter does not take are refused with the reason; those that ask for its way are taken", arguments: [
        (PyxisOptions(image: "ubuntu", name: "c1"), "--container-name=c1: named containers are not supported"),
        (PyxisOptions(image: "ubuntu", save: "/s.sqsh"), "--container-save=/s.sqsh: saving a container is not supported"),
        (PyxisOptions(image: "ubuntu", writable: true), "--container-writable: writable containers are not supported"),
        (PyxisOptions(image: "ubuntu", entrypoint: true), "--container-entrypoint: running the image's entrypoint is not supported"),
        (PyxisOptions(image: "ubuntu", unshare: "net,ipc"), "--container-unshare=net,ipc: new namespaces are not supported"),
        // Refused before the image is even looked at.
        (PyxisOptions(name: "c1"), "--container-name=c1: named containers are not supported"),
        (PyxisOptions(image: "ubuntu", writable: false, entrypoint: false, entrypointLog: true), nil),
    ] as [(PyxisOptions, String?)])
    func unsupported(options: PyxisOptions, expected: String?) {
        if let expected {
            #expect(failure(options)?.hasPrefix(expected) == true, "\(failure(options) ?? "taken")")
        } else {
            #expect(failure(options) == nil)
        }
    }

}
