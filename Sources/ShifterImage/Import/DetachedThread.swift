#if canImport(Glibc)
import Glibc
#endif

/// Starts threads that run one closure each and are never joined, such as the layer download
/// threads. `Thread` would do, but it needs full Foundation, which links ICU's data.
public enum DetachedThread {
    /// Runs `body` on a new detached thread; `purpose` names it in the error, as in "cannot start
    /// a download thread". The corresponding C functions are `pthread_create(3)` and
    /// `pthread_detach(3)`.
    public static func start(_ purpose: String, _ body: @escaping @Sendable () -> Void) throws(ImageImportError) {
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(&thread, nil, runBody, context)
        guard status == 0 else {
            Unmanaged<Body>.fromOpaque(context).release()
            throw ImageImportError(.io, "cannot start a \(purpose) thread: \(String(cString: strerror(status)))")
        }
        pthread_detach(thread)
    }

    /// The closure, boxed so that it can pass through `pthread_create`'s `void *` argument.
    private final class Body {
        let run: @Sendable () -> Void

        init(_ run: @escaping @Sendable () -> Void) {
            self.run = run
        }
    }

    private static let runBody: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? = { context in
        guard let context else { return nil }
        Unmanaged<Body>.fromOpaque(context).takeRetainedValue().run()
        return nil
    }
}
