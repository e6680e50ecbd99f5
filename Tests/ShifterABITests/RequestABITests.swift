#if canImport(Glibc)
import Glibc
#endif
import CShifterABI
import ShifterCore
import ShifterRuntime
import Testing

@testable import ShifterABI

/// Calls `body` with `request` laid out in a buffer of `size` bytes whose bytes past the struct are
/// `tail`, and the struct's `size` field set to `size`.
private func withRequest<Request, T>(_ request: Request, size: Int, tail: UInt8 = 0,
                                     _ body: (UnsafeRawPointer) -> T) -> T {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, MemoryLayout<Request>.size) + 64, alignment: 16)
    defer { buffer.deallocate() }
    buffer.initializeMemory(as: UInt8.self, repeating: tail)
    withUnsafeBytes(of: request) { buffer.copyMemory(from: $0) }
    buffer.storeBytes(of: size, as: Int.self)
    return body(UnsafeRawPointer(buffer.baseAddress!))
}

private func withOptionalCString<T>(_ text: String?, _ body: (UnsafePointer<CChar>?) -> T) -> T {
    guard let text else { return body(nil) }
    return text.withCString { body($0) }
}

private func message(_ call: (UnsafeMutablePointer<CChar>, Int) -> Int32) -> (Int32, String) {
    var buffer = [CChar](repeating: 0, count: 1024)
    let status = buffer.withUnsafeMutableBufferPointer { call($0.baseAddress!, $0.count) }
    return (status, String(cString: buffer))
}

/// A configuration handle as shifter_config_load makes one, for a site whose store is `top`.
private func withConfig<T>(_ top: String, _ body: (OpaquePointer) -> T) -> T {
    let site = SiteConfig(udiMount: top + "/udi", loopMount: top + "/loop", imagePath: top + "/images")
    let handle = Unmanaged.passRetained(ConfigHandle(site, path: top + "/udiRoot.conf"))
    defer { handle.release() }
    return body(OpaquePointer(handle.toOpaque()))
}

/// The --container-image of the tasks these tests plan (never freed).
nonisolated(unsafe) private let taskImage = UnsafePointer(strdup("ubuntu"))

/// A task of a step given --container-image, unless `image` is false.
private func taskRequest(_ argv: UnsafePointer<UnsafeMutablePointer<CChar>?>, argc: Int32, image: Bool = true) -> shifter_task_request {
    var request = shifter_task_request()
    request.size = MemoryLayout<shifter_task_request>.size
    request.argc = argc
    request.argv = argv
    request.shifter_path = nil
    request.container_image = image ? taskImage : nil
    return request
}

/// `entries` as a NULL-terminated array of C strings (an argv or an environment), for `body`.
private func withCStrings<T>(_ entries: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> T) -> T {
    let array: [UnsafeMutablePointer<CChar>?] = entries.map { strdup($0) } + [nil]
    defer { array.forEach { free($0) } }
    return array.withUnsafeBufferPointer { body($0.baseAddress!) }
}

private func task(_ pointer: UnsafeRawPointer) -> (Int32, String, [String]) {
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
    var envp: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
    let (status, text) = message { shifter_task_command(pointer, &argv, &envp, $0, $1) }
    defer { shifter_strings_free(argv); shifter_strings_free(envp) }
    var arguments: [String] = []
    var index = 0
    while let argv, let entry = argv[index] { arguments.append(String(cString: entry)); index += 1 }
    return (status, text, arguments)
}

