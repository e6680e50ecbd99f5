// The C ABI of include/shifter.h. Every export catches every error and never traps: this code runs
// inside slurmd and slurmstepd, where a trap kills the node's jobs.
#if canImport(Glibc)
import Glibc
#endif
import CShifterABI
import ShifterCore
import ShifterRuntime
import ShifterDevices
import ShifterSystem

private let shifterOK: Int32 = 0
private let shifterConfigError: Int32 = -1
private let shifterInvalid: Int32 = -2
private let shifterSystemError: Int32 = -3
private let shifterNotFound: Int32 = -4
private let shifterPrologFailed: Int32 = -5
private let shifterPermission: Int32 = -6

/// The status a failure of `kind` returns: each kind its own, so that the caller can tell the
/// user's mistake from the node's.
func shifterStatus(_ kind: RuntimeError.Kind) -> Int32 {
    switch kind {
    case .invalidRequest: shifterInvalid
    case .permission: shifterPermission
    case .notFound: shifterNotFound
    case .system: shifterSystemError
    }
}

/// Why a request struct cannot be read.
struct RequestStructError: Error {
    var message: String
}

/// The largest size a request struct may give: far beyond any version's.
let maximumRequestSize = 4096

/// Reads a size-versioned request struct (include/shifter.h): its first field is the size the
/// caller was compiled with. A smaller, older struct reads as if its missing fields were zero; a
/// larger, newer one is refused unless every byte beyond the fields this library knows is zero,
/// as clone3(2) and openat2(2) do with their argument structs.
func readRequest<Request>(_ pointer: UnsafeRawPointer?, firstVersionSize: Int, name: String,
                          zero: Request) throws(RequestStructError) -> Request {
    guard let pointer else { throw RequestStructError(message: "\(name): no request given") }
    let size = pointer.load(as: Int.self)
    let known = MemoryLayout<Request>.size
    guard size >= firstVersionSize else {
        throw RequestStructError(message: "\(name): the request's size \(size) is smaller than its first version's, \(firstVersionSize)")
    }
    // Its bytes past the known fields are read: a size no request could have (the caller passed
    // something else) must not send that read through the caller's memory.
    guard size <= maximumRequestSize else {
        throw RequestStructError(message: "\(name): the request's size \(size) is beyond any request's (\(maximumRequestSize) bytes at most); the caller passed something that is not a request")
    }
    if size > known, !UnsafeRawBufferPointer(start: pointer + known, count: size - known).allSatisfy({ $0 == 0 }) {
        throw RequestStructError(message: "\(name): the request (\(size) bytes) sets fields this libshifter (which knows \(known) bytes) does not know; install the libshifter the caller was built with")
    }
    var request = zero
    withUnsafeMutableBytes(of: &request) { bytes in
        bytes.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: min(size, known)))
    }
    return request
}

/// `readRequest` at an entry point: a request it cannot read leaves its reason in `msg` and gives
/// nil, for the entry point to return `SHIFTER_EINVAL`.
private func acceptRequest<Request>(_ pointer: UnsafeRawPointer?, firstVersionSize: Int32, name: String, zero: Request,
                                    _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int) -> Request? {
    do {
        return try readRequest(pointer, firstVersionSize: Int(firstVersionSize), name: name, zero: zero)
    } catch {
        copyOut(error.message, msg, msglen)
        return nil
    }
}

/// The object behind an opaque `shifter_config *`.
final class ConfigHandle {
    let config: SiteConfig
    let path: String
    init(_ config: SiteConfig, path: String) {
        self.config = config
        self.path = path
    }
}

nonisolated(unsafe) private var logHandler: (@convention(c) (Int32, UnsafePointer<CChar>?) -> Void)?

private func log(_ level: Int32, _ message: String) {
    guard let handler = logHandler else { return }
    message.withCString { handler(level, $0) }
}

/// Copies `text` into a caller's buffer, truncated and NUL-terminated; returns whether it fitted.
@discardableResult
private func copyOut(_ text: String, _ buffer: UnsafeMutablePointer<CChar>?, _ length: Int) -> Bool {
    guard let buffer, length > 0 else { return text.isEmpty }
    let all = Array(text.utf8)
    let bytes = all.prefix(length - 1)
    for (index, byte) in bytes.enumerated() { buffer[index] = CChar(bitPattern: byte) }
    buffer[bytes.count] = 0
    return bytes.count == all.count
}

/// Copies a request's image and volumes into the caller's buffers, or fails: a value cut short
/// would reach the prolog as another, valid-looking request.
private func copyRequest(
    _ image: String, _ volumes: String, _ imageOut: UnsafeMutablePointer<CChar>?, _ imageLength: Int,
    _ volumesOut: UnsafeMutablePointer<CChar>?, _ volumesLength: Int, _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int
) -> Int32 {
    guard copyOut(image, imageOut, imageLength), copyOut(volumes, volumesOut, volumesLength) else {
        copyOut("the image or volume list is too long (\(image.utf8.count + volumes.utf8.count) bytes)", msg, msglen)
        return shifterInvalid
    }
    return shifterOK
}

