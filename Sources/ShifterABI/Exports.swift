// The C ABI of include/shifter.h. Every export catches every error and never traps: this code runs
// inside slurmd and slurmstepd, where a trap kills the node's jobs.
import ShifterCore
import ShifterRuntime

/// `const char *shifter_version(void)`: the library version, a static string.
@_cdecl("shifter_version")
public func shifter_version() -> UnsafePointer<CChar> {
    return versionCString
}

nonisolated(unsafe) private let versionCString: UnsafePointer<CChar> = {
    let bytes = Array(ShifterVersion.string.utf8CString)
    let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
    buffer.initialize(from: bytes, count: bytes.count)
    return UnsafePointer(buffer)
}()
