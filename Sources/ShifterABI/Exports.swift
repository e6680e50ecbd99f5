// The C ABI of include/shifter.h. Every export catches every error and never traps: this code runs
// inside slurmd and slurmstepd, where a trap kills the node's jobs.
#if canImport(Glibc)
import Glibc
#endif
import ShifterCore
import ShifterRuntime
import ShifterSystem

private let shifterOK: Int32 = 0
private let shifterConfigError: Int32 = -1
private let shifterInvalid: Int32 = -2
private let shifterSystemError: Int32 = -3
private let shifterNotFound: Int32 = -4
private let shifterPrologFailed: Int32 = -5

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

@_cdecl("shifter_request_validate")
public func shifter_request_validate(
    _ config: OpaquePointer?, _ image: UnsafePointer<CChar>?, _ volumes: UnsafePointer<CChar>?,
    _ modules: UnsafePointer<CChar>?, _ uid: UInt32, _ imageID: UnsafeMutablePointer<CChar>?, _ imageIDLength: Int,
    _ volumesOut: UnsafeMutablePointer<CChar>?, _ volumesOutLength: Int,
    _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int
) -> Int32 {
    guard let handle = configHandle(config) else {
        copyOut("shifter_request_validate: no configuration", msg, msglen)
        return shifterConfigError
    }
    let site = handle.config
    guard let image = string(image), !image.isEmpty else {
        copyOut("no image given", msg, msglen)
        return shifterInvalid
    }
    do {
        let groups = try JobRootGroups.of(uid: uid, config: site)
        let request = try JobRoot.validate(config: site, configPath: handle.path, image: image, volumes: string(volumes),
                                           modules: string(modules), uid: uid, groups: groups)
        return copyRequest(request.image, request.volumes, imageID, imageIDLength, volumesOut, volumesOutLength, msg, msglen)
    } catch {
        copyOut(error.message, msg, msglen)
        return shifterInvalid
    }
}

@_cdecl("shifter_pyxis_request")
public func shifter_pyxis_request(
    _ config: OpaquePointer?, _ image: UnsafePointer<CChar>?, _ mounts: UnsafePointer<CChar>?, _ workdir: UnsafePointer<CChar>?,
    _ environment: UnsafePointer<CChar>?, _ mountHome: Int32, _ remapRoot: Int32, _ uid: UInt32,
    _ imageOut: UnsafeMutablePointer<CChar>?, _ imageOutLength: Int, _ volumesOut: UnsafeMutablePointer<CChar>?,
    _ volumesOutLength: Int, _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int
) -> Int32 {
    let options = PyxisOptions(
        image: string(image), mounts: string(mounts), workdir: string(workdir), environment: string(environment),
        mountHome: mountHome < 0 ? nil : mountHome != 0, remapRoot: remapRoot != 0)
    guard let site = handle(config) else {
        copyOut("shifter_pyxis_request: no configuration", msg, msglen)
        return shifterConfigError
    }
    // The host directories every container shows at their own paths: the site's, and /tmp, which
    // the container gets unless the site mounts something else there.
    var sitePaths = site.siteFs.filter { $0.source == $0.target }.map(\.target)
    if !site.siteFs.contains(where: { $0.target == "/tmp" }) { sitePaths.append("/tmp") }
    let home = try? Credentials.passwdEntry(uid: uid).home
    var cwdBuffer = [CChar](repeating: 0, count: 4096)
    let currentDirectory = getcwd(&cwdBuffer, cwdBuffer.count) != nil ? String(cString: cwdBuffer) : nil
    do {
        let request = try options.request(home: home, currentDirectory: currentDirectory, sitePaths: sitePaths) { path in
            var status = stat()
            return stat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFDIR
        }
        return copyRequest(request.image, request.volumes, imageOut, imageOutLength, volumesOut, volumesOutLength, msg, msglen)
    } catch {
        copyOut(error.description, msg, msglen)
        return shifterInvalid
    }
}

@_cdecl("shifter_job_prolog")
public func shifter_job_prolog(
    _ config: OpaquePointer?, _ jobID: UInt32, _ uid: UInt32, _ gid: UInt32, _ image: UnsafePointer<CChar>?,
    _ volumes: UnsafePointer<CChar>?, _ modules: UnsafePointer<CChar>?,
    _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int
) -> Int32 {
    shifter_job_prolog_ssh(config, jobID, uid, gid, image, volumes, modules, nil, nil, msg, msglen)
}

@_cdecl("shifter_job_prolog_ssh")
public func shifter_job_prolog_ssh(
    _ config: OpaquePointer?, _ jobID: UInt32, _ uid: UInt32, _ gid: UInt32, _ image: UnsafePointer<CChar>?,
    _ volumes: UnsafePointer<CChar>?, _ modules: UnsafePointer<CChar>?, _ sshKeys: UnsafePointer<CChar>?,
    _ node: UnsafePointer<CChar>?, _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int
) -> Int32 {
    guard let site = handle(config) else {
        copyOut("shifter_job_prolog: no configuration", msg, msglen)
        return shifterConfigError
    }
    guard let image = string(image), !image.isEmpty else {
        copyOut("job \(jobID): no image given", msg, msglen)
        return shifterInvalid
    }
    var keys: SSHKeys?
    if let text = string(sshKeys), !text.isEmpty {
        guard let decoded = SSHKeys.decode(text) else {
            copyOut("job \(jobID): the job's sshd keys (SHIFTER_SSH) are not four base64 parts", msg, msglen)
            return shifterInvalid
        }
        keys = decoded
    }
    do {
        try JobRoot.prepare(config: site, jobID: jobID, uid: uid, gid: gid, image: image,
                            volumes: string(volumes), modules: string(modules), ssh: keys,
                            node: string(node).flatMap { $0.isEmpty ? nil : $0 },
                            warn: { log(0, "shifter: prolog: job \(jobID): \($0)") })
        return shifterOK
    } catch {
        copyOut(error.message, msg, msglen)
        return shifterSystemError
    }
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
        return shifterSystemError
    }
}

@_cdecl("shifter_job_epilog")
public func shifter_job_epilog(_ config: OpaquePointer?, _ jobID: UInt32,
                               _ msg: UnsafeMutablePointer<CChar>?, _ msglen: Int) -> Int32 {
    guard let site = handle(config) else {
        copyOut("shifter_job_epilog: no configuration", msg, msglen)
        return shifterConfigError
    }
    let problems = JobRoot.remove(config: site, jobID: jobID, warn: { log(0, "shifter: epilog: job \(jobID): \($0)") })
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
    var environment: [String] = []
    if var cursor = envp {
        while let entry = cursor.pointee {
            environment.append(String(cString: entry))
            cursor += 1
        }
    }
    return ContainerLauncher.run(arguments: arguments, environment: environment)
}