private func string(_ pointer: UnsafePointer<CChar>?) -> String? {
    pointer.map { String(cString: $0) }
}

private func handle(_ pointer: OpaquePointer?) -> SiteConfig? {
    configHandle(pointer)?.config
}

private func configHandle(_ pointer: OpaquePointer?) -> ConfigHandle? {
    guard let pointer else { return nil }
    return Unmanaged<ConfigHandle>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
}

@_cdecl("shifter_version")
public func shifter_version() -> UnsafePointer<CChar> {
    versionCString
}

nonisolated(unsafe) private let versionCString: UnsafePointer<CChar> = {
    let bytes = Array(ShifterVersion.string.utf8CString)
    let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
    buffer.initialize(from: bytes, count: bytes.count)
    return UnsafePointer(buffer)
}()

@_cdecl("shifter_set_log_handler")
public func shifter_set_log_handler(_ handler: (@convention(c) (Int32, UnsafePointer<CChar>?) -> Void)?) {
    logHandler = handler
}

@_cdecl("shifter_config_load")
public func shifter_config_load(_ path: UnsafePointer<CChar>?, _ config: UnsafeMutablePointer<OpaquePointer?>?,
                                _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int) -> Int32 {
    guard let config else {
        copyOut("shifter_config_load: no place to store the configuration", msg, msglen)
        return shifterConfigError
    }
    config.pointee = nil
    do {
        let configPath = string(path) ?? SiteConfigLoader.defaultPath
        let loaded = try SiteConfigLoader.load(configPath, warn: { log(1, "shifter: warning: \($0)") })
        config.pointee = OpaquePointer(Unmanaged.passRetained(ConfigHandle(loaded, path: configPath)).toOpaque())
        return shifterOK
    } catch {
        copyOut(error.message, msg, msglen)
        return shifterConfigError
    }
}

@_cdecl("shifter_config_free")
public func shifter_config_free(_ config: OpaquePointer?) {
    guard let config else { return }
    Unmanaged<ConfigHandle>.fromOpaque(UnsafeRawPointer(config)).release()
}

/// Loads the site configuration at `path` (nil: the compiled-in path).
private func loadSite(_ path: UnsafePointer<CChar>?) throws(RuntimeError) -> ConfigHandle {
    let configPath = string(path) ?? SiteConfigLoader.defaultPath
    return ConfigHandle(try SiteConfigLoader.load(configPath, warn: { log(1, "shifter: warning: \($0)") }), path: configPath)
}

/// Checks a request at submission for `uid` (with its groups) and resolves its image.
private func validate(_ handle: ConfigHandle, image: String, volumes: String?, modules: String?,
                      uid: UInt32) throws(RuntimeError) -> (image: String, volumes: String) {
    let groups = try JobRootGroups.of(uid: uid, config: handle.config)
    let request = try JobRoot.validate(config: handle.config, configPath: handle.path, image: image, volumes: volumes,
                                       modules: modules, uid: uid, groups: groups)
    return (request.image, request.volumes)
}

@_cdecl("shifter_request_validate")
public func shifter_request_validate(
    _ config: OpaquePointer?, _ pointer: UnsafeRawPointer?, _ imageID: UnsafeMutablePointer<CChar>?, _ imageIDLength: Int,
    _ volumesOut: UnsafeMutablePointer<CChar>?, _ volumesOutLength: Int,
    _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int
) -> Int32 {
    guard let request = acceptRequest(pointer, firstVersionSize: SHIFTER_VALIDATE_REQUEST_SIZE_VER0, name: "shifter_request_validate",
                                    zero: shifter_validate_request(), msg, msglen) else {
        return shifterInvalid
    }
    guard let handle = configHandle(config) else {
        copyOut("shifter_request_validate: no configuration", msg, msglen)
        return shifterConfigError
    }
    guard let image = string(request.image), !image.isEmpty else {
        copyOut("no image given", msg, msglen)
        return shifterInvalid
    }
    do {
        let valid = try validate(handle, image: image, volumes: string(request.volumes), modules: string(request.modules),
                                 uid: request.uid)
        return copyRequest(valid.image, valid.volumes, imageID, imageIDLength, volumesOut, volumesOutLength, msg, msglen)
    } catch {
        copyOut(error.message, msg, msglen)
        return shifterStatus(error.kind)
    }
}

