#if canImport(Glibc)
import Glibc
#endif

/// Standard output or standard error, written unbuffered with `write(2)` so that progress and
/// errors appear at once. `FileHandle` would do, but it needs full Foundation, which links ICU's
/// data into shifterimg.
enum StandardStream {
    case output
    case error

    private var descriptor: Int32 {
        switch self {
        case .output: STDOUT_FILENO
        case .error: STDERR_FILENO
        }
    }

    /// Writes all of `text`, retrying short writes and interrupted ones. A stream that cannot be
    /// written (closed, or a full disk) loses the text, as with `print`. The corresponding C
    /// function is `write(2)`.
    func write(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let count = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return }
            bytes = bytes.dropFirst(count)
        }
    }
}