@Suite("The C ABI's versioned requests and status codes")
struct RequestABITests {
    @Test("the header's sizes are the structs' sizes")
    func sizes() {
        #expect(MemoryLayout<shifter_prolog_request>.size == Int(SHIFTER_PROLOG_REQUEST_SIZE_VER2))
        #expect(MemoryLayout<shifter_prolog_request>.offset(of: \.ssh_keys) == Int(SHIFTER_PROLOG_REQUEST_SIZE_VER0))
        #expect(MemoryLayout<shifter_prolog_request>.offset(of: \.devices) == Int(SHIFTER_PROLOG_REQUEST_SIZE_VER1))
        #expect(MemoryLayout<shifter_task_request>.size == Int(SHIFTER_TASK_REQUEST_SIZE_VER1))
        #expect(MemoryLayout<shifter_task_request>.offset(of: \.container_image) == Int(SHIFTER_TASK_REQUEST_SIZE_VER0))
        #expect(MemoryLayout<shifter_pyxis_options>.size == Int(SHIFTER_PYXIS_OPTIONS_SIZE_VER0))
        #expect(MemoryLayout<shifter_validate_request>.size == Int(SHIFTER_VALIDATE_REQUEST_SIZE_VER0))
        #expect(MemoryLayout<shifter_submit_request>.size == Int(SHIFTER_SUBMIT_REQUEST_SIZE_VER2))
        #expect(MemoryLayout<shifter_submit_request>.offset(of: \.pyxis_compat) == Int(SHIFTER_SUBMIT_REQUEST_SIZE_VER0))
        #expect(MemoryLayout<shifter_submit_request>.offset(of: \.device) == Int(SHIFTER_SUBMIT_REQUEST_SIZE_VER1))
        #expect(MemoryLayout<shifter_step_request>.size == Int(SHIFTER_STEP_REQUEST_SIZE_VER1))
        #expect(MemoryLayout<shifter_step_request>.offset(of: \.step_id) == Int(SHIFTER_STEP_REQUEST_SIZE_VER0))
        #expect(MemoryLayout<shifter_plugin_arguments>.size == Int(SHIFTER_PLUGIN_ARGUMENTS_SIZE_VER0))
    }