/// Shifter's image reference and volumes for Pyxis-style `options` of `uid`, submitting from the
/// current directory.
private func pyxisRequest(_ site: SiteConfig, _ options: PyxisOptions, uid: UInt32) throws(PyxisOptionsError) -> PyxisOptions.Request {
    // The host directories every container shows at their own paths: the site's, and /tmp, which
    // the container gets unless the site mounts something else there.
    var sitePaths = site.siteFs.filter { $0.source == $0.target }.map(\.target)
    if !site.siteFs.contains(where: { $0.target == "/tmp" }) { sitePaths.append("/tmp") }
    let home = try? Credentials.passwdEntry(uid: uid).home
    var cwdBuffer = [CChar](repeating: 0, count: 4096)
    let currentDirectory = getcwd(&cwdBuffer, cwdBuffer.count) != nil ? String(cString: cwdBuffer) : nil
    return try options.request(home: home, currentDirectory: currentDirectory, sitePaths: sitePaths) { path in
        var status = stat()
        return stat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFDIR
    }
}

@_cdecl("shifter_pyxis_request")
public func shifter_pyxis_request(
    _ config: OpaquePointer?, _ request: UnsafeRawPointer?,
    _ imageOut: UnsafeMutablePointer<CChar>?, _ imageOutLength: Int, _ volumesOut: UnsafeMutablePointer<CChar>?,
    _ volumesOutLength: Int, _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int
) -> Int32 {
    guard let given = acceptRequest(request, firstVersionSize: SHIFTER_PYXIS_OPTIONS_SIZE_VER0, name: "shifter_pyxis_request",
                                    zero: shifter_pyxis_options(), msg, msglen) else {
        return shifterInvalid
    }
    let options = PyxisOptions(
        image: string(given.image), mounts: string(given.mounts), workdir: string(given.workdir),
        environment: string(given.env_names), mountHome: given.mount_home < 0 ? nil : given.mount_home != 0,
        remapRoot: given.remap_root != 0)
    guard let site = handle(config) else {
        copyOut("shifter_pyxis_request: no configuration", msg, msglen)
        return shifterConfigError
    }
    do {
        let request = try pyxisRequest(site, options, uid: given.uid)
        return copyRequest(request.image, request.volumes, imageOut, imageOutLength, volumesOut, volumesOutLength, msg, msglen)
    } catch {
        copyOut(error.description, msg, msglen)
        return shifterInvalid
    }
}

/// A failure of submission or of a step: the message and the status it returns.
private struct ExportFailure: Error {
    var message: String
    var status: Int32
    init(_ message: String, _ status: Int32) {
        self.message = message
        self.status = status
    }
    init(_ error: RuntimeError) { self.init(error.message, shifterStatus(error.kind)) }
}

/// "NAME=VALUE" entries as a dictionary; the first of a name wins, as getenv(3) finds it.
private func environmentDictionary(_ entries: [String]) -> [String: String] {
    var result: [String: String] = [:]
    for entry in entries {
        guard let equals = entry.firstIndex(of: "=") else { continue }
        let name = String(entry[..<equals])
        if result[name] == nil { result[name] = String(entry[entry.index(after: equals)...]) }
    }
    return result
}

public typealias CStringArray = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>

/// The variables submission sets: (job control environment, srun's own environment, notice).
private func submission(_ request: shifter_submit_request) throws(ExportFailure)
    -> (job: [(name: String, value: String)], srun: [(name: String, value: String)], notice: String) {
    let environment = environmentDictionary(strings(request.envp))
    var pyxis = PyxisOptions(
        image: string(request.container_image), mounts: string(request.container_mounts), workdir: string(request.container_workdir),
        environment: string(request.container_env), mountHome: request.mount_home < 0 ? nil : request.mount_home != 0,
        remapRoot: request.remap_root != 0, name: string(request.container_name), save: string(request.container_save),
        writable: request.container_writable == 0 ? nil : request.container_writable > 0,
        entrypoint: request.container_entrypoint == 0 ? nil : request.container_entrypoint > 0,
        entrypointLog: request.container_entrypoint_log != 0, unshare: string(request.container_unshare))
    if request.pyxis_compat != 0 {
        do { pyxis = try pyxis.withEnvironmentDefaults(environment) } catch { throw ExportFailure(error.description, shifterInvalid) }
    }
    let options = SlurmSubmission.Options(
        image: string(request.image), volume: string(request.volume), module: string(request.module), ccm: request.ccm != 0,
        pyxis: pyxis, longOptions: request.long_options != 0,
        device: request.size >= Int(SHIFTER_SUBMIT_REQUEST_SIZE_VER2) ? string(request.device) : nil)
    let plan = SlurmSubmission(command: request.srun != 0 ? .srun : .allocator, options: options, environment: environment)
    var site: ConfigHandle?
    func loaded() throws(ExportFailure) -> ConfigHandle {
        if let site { return site }
        do {
            let handle = try loadSite(request.config_path)
            site = handle
            return handle
        } catch {
            throw ExportFailure(error.message, shifterConfigError)
        }
    }
    var requested = (image: options.image, volumes: options.volume)
    do {
        try plan.check()
        if options.pyxisGiven {
            let pyxis: PyxisOptions.Request
            do {
                try options.pyxis.checkTaken()
                pyxis = try pyxisRequest(try loaded().config, options.pyxis, uid: request.uid)
            } catch let error as PyxisOptionsError {
                throw ExportFailure(error.description, shifterInvalid)
            }
            requested = (pyxis.image, pyxis.volumes)
        }
        guard try plan.needsImage(requestedImage: requested.image), let image = requested.image else { return ([], [], "") }
        let valid: (image: String, volumes: String)
        do {
            valid = try validateOrPull(try loaded(), plan: plan, image: image, volumes: requested.volumes, uid: request.uid,
                                       environment: strings(request.envp))
        } catch let error as RuntimeError {
            throw ExportFailure(error)
        }
        var devices = ""
        if let device = options.device {
            devices = try submittedDevices(device, config: try loaded().config)
            try plan.checkStepDevices(devices)
        }
        var job = plan.jobVariables(imageID: valid.image, volumes: valid.volumes, devices: devices)
        if plan.makesSSHKeys {
            let site = try loaded().config
            guard site.sshPath != nil else {
                throw ExportFailure("--ccm: this site has no sshd for containers (sshPath is not set in udiRoot.conf)", shifterInvalid)
            }
            do { job.append(("SHIFTER_SSH", try ContainerSSH.makeKeys(config: site).encoded)) } catch {
                throw ExportFailure(error)
            }
        }
        let srun = plan.stepVariables(imageID: valid.image, volumes: valid.volumes)
        let notice = srun.isEmpty ? "" : try loaded().config.entryMode == .userns
            ? SlurmSubmission.stepRootNotice : SlurmSubmission.stepContainerNotice
        return (job, srun, notice)
    } catch let error as SlurmSubmissionError {
        throw ExportFailure(error.description, shifterInvalid)
    } catch let error as ExportFailure {
        throw error
    } catch {
        throw ExportFailure("\(error)", shifterSystemError)
    }
}

