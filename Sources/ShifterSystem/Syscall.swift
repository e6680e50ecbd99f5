#if canImport(Glibc)
import Glibc
#endif

/// Runs a libc call that returns -1 and sets errno on failure, retrying it while it is interrupted
/// by a signal. This is the only place EINTR is retried.
@inline(__always)
func retryingInterrupts(_ body: () -> Int32) -> (result: Int32, errno: Int32) {
    while true {
        let result = body()
        if result != -1 { return (result, 0) }
        let error = Glibc.errno
        if error != EINTR { return (result, error) }
    }
}

/// Runs a libc call that returns -1 and sets errno on failure; throws a `SystemError` naming the
/// operation and its subject when it fails.
@discardableResult
func check(_ operation: String, _ subject: String, _ body: () -> Int32) throws(SystemError) -> Int32 {
    let (result, error) = retryingInterrupts(body)
    if result == -1 { throw SystemError(operation, subject, errno: error) }
    return result
}

/// Throws for a C shim result: 0 or positive is success, -errno is failure.
@discardableResult
func checkShim(_ operation: String, _ subject: String, _ result: Int32) throws(SystemError) -> Int32 {
    if result < 0 { throw SystemError(operation, subject, errno: -result) }
    return result
}