    @Test("an old, smaller prolog request reads as if its missing fields were zero")
    func oldSize() throws {
        var request = shifter_prolog_request()
        request.job_id = 7
        request.uid = 1000
        let size = Int(SHIFTER_PROLOG_REQUEST_SIZE_VER0)
        // The bytes past the old struct are garbage: ssh_keys and node must not be read from them.
        var bytes = [UInt8](repeating: 0xff, count: MemoryLayout<shifter_prolog_request>.size)
        withUnsafeBytes(of: request) { for index in 0..<size { bytes[index] = $0[index] } }
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: size, as: Int.self) }
        let read = try bytes.withUnsafeBytes { buffer throws(RequestStructError) in
            try readRequest(buffer.baseAddress, firstVersionSize: size, name: "t", zero: shifter_prolog_request())
        }
        #expect(read.job_id == 7 && read.uid == 1000)
        #expect(read.ssh_keys == nil && read.node == nil)
        #expect(read.size == size)
    }

    @Test("an old-size prolog request reaches the prolog")
    func oldSizeProlog() {
        let (status, text) = withConfig("/nonexistent") { config in
            withRequest(shifter_prolog_request(), size: Int(SHIFTER_PROLOG_REQUEST_SIZE_VER0), tail: 0xff) { pointer in
                message { shifter_job_prolog(config, pointer, $0, $1) }
            }
        }
        // Read, then refused for what it says (no image), not for its size.
        #expect(status == Int32(SHIFTER_EINVAL))
        #expect(text.hasSuffix(": job 0: no image given") && text.hasPrefix("node "))
    }

    @Test("a newer, larger request is refused when its unknown fields are set, and read when they are zero",
          arguments: [(UInt8(0), true), (UInt8(1), false)])
    func largerRequest(tail: UInt8, accepted: Bool) {
        let (status, text, arguments) = withCStrings(["hostname"]) { argv in
            var request = taskRequest(argv, argc: 1)
            request.shifter_path = UnsafePointer(strdup("/usr/bin/shifter"))
            defer { free(UnsafeMutableRawPointer(mutating: request.shifter_path)) }
            return withRequest(request, size: MemoryLayout<shifter_task_request>.size + 16, tail: tail) { task($0) }
        }
        if accepted {
            #expect(status == Int32(SHIFTER_OK))
            #expect(arguments == ["/usr/bin/shifter", "--workdir", "--", "hostname"])
        } else {
            #expect(status == Int32(SHIFTER_EINVAL))
            #expect(text.contains("sets fields this libshifter"))
        }
    }

    @Test("a request smaller than the first version is refused")
    func tooSmall() {
        let (status, text) = withConfig("/nonexistent") { config in
            withRequest(shifter_prolog_request(), size: 8) { pointer in message { shifter_job_prolog(config, pointer, $0, $1) } }
        }
        #expect(status == Int32(SHIFTER_EINVAL))
        #expect(text.contains("smaller than its first version's"))
    }

    @Test("a size no request could have is refused before anything past the known fields is read")
    func absurdSize() {
        let (status, text) = withConfig("/nonexistent") { config in
            withRequest(shifter_prolog_request(), size: 1 << 20) { pointer in message { shifter_job_prolog(config, pointer, $0, $1) } }
        }
        #expect(status == Int32(SHIFTER_EINVAL))
        #expect(text.contains("is beyond any request's (4096 bytes at most)"))
    }

    @Test("each kind of failure has its own status", arguments: RuntimeError.Kind.allCases)
    func kinds(kind: RuntimeError.Kind) {
        let expected: [RuntimeError.Kind: Int32] = [
            .invalidRequest: Int32(SHIFTER_EINVAL), .permission: Int32(SHIFTER_EPERM), .notFound: Int32(SHIFTER_ENOTFOUND),
            .system: Int32(SHIFTER_ESYSTEM),
        ]
        #expect(shifterStatus(kind) == expected[kind])
        #expect(Set(RuntimeError.Kind.allCases.map(shifterStatus)).count == RuntimeError.Kind.allCases.count)
    }

    @Test("a request names its failure's kind through the status", arguments: [
        ("docker:test/absent:1", nil, Int32(SHIFTER_ENOTFOUND)),
        ("docker:Not An Image", nil, Int32(SHIFTER_EINVAL)),
        ("docker:test/absent:1", "/tmp:/etc/x", Int32(SHIFTER_ENOTFOUND)),
        ("local:/usr", nil, Int32(SHIFTER_EPERM)),
    ] as [(String, String?, Int32)])
    func validateKinds(image: String, volumes: String?, expected: Int32) {
        let (status, text) = withConfig("/nonexistent") { config in
            image.withCString { image in
                withOptionalCString(volumes) { volumes in
                    var request = shifter_validate_request()
                    request.uid = 1
                    request.image = image
                    request.volumes = volumes
                    return withRequest(request, size: Int(SHIFTER_VALIDATE_REQUEST_SIZE_VER0), tail: 0xff) { pointer in
                        message { shifter_request_validate(config, pointer, nil, 0, nil, 0, $0, $1) }
                    }
                }
            }
        }
        #expect(status == expected, "\(text)")
    }

    @Test("a submission refuses what cannot go together before it reads the site's configuration", arguments: [
        ("docker:a", nil, "a", "--image and --volume cannot be combined with the Pyxis-style --container-* options; use one kind"),
        (nil, "/a:/b", nil, "--volume, --module, --ccm and --device need --image"),
    ] as [(String?, String?, String?, String)])
    func submitRefusals(image: String?, volume: String?, containerImage: String?, expected: String) {
        let (status, text) = withOptionalCString(image) { image in
            withOptionalCString(volume) { volume in
                withOptionalCString(containerImage) { containerImage in
                    "/nonexistent/udiRoot.conf".withCString { path in
                        var request = shifter_submit_request()
                        request.config_path = path
                        request.mount_home = -1
                        request.image = image
                        request.volume = volume
                        request.container_image = containerImage
                        return withRequest(request, size: Int(SHIFTER_SUBMIT_REQUEST_SIZE_VER0)) { pointer in
                            message { msg, length in
                                var job: CStringArray?, srun: CStringArray?
                                defer { shifter_strings_free(job); shifter_strings_free(srun) }
                                return shifter_submit(pointer, &job, &srun, msg, length)
                            }
                        }
                    }
                }
            }
        }
        #expect(status == Int32(SHIFTER_EINVAL))
        #expect(text == expected)
    }

    @Test("a submission without Shifter's options sets nothing and needs no configuration")
    func submitNothing() {
        var job: CStringArray?, srun: CStringArray?
        let (status, _) = "/nonexistent/udiRoot.conf".withCString { path in
            var request = shifter_submit_request()
            request.config_path = path
            request.mount_home = -1
            return withRequest(request, size: Int(SHIFTER_SUBMIT_REQUEST_SIZE_VER0)) { pointer in
                message { shifter_submit(pointer, &job, &srun, $0, $1) }
            }
        }
        defer { shifter_strings_free(job); shifter_strings_free(srun) }
        #expect(status == Int32(SHIFTER_OK))
        #expect(job?[0] == nil && srun?[0] == nil)
    }

    @Test("a step whose site configuration cannot be read gives its tasks nothing, and does not fail")
    func stepWithoutConfig() {
        var env: CStringArray?
        let (status, _) = "/nonexistent/udiRoot.conf".withCString { path in
            var request = shifter_step_request()
            request.config_path = path
            request.job_id = 7
            return withRequest(request, size: Int(SHIFTER_STEP_REQUEST_SIZE_VER0), tail: 0xff) { pointer in
                message { shifter_step_environment(pointer, &env, $0, $1) }
            }
        }
        defer { shifter_strings_free(env) }
        #expect(status == Int32(SHIFTER_OK))
        #expect(env?[0] == nil)
    }

    @Test("the end of a step without a root of its own, or from a first-version caller, does nothing and does not fail")
    func stepEndWithoutRoot() {
        for size in [SHIFTER_STEP_REQUEST_SIZE_VER1, SHIFTER_STEP_REQUEST_SIZE_VER0] {
            let (status, text) = "/nonexistent/udiRoot.conf".withCString { path in
                var request = shifter_step_request()
                request.config_path = path
                request.job_id = 7
                request.step_id = 1
                return withRequest(request, size: Int(size), tail: 0xff) { pointer in
                    message { shifter_step_end(pointer, $0, $1) }
                }
            }
            #expect(status == Int32(SHIFTER_OK))
            #expect(text.isEmpty)
        }
    }

    @Test("the task of a Pyxis-style step execs shifter with its command")
    func taskCommand() {
        let result = withCStrings(["true"]) { argv in
            var request = taskRequest(argv, argc: 1)
            return "/opt/shifter".withCString { path in
                "/data".withCString { workdir in
                    request.shifter_path = path
                    request.workdir = workdir
                    return withRequest(request, size: MemoryLayout<shifter_task_request>.size) { task($0) }
                }
            }
        }
        #expect(result.0 == Int32(SHIFTER_OK))
        #expect(result.2 == ["/opt/shifter", "--workdir=/data", "--", "true"])
        let empty = withRequest(taskRequest([nil], argc: 0), size: MemoryLayout<shifter_task_request>.size) { pointer in
            "/opt/shifter".withCString { _ in task(pointer) }
        }
        #expect(empty.0 != Int32(SHIFTER_OK))
    }

    @Test("a task's PYXIS_CONTAINER_IMAGE makes it a Pyxis-style task, and its workdir and names stand for missing options",
          arguments: [
        // (option, variables, the command planned; nil: the task runs as it is)
        (nil, [], nil),
        (nil, ["PYXIS_CONTAINER_IMAGE="], nil),
        (nil, ["PYXIS_CONTAINER_IMAGE=ubuntu", "SHIFTER_IMAGE=id:x"], ["/opt/shifter", "--workdir", "--", "true"]),
        (nil, ["PYXIS_CONTAINER_IMAGE=ubuntu", "SHIFTER_IMAGE=id:x", "PYXIS_CONTAINER_WORKDIR=/w", "PYXIS_CONTAINER_ENV=A,B"],
         ["/opt/shifter", "--workdir=/w", "--", "true"]),
        ("/data", ["PYXIS_CONTAINER_IMAGE=ubuntu", "SHIFTER_IMAGE=id:x", "PYXIS_CONTAINER_WORKDIR=/w"],
         ["/opt/shifter", "--workdir=/data", "--", "true"]),
        // Only what a task uses is read: submission judged the rest.
        (nil, ["PYXIS_CONTAINER_IMAGE=ubuntu", "SHIFTER_IMAGE=id:x", "PYXIS_CONTAINER_MOUNT_HOME=maybe"],
         ["/opt/shifter", "--workdir", "--", "true"]),
    ] as [(String?, [String], [String]?)])
    func taskFromVariables(workdir: String?, variables: [String], expected: [String]?) {
        let (status, text, arguments) = withCStrings(["true"]) { argv in
            withCStrings(variables) { envp in
                withOptionalCString(workdir) { workdir in
                    "/opt/shifter".withCString { path in
                        var request = taskRequest(argv, argc: 1, image: false)
                        request.shifter_path = path
                        request.workdir = workdir
                        request.envp = envp
                        return withRequest(request, size: MemoryLayout<shifter_task_request>.size) { task($0) }
                    }
                }
            }
        }
        #expect(status == Int32(SHIFTER_OK), "\(text)")
        #expect(arguments == (expected ?? []))
    }

    @Test("a task whose PYXIS_CONTAINER_IMAGE no submission resolved is refused with the reason")
    func taskVariableNotSubmitted() {
        let (status, text, arguments) = withCStrings(["true"]) { argv in
            withCStrings(["PYXIS_CONTAINER_IMAGE=ubuntu", "SHIFTER_IMAGE="]) { envp in
                "/opt/shifter".withCString { path in
                    var request = taskRequest(argv, argc: 1, image: false)
                    request.shifter_path = path
                    request.envp = envp
                    return withRequest(request, size: MemoryLayout<shifter_task_request>.size) { task($0) }
                }
            }
        }
        #expect(status == Int32(SHIFTER_EINVAL))
        #expect(text.hasPrefix("PYXIS_CONTAINER_IMAGE reached the task but not srun or sbatch (given with --export?)"))
        #expect(arguments.isEmpty)
    }

    @Test("a first-version task request is a Pyxis-style task without any image field")
    func firstVersionTask() {
        let result = withCStrings(["true"]) { argv in
            "/opt/shifter".withCString { path in
                var request = taskRequest(argv, argc: 1, image: false)
                request.shifter_path = path
                return withRequest(request, size: Int(SHIFTER_TASK_REQUEST_SIZE_VER0)) { task($0) }
            }
        }
        #expect(result.0 == Int32(SHIFTER_OK))
        #expect(result.2 == ["/opt/shifter", "--workdir", "--", "true"])
    }

    @Test("a submission at a Pyxis site takes PYXIS_CONTAINER_* for options not given, and refuses what it cannot take", arguments: [
        (1, ["PYXIS_CONTAINER_MOUNT_HOME=maybe"], "PYXIS_CONTAINER_MOUNT_HOME=maybe: expected 1, true, yes or y, or 0, false, no or n"),
        (1, ["PYXIS_CONTAINER_NAME=c1"], "--container-name=c1: named containers are not supported: every step of the job runs in the image as it was pulled; remove the option"),
        (1, ["PYXIS_CONTAINER_MOUNTS=/a:/b"], "--container-mounts, --container-workdir and --container-env: need --container-image"),
        // Without pyxis_compat the variables are not Shifter's to read.
        (0, ["PYXIS_CONTAINER_MOUNT_HOME=maybe", "PYXIS_CONTAINER_NAME=c1"], ""),
    ] as [(Int32, [String], String)])
    func submitFromVariables(pyxisCompat: Int32, variables: [String], expected: String) {
        var job: CStringArray?, srun: CStringArray?
        let (status, text) = withCStrings(variables) { envp in
            "/nonexistent/udiRoot.conf".withCString { path in
                var request = shifter_submit_request()
                request.config_path = path
                request.mount_home = -1
                request.pyxis_compat = pyxisCompat
                request.envp = envp
                return withRequest(request, size: MemoryLayout<shifter_submit_request>.size) { pointer in
                    message { shifter_submit(pointer, &job, &srun, $0, $1) }
                }
            }
        }
        defer { shifter_strings_free(job); shifter_strings_free(srun) }
        #expect(status == (expected.isEmpty ? Int32(SHIFTER_OK) : Int32(SHIFTER_EINVAL)))
        #expect(text == expected)
    }

    @Test("the plugin's arguments are read into its struct; a bad one says which, and a struct too small is refused")
    func pluginArguments() {
        func read(_ arguments: [String], size: Int = MemoryLayout<shifter_plugin_arguments>.size) -> (Int32, String, shifter_plugin_arguments) {
            var out = shifter_plugin_arguments()
            out.size = size
            let (status, text) = withCStrings(arguments) { argv in
                message { shifter_read_plugin_arguments(Int32(arguments.count), argv, &out, $0, $1) }
            }
            return (status, text, out)
        }
        func text<T>(_ field: T) -> String { withUnsafeBytes(of: field) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } }
        let (status, _, out) = read(["shifter_config=/site/udiRoot.conf", "pyxis_compat=1", "shifter_path=/opt/shifter"])
        #expect(status == Int32(SHIFTER_OK))
        #expect(text(out.config_path) == "/site/udiRoot.conf" && text(out.shifter_path) == "/opt/shifter")
        #expect(out.pyxis_compat == 1 && out.enable_ccm == 0 && out.long_options == 0)
        #expect(text(read([]).2.config_path) == SiteConfigLoader.defaultPath)
        let (badStatus, badText, _) = read(["enable_ccm=2"])
        #expect(badStatus == Int32(SHIFTER_EINVAL))
        #expect(badText == "plugstack argument \"enable_ccm=2\": expected 0 or 1")
        #expect(read([], size: 8).0 == Int32(SHIFTER_EINVAL))
    }
}