/// `--device` checked against the CDI specs of the submitting host (which a site keeps the same as
/// its compute nodes'): the names in canonical form, or a message naming the device or spec.
private func submittedDevices(_ text: String, config: SiteConfig) throws(ExportFailure) -> String {
    do {
        let names = try CDIDeviceName.parseList(text)
        _ = try CDISpecLoader.resolve(names, directories: config.cdiSpecDirs)
        return names.map(\.description).joined(separator: ",")
    } catch {
        throw ExportFailure("--device: \(error.reason)", shifterInvalid)
    }
}

/// The devices a job's prolog puts in its root: those it asked for (`--device`), then the GPUs
/// Slurm gave it where the site names their CDI kind (`cdiSlurmGpuKind`); nil for none.
private func prologDevices(_ request: shifter_prolog_request, config: SiteConfig) throws(RuntimeError) -> CDIResolution? {
    guard request.size >= Int(SHIFTER_PROLOG_REQUEST_SIZE_VER2) else { return nil }
    var names: [CDIDeviceName] = []
    do {
        if let text = string(request.devices), !text.isEmpty { names = try CDIDeviceName.parseList(text) }
    } catch {
        throw RuntimeError("--device: \(error.reason)", kind: .invalidRequest)
    }
    do {
        if let kind = config.cdiSlurmGpuKind {
            let gpus = CDIDeviceName.slurmGPUs(kind: kind, environment: environmentDictionary(strings(request.envp)))
            names = try CDIDeviceName.restricted(names, slurmGPUs: gpus, kind: kind)
        }
        guard !names.isEmpty else { return nil }
        return try CDISpecLoader.resolve(names, directories: config.cdiSpecDirs)
    } catch {
        throw RuntimeError("--device: \(error.reason)", kind: .invalidRequest)
    }
}

/// `validate` at submission; an image missing from the store that `plan` pulls at submission
/// (Pyxis' images on demand) is pulled, as the user, and checked again.
private func validateOrPull(_ handle: ConfigHandle, plan: SlurmSubmission, image: String, volumes: String?, uid: UInt32,
                            environment: [String]) throws(RuntimeError) -> (image: String, volumes: String) {
    let reference = plan.imageToResolve(requested: image)
    let missing: RuntimeError
    do {
        return try validate(handle, image: reference, volumes: volumes, modules: plan.options.module, uid: uid)
    } catch {
        missing = error
    }
    guard missing.kind == .notFound, plan.pullsMissingImage(reference) else { throw missing }
    try MissingImagePull.pull(reference, config: handle.config, configPath: handle.path, environment: environment)
    return try validate(handle, image: reference, volumes: volumes, modules: plan.options.module, uid: uid)
}

