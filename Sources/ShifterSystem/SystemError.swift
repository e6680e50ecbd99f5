#if canImport(Glibc)
import Glibc
#endif

/// A failed Linux call: what was attempted, on what, and the errno the kernel gave.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    /// The operation, as a user would name it: "mount", "attach loop device".
    public var operation: String
    /// The object the operation was applied to, usually a path.
    public var subject: String
    /// The errno value (positive).
    public var errno: Int32

    public init(_ operation: String, _ subject: String, errno: Int32) {
        self.operation = operation
        self.subject = subject
        self.errno = errno
    }

    /// The C library's text for the errno, as `strerror(3)` gives it.
    public var reason: String { String(cString: strerror(errno)) }

    public var description: String { "\(operation) \(subject): \(reason)" }
}