@_cdecl("shifter_submit")
public func shifter_submit(
    _ pointer: UnsafeRawPointer?, _ jobOut: UnsafeMutablePointer<CStringArray?>?, _ srunOut: UnsafeMutablePointer<CStringArray?>?,
    _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int
) -> Int32 {
    guard let jobOut, let srunOut else {
        copyOut("shifter_submit: no place for the variables", msg, msglen)
        return shifterInvalid
    }
    jobOut.pointee = nil
    srunOut.pointee = nil
    guard let request = acceptRequest(pointer, firstVersionSize: SHIFTER_SUBMIT_REQUEST_SIZE_VER0, name: "shifter_submit",
                                      zero: shifter_submit_request(), msg, msglen) else {
        return shifterInvalid
    }
    do {
        let planned = try submission(request)
        guard handOut(planned.job.map { $0.name + "=" + $0.value }, to: jobOut),
              handOut(planned.srun.map { $0.name + "=" + $0.value }, to: srunOut) else {
            return outOfMemory([jobOut, srunOut], msg, msglen)
        }
        copyOut(planned.notice, msg, msglen)
        return shifterOK
    } catch {
        copyOut(error.message, msg, msglen)
        return error.status
    }
}

@_cdecl("shifter_step_environment")
public func shifter_step_environment(
    _ pointer: UnsafeRawPointer?, _ envOut: UnsafeMutablePointer<CStringArray?>?, _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int
) -> Int32 {
    guard let request = acceptRequest(pointer, firstVersionSize: SHIFTER_STEP_REQUEST_SIZE_VER0, name: "shifter_step_environment",
                                    zero: shifter_step_request(), msg, msglen) else {
        return shifterInvalid
    }
    guard let envOut else {
        copyOut("shifter_step_environment: no place for the variables", msg, msglen)
        return shifterInvalid
    }
    envOut.pointee = nil
    let jobID = request.job_id
    let site: SiteConfig
    do {
        site = try loadSite(request.config_path).config
    } catch {
        // A job that asked for no container must not fail for it; one that did fails in its
        // prolog, which needs the same configuration.
        log(0, "shifter: step: \(error.message)")
        return handOut([], to: envOut) ? shifterOK : outOfMemory([envOut], msg, msglen)
    }
    if let reason = JobRoot.failureReason(config: site, jobID: jobID) {
        // Failing the step would count as a launch failure and drain the node; each task reports
        // the reason on its stderr and exits instead, so the job fails with the reason in its output.
        let node = nodeName()
        log(0, "shifter: step: the prolog failed on node \(node): \(reason)")
        copyOut("shifter: the job's container could not be set up on node \(node): \(reason)", msg, msglen)
        return shifterPrologFailed
    }
    var root: (image: String, volumes: String)?
    if let state = JobRoot.state(config: site, jobID: jobID), state.uid == request.uid {
        root = (state.image.hasPrefix("/") ? "local:" + state.image : "id:" + state.image, state.volumes.joined(separator: ";"))
    }
    let stepEnvironment = environmentDictionary(strings(request.envp))
    let plan = SlurmStepEnvironment(root: root, stepEnvironment: stepEnvironment, module: string(request.module))
    if plan.ownImage, let image = plan.variables.first?.value {
        log(1, "shifter: step: job \(jobID): the step runs its own image \(image), not the prepared root's")
    }
    if site.entryMode == .userns, let container = plan.stepContainer {
        // Tasks that enter through namespaces cannot build a root: the step's is built here, as
        // root, once on this node before they start.
        let status = prepareStepRoot(request, container: container, config: site, plan: plan, msg, msglen)
        guard status == shifterOK else { return status }
    }
    return handOut(plan.variables.map { $0.name + "=" + $0.value }, to: envOut) ? shifterOK : outOfMemory([envOut], msg, msglen)
}

/// Builds the root of a step that runs its own container (`entryMode=userns`) on this node.
/// A failure is the step's, as a prolog's is the job's: each task reports it (`SHIFTER_EPROLOG`).
private func prepareStepRoot(_ request: shifter_step_request, container: (image: String, volumes: String), config: SiteConfig,
                             plan: SlurmStepEnvironment, _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int) -> Int32 {
    let node = nodeName(), place = "node \(node)"
    let jobID = request.job_id
    if let problem = plan.stepContainerProblem {
        copyOut("shifter: the step's container could not be set up on \(place): job \(jobID) step \(request.step_id): \(problem)", msg, msglen)
        return shifterPrologFailed
    }
    guard request.size >= Int(SHIFTER_STEP_REQUEST_SIZE_VER1), geteuid() == 0 else {
        // An older plugin, or a slurmstepd without privilege: nothing can be built for the tasks.
        copyOut("shifter: the step's container could not be set up on \(place): this step asks for another image or other volumes than its job's, and this node's plugin cannot build a step's container (entryMode=userns); ask for them when you submit the job", msg, msglen)
        return shifterPrologFailed
    }
    let started = MonotonicClock.seconds
    do {
        try JobRoot.prepare(config: config, jobID: jobID, stepID: request.step_id, uid: request.uid, gid: request.gid,
                            image: container.image, volumes: container.volumes,
                            modules: plan.variables.first { $0.name == "SHIFTER_MODULE" }?.value, node: node,
                            warn: { log(0, "shifter: step: job \(jobID) step \(request.step_id): \($0)") })
    } catch {
        log(0, "shifter: step: \(place): \(error.message)")
        copyOut("shifter: the step's container could not be set up on \(place): \(error.message)", msg, msglen)
        return shifterPrologFailed
    }
    let wall = Int64((MonotonicClock.seconds - started) * 1e6)
    log(1, "shifter: step: \(place): job \(jobID) step \(request.step_id): root ready in \(milliseconds(wall)) ms")
    return shifterOK
}

@_cdecl("shifter_step_end")
public func shifter_step_end(_ pointer: UnsafeRawPointer?, _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int) -> Int32 {
    guard let request = acceptRequest(pointer, firstVersionSize: SHIFTER_STEP_REQUEST_SIZE_VER0, name: "shifter_step_end",
                                      zero: shifter_step_request(), msg, msglen) else {
        return shifterInvalid
    }
    // A first-version caller built no step's root; only root can remove one.
    guard request.size >= Int(SHIFTER_STEP_REQUEST_SIZE_VER1), geteuid() == 0 else { return shifterOK }
    let site: SiteConfig
    do {
        site = try loadSite(request.config_path).config
    } catch {
        log(0, "shifter: step end: \(error.message)")
        return shifterOK
    }
    // Every step ends here, and most have no root of their own: only their names are looked for.
    guard let left = JobRoot.removeStep(config: site, jobID: request.job_id, stepID: request.step_id,
                                        warn: { log(0, "shifter: step end: job \(request.job_id) step \(request.step_id): \($0)") })
    else { return shifterOK }
    guard left.isEmpty else {
        copyOut("job \(request.job_id) step \(request.step_id): " + left.joined(separator: "; "), msg, msglen)
        return shifterSystemError
    }
    log(1, "shifter: step end: job \(request.job_id) step \(request.step_id): root removed")
    return shifterOK
}

@_cdecl("shifter_job_prolog")
public func shifter_job_prolog(
    _ config: OpaquePointer?, _ pointer: UnsafeRawPointer?, _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int
) -> Int32 {
    guard let request = acceptRequest(pointer, firstVersionSize: SHIFTER_PROLOG_REQUEST_SIZE_VER0, name: "shifter_job_prolog",
                                    zero: shifter_prolog_request(), msg, msglen) else {
        return shifterInvalid
    }
    guard let site = handle(config) else {
        copyOut("shifter_job_prolog: no configuration", msg, msglen)
        return shifterConfigError
    }
    let jobID = request.job_id
    let node = string(request.node).flatMap { $0.isEmpty ? nil : $0 }
    // The message names the node: the plugin logs it in slurmd's log, one of many nodes'.
    let place = "node \(node ?? hostName()): "
    guard let image = string(request.image), !image.isEmpty else {
        copyOut(place + "job \(jobID): no image given", msg, msglen)
        return shifterInvalid
    }
    var keys: SSHKeys?
    if let text = string(request.ssh_keys), !text.isEmpty {
        guard let decoded = SSHKeys.decode(text) else {
            copyOut(place + "job \(jobID): the job's sshd keys (SHIFTER_SSH) are not four base64 parts", msg, msglen)
            return shifterInvalid
        }
        keys = decoded
    }
    let started = MonotonicClock.seconds, startedCPU = ResourceUsage.cpuMicroseconds
    do {
        try JobRoot.prepare(config: site, jobID: jobID, uid: request.uid, gid: request.gid, image: image,
                            volumes: string(request.volumes), modules: string(request.modules), ssh: keys,
                            node: node, devices: { () throws(RuntimeError) in try prologDevices(request, config: site) },
                            warn: { log(0, "shifter: prolog: job \(jobID): \($0)") })
    } catch {
        copyOut(place + error.message, msg, msglen)
        return shifterStatus(error.kind)
    }
    // CPU time (user and system, with the helpers waited for, such as mkfs.xfs) beside wall time:
    // on nodes that share cores, wall time also counts waiting for them.
    let wall = Int64((MonotonicClock.seconds - started) * 1e6), cpu = ResourceUsage.cpuMicroseconds - startedCPU
    log(1, "shifter: prolog: node \(node ?? hostName()): job \(jobID): root ready in \(milliseconds(wall)) ms (cpu \(milliseconds(cpu)) ms)")
    return shifterOK
}

/// Microseconds as milliseconds with three decimals.
private func milliseconds(_ micros: Int64) -> String {
    let fraction = String(micros % 1000)
    return "\(micros / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
}

/// This node's name as slurmd knows it (`SLURMD_NODENAME`), else the host's.
private func nodeName() -> String {
    getenv("SLURMD_NODENAME").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? hostName()
}

private func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    return gethostname(&buffer, buffer.count - 1) == 0 ? String(cString: buffer) : "unknown"
}

/// Slurm's step id of a job's batch script.
private let slurmBatchScript: UInt32 = 0xffff_fffb

@_cdecl("shifter_task_command")
public func shifter_task_command(
    _ pointer: UnsafeRawPointer?, _ argvOut: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?,
    _ envpOut: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?,
    _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int
) -> Int32 {
    guard let request = acceptRequest(pointer, firstVersionSize: SHIFTER_TASK_REQUEST_SIZE_VER0, name: "shifter_task_command",
                                    zero: shifter_task_request(), msg, msglen) else {
        return shifterInvalid
    }
    guard let argvOut, let envpOut else {
        copyOut("shifter_task_command: no place for the command", msg, msglen)
        return shifterInvalid
    }
    argvOut.pointee = nil
    envpOut.pointee = nil
    let environment = strings(request.envp)
    var options = PyxisOptions(image: string(request.container_image), workdir: string(request.workdir),
                               environment: string(request.env_names))
    // A caller of the first version asks only for the tasks of a step with --container-image.
    if request.size >= Int(SHIFTER_TASK_REQUEST_SIZE_VER1) {
        do {
            guard let taken = try PyxisTaskPlan.taskOptions(given: options, environment: environmentDictionary(environment)) else {
                return shifterOK
            }
            options = taken
        } catch {
            copyOut(error.description, msg, msglen)
            return shifterInvalid
        }
    }
    var command: [String] = []
    if let argv = request.argv {
        for index in 0..<Int(max(0, request.argc)) { if let argument = argv[index] { command.append(String(cString: argument)) } }
    }
    let plugin = string(request.plugin_path)
    guard let shifter = PyxisTaskPlan.shifterCommand(configured: string(request.shifter_path), library: plugin) else {
        copyOut("couldn't find the shifter command: this plugin's path \(plugin ?? "(unknown)") is not PREFIX/lib/shifter/shifter_spank.so (set shifter_path= in plugstack.conf)", msg, msglen)
        return shifterConfigError
    }
    var script: String?
    if request.step_id == slurmBatchScript, let path = command.first {
        // The batch script lies in slurmd's spool directory, outside the container: it is opened
        // here, and the descriptor, left open across exec, is the path the container runs.
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            copyOut("couldn't open the batch script \(path): \(String(cString: strerror(errno)))", msg, msglen)
            return shifterSystemError
        }
        script = "/proc/self/fd/\(fd)"
    }
    let plan: PyxisTaskPlan
    do {
        plan = try PyxisTaskPlan(shifter: shifter, workdir: options.workdir, environmentNames: options.environment,
                                 command: command, environment: environment, batchScript: script)
    } catch {
        copyOut("couldn't read the task's command from Slurm: \(error)", msg, msglen)
        return shifterInvalid
    }
    guard handOut(plan.arguments, to: argvOut), handOut(plan.environment, to: envpOut) else {
        return outOfMemory([argvOut, envpOut], msg, msglen)
    }
    return shifterOK
}

@_cdecl("shifter_read_plugin_arguments")
public func shifter_read_plugin_arguments(
    _ argc: Int32, _ argv: UnsafePointer<UnsafeMutablePointer<CChar>?>?, _ out: UnsafeMutablePointer<shifter_plugin_arguments>?,
    _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int
) -> Int32 {
    guard let out, out.pointee.size >= Int(SHIFTER_PLUGIN_ARGUMENTS_SIZE_VER0) else {
        copyOut("shifter_read_plugin_arguments: no place for the arguments, or one smaller than its first version", msg, msglen)
        return shifterInvalid
    }
    var arguments: [String] = []
    for index in 0..<Int(max(0, argc)) { if let argument = argv?[index] { arguments.append(String(cString: argument)) } }
    let parsed: PluginArguments
    do {
        parsed = try PluginArguments.parse(arguments, defaultConfigPath: SiteConfigLoader.defaultPath)
    } catch {
        copyOut(error.description, msg, msglen)
        return shifterInvalid
    }
    withUnsafeMutableBytes(of: &out.pointee.config_path) { copyOut(parsed.configPath, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
    withUnsafeMutableBytes(of: &out.pointee.shifter_path) { copyOut(parsed.shifterPath ?? "", $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
    out.pointee.long_options = parsed.longOptions ? 1 : 0
    out.pointee.enable_ccm = parsed.enableCCM ? 1 : 0
    out.pointee.pyxis_compat = parsed.pyxisCompat ? 1 : 0
    copyOut("", msg, msglen)
    return shifterOK
}

/// `strings` as a NULL-ended array the caller frees with `shifter_strings_free`; nil, with nothing
/// left allocated, when memory ran out (never a shorter list).
private func cStrings(_ strings: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? {
    guard let array = malloc((strings.count + 1) * MemoryLayout<UnsafeMutablePointer<CChar>?>.stride)?
        .bindMemory(to: UnsafeMutablePointer<CChar>?.self, capacity: strings.count + 1) else { return nil }
    for (index, text) in strings.enumerated() {
        guard let copy = strdup(text) else {
            array[index] = nil
            shifter_strings_free(array)
            return nil
        }
        array[index] = copy
    }
    array[strings.count] = nil
    return array
}

/// Hands `strings` to the caller through `out`; false when memory ran out.
private func handOut(_ strings: [String], to out: UnsafeMutablePointer<CStringArray?>) -> Bool {
    out.pointee = cStrings(strings)
    return out.pointee != nil
}

/// Takes back what was handed out through `outs` and says memory ran out.
private func outOfMemory(_ outs: [UnsafeMutablePointer<CStringArray?>], _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int) -> Int32 {
    for out in outs {
        shifter_strings_free(out.pointee)
        out.pointee = nil
    }
    copyOut("out of memory for the variables and arguments handed to the plugin", msg, msglen)
    return shifterSystemError
}

private func strings(_ array: UnsafePointer<UnsafeMutablePointer<CChar>?>?) -> [String] {
    var result: [String] = []
    guard var cursor = array else { return result }
    while let entry = cursor.pointee {
        result.append(String(cString: entry))
        cursor += 1
    }
    return result
}

@_cdecl("shifter_strings_free")
public func shifter_strings_free(_ array: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
    guard let array else { return }
    var index = 0
    while let entry = array[index] {
        explicit_bzero(entry, strlen(entry))
        free(entry)
        index += 1
    }
    free(array)
}

@_cdecl("shifter_ssh_keys")
public func shifter_ssh_keys(
    _ config: OpaquePointer?, _ keys: UnsafeMutablePointer<CChar>?, _ keysLength: Int,
    _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int
) -> Int32 {
    guard let site = handle(config) else {
        copyOut("shifter_ssh_keys: no configuration", msg, msglen)
        return shifterConfigError
    }
    guard site.sshPath != nil else {
        copyOut("--ccm: this site has no sshd for containers (sshPath is not set in udiRoot.conf)", msg, msglen)
        return shifterInvalid
    }
    do {
        let made = try ContainerSSH.makeKeys(config: site)
        guard copyOut(made.encoded, keys, keysLength) else {
            copyOut("--ccm: the job's keys do not fit in \(keysLength) bytes", msg, msglen)
            return shifterSystemError
        }
        return shifterOK
    } catch {
        copyOut(error.message, msg, msglen)
        return shifterStatus(error.kind)
    }
}

@_cdecl("shifter_job_epilog")
public func shifter_job_epilog(_ config: OpaquePointer?, _ jobID: UInt32,
                               _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int) -> Int32 {
    guard let site = handle(config) else {
        copyOut("shifter_job_epilog: no configuration", msg, msglen)
        return shifterConfigError
    }
    // The prolog named the job's sshd cgroup by the node's name, which slurmd gives both.
    let node = getenv("SLURMD_NODENAME").map { String(cString: $0) }
    let problems = JobRoot.remove(config: site, jobID: jobID, node: node,
                                  warn: { log(0, "shifter: epilog: job \(jobID): \($0)") })
    if problems.isEmpty { return shifterOK }
    for problem in problems { log(0, "shifter: epilog: job \(jobID): \(problem)") }
    copyOut("job \(jobID): " + problems.joined(separator: "; "), msg, msglen)
    return shifterSystemError
}

@_cdecl("shifter_job_status")
public func shifter_job_status(
    _ config: OpaquePointer?, _ jobID: UInt32, _ uid: UInt32, _ imageID: UnsafeMutablePointer<CChar>?,
    _ imageIDLength: Int, _ volumes: UnsafeMutablePointer<CChar>?, _ volumesLength: Int,
    _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int
) -> Int32 {
    guard let site = handle(config) else {
        copyOut("shifter_job_status: no configuration", msg, msglen)
        return shifterConfigError
    }
    if let reason = JobRoot.failureReason(config: site, jobID: jobID) {
        copyOut(reason, msg, msglen)
        return shifterPrologFailed
    }
    guard let state = JobRoot.state(config: site, jobID: jobID), state.uid == uid else {
        copyOut("job \(jobID) has no prepared root on this node", msg, msglen)
        return shifterNotFound
    }
    guard copyOut(state.image.hasPrefix("/") ? "local:" + state.image : "id:" + state.image, imageID, imageIDLength),
          copyOut(state.volumes.joined(separator: ";"), volumes, volumesLength) else {
        copyOut("job \(jobID): the prepared root's image or volume list is too long for the caller's buffer", msg, msglen)
        return shifterSystemError
    }
    return shifterOK
}

@_cdecl("shifter_main")
public func shifter_main(_ argc: Int32, _ argv: UnsafePointer<UnsafeMutablePointer<CChar>?>?,
                         _ envp: UnsafePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var arguments: [String] = []
    if let argv {
        for index in 1..<max(1, Int(argc)) { if let argument = argv[index] { arguments.append(String(cString: argument)) } }
    }
    let environment = strings(envp)
    return ContainerLauncher.run(arguments: arguments, environment: environment)
}
