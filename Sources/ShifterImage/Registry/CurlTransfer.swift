import CCurl

/// Receives a successful response's body as it arrives.
protocol ResponseBodySink: AnyObject {
    func receive(_ bytes: UnsafeRawBufferPointer) throws(ImageImportError)
}

/// Collects a small body in memory, failing once it passes `limit` bytes.
final class MemoryBodySink: ResponseBodySink {
    private(set) var bytes: [UInt8] = []
    let limit: Int
    let what: String

    init(limit: Int, what: String) {
        self.limit = limit
        self.what = what
    }

    func receive(_ chunk: UnsafeRawBufferPointer) throws(ImageImportError) {
        if bytes.count + chunk.count > limit {
            throw ImageImportError(.invalidManifest, "\(what): larger than the limit of \(limit) bytes")
        }
        bytes.append(contentsOf: chunk)
    }

    func resetBytes() {
        bytes.removeAll(keepingCapacity: true)
    }
}

/// The status line and headers of a response, and the start of its body when it was an error.
struct HTTPResponse {
    var status: Int
    /// Header names are lowercased.
    var headers: [(name: String, value: String)]
    /// The absolute target of a redirect, if the response is one.
    var redirectURL: String?
    /// Up to 64 KiB of a non-2xx response's body, for the registry's error message.
    var errorBody: [UInt8]

    func header(_ name: String) -> String? {
        headers.last { $0.name == name }?.value
    }

    func headerValues(_ name: String) -> [String] {
        headers.filter { $0.name == name }.map(\.value)
    }
}

/// A transfer that failed below HTTP: no connection, TLS failure, timeout, broken transfer.
struct TransportFailure: Error {
    /// The libcurl result code.
    var code: CURLcode
    /// libcurl's message, or the sink's error text when the sink aborted the transfer.
    var message: String
    /// The error the body sink threw, which is reported as it is rather than as a transport failure.
    var sinkError: ImageImportError?

    /// Whether trying again may help: connection and timeout failures, broken transfers.
    var isTransient: Bool {
        guard sinkError == nil else { return false }
        switch code {
        case CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT, CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING,
             CURLE_PARTIAL_FILE, CURLE_HTTP2, CURLE_HTTP2_STREAM, CURLE_SSL_CONNECT_ERROR, CURLE_COULDNT_RESOLVE_HOST:
            return true
        default:
            return false
        }
    }
}

/// Transport settings shared by every request of an import.
public struct TransportOptions: Sendable, Equatable {
    /// A PEM file of CA certificates to trust instead of the system's, such as a site CA bundle.
    public var caBundle: String?
    /// Seconds allowed to connect.
    public var connectTimeout: Int
    /// Seconds a transfer may stall (below 1 byte per second) before it is abandoned.
    public var stallTimeout: Int
    /// How many times a request is tried in all, on connection failures, 429 and 5xx answers.
    public var attempts: Int
    /// Seconds before the first retry; it doubles after each.
    public var initialBackoff: Double

    /// Creates options; by default the system CA store, 4 attempts and 0.5 s first backoff.
    public init(caBundle: String? = nil, connectTimeout: Int = 30, stallTimeout: Int = 60, attempts: Int = 4, initialBackoff: Double = 0.5) {
        self.caBundle = caBundle
        self.connectTimeout = connectTimeout
        self.stallTimeout = stallTimeout
        self.attempts = max(1, attempts)
        self.initialBackoff = initialBackoff
    }
}

/// libcurl needs one global initialisation before any thread creates a handle.
private let curlGlobalInitialisation: CURLcode = curl_global_init(Int(CURL_GLOBAL_DEFAULT))

/// One libcurl easy handle, used for one request at a time, with redirects left to the caller so
/// that it decides which headers a redirect keeps.
final class CurlTransfer {
    private let handle: UnsafeMutableRawPointer
    private let options: TransportOptions

    init(options: TransportOptions) throws(ImageImportError) {
        guard curlGlobalInitialisation == CURLE_OK, let handle = curl_easy_init() else {
            throw ImageImportError(.io, "cannot initialise libcurl")
        }
        self.handle = handle
        self.options = options
    }

    deinit {
        curl_easy_cleanup(handle)
    }

    /// Performs one GET (or HEAD) without following redirects. A 2xx body goes to `sink`.
    func perform(url: String, headers: [String], head: Bool = false, sink: ResponseBodySink?) throws(TransportFailure) -> HTTPResponse {
        curl_easy_reset(handle)
        let context = TransferContext(sink: sink)
        let unmanaged = Unmanaged.passRetained(context)
        defer { unmanaged.release() }
        var headerList: UnsafeMutablePointer<curl_slist>?
        for header in headers { headerList = curl_slist_append(headerList, header) }
        defer { curl_slist_free_all(headerList) }
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)

        let result: CURLcode = errorBuffer.withUnsafeMutableBufferPointer { errorText in
            var status = shifter_curl_setopt_pointer(handle, CURLOPT_URL, url)
            func set(_ option: CURLoption, _ value: Int) {
                if status == CURLE_OK { status = shifter_curl_setopt_long(handle, option, value) }
            }
            func set(_ option: CURLoption, pointer: UnsafeRawPointer?) {
                if status == CURLE_OK { status = shifter_curl_setopt_pointer(handle, option, pointer) }
            }
            set(CURLOPT_NOSIGNAL, 1)
            set(CURLOPT_FOLLOWLOCATION, 0)
            set(CURLOPT_NOBODY, head ? 1 : 0)
            set(CURLOPT_CONNECTTIMEOUT, options.connectTimeout)
            set(CURLOPT_LOW_SPEED_LIMIT, 1)
            set(CURLOPT_LOW_SPEED_TIME, options.stallTimeout)
            set(CURLOPT_HTTPHEADER, pointer: headerList.map { UnsafeRawPointer($0) })
            set(CURLOPT_ERRORBUFFER, pointer: errorText.baseAddress.map { UnsafeRawPointer($0) })
            set(CURLOPT_WRITEDATA, pointer: unmanaged.toOpaque())
            set(CURLOPT_HEADERDATA, pointer: unmanaged.toOpaque())
            if status == CURLE_OK { status = shifter_curl_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION, curlWriteCallback) }
            if status == CURLE_OK { status = shifter_curl_setopt_data_callback(handle, CURLOPT_HEADERFUNCTION, curlHeaderCallback) }
            if status == CURLE_OK { status = shifter_curl_setopt_pointer(handle, CURLOPT_PROTOCOLS_STR, "https,http") }
            if status == CURLE_OK { status = shifter_curl_setopt_pointer(handle, CURLOPT_USERAGENT, "shifterimg") }
            if status == CURLE_OK, let caBundle = options.caBundle {
                status = shifter_curl_setopt_pointer(handle, CURLOPT_CAINFO, caBundle)
            }
            if status != CURLE_OK { return status }
            return curl_easy_perform(handle)
        }

        if result != CURLE_OK {
            if let sinkError = context.sinkError {
                throw TransportFailure(code: result, message: sinkError.message, sinkError: sinkError)
            }
            let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw TransportFailure(code: result, message: detail.isEmpty ? String(cString: curl_easy_strerror(result)) : detail)
        }
        var code = 0
        _ = shifter_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code)
        var redirect: UnsafePointer<CChar>?
        _ = shifter_curl_getinfo_string(handle, CURLINFO_REDIRECT_URL, &redirect)
        return HTTPResponse(
            status: code, headers: context.headers, redirectURL: redirect.map { String(cString: $0) }, errorBody: context.errorBody)
    }
}

/// What the callbacks of one transfer share with it.
private final class TransferContext {
    let sink: ResponseBodySink?
    var status = 0
    var headers: [(name: String, value: String)] = []
    var errorBody: [UInt8] = []
    var sinkError: ImageImportError?

    init(sink: ResponseBodySink?) {
        self.sink = sink
    }
}

private let curlWriteCallback: @convention(c) (UnsafeMutablePointer<CChar>, Int, Int, UnsafeMutableRawPointer?) -> Int = {
    data, size, count, user in
    guard let user else { return 0 }
    let context = Unmanaged<TransferContext>.fromOpaque(user).takeUnretainedValue()
    let bytes = UnsafeRawBufferPointer(start: data, count: size * count)
    if (200..<300).contains(context.status) {
        guard let sink = context.sink else { return bytes.count }
        do throws(ImageImportError) {
            try sink.receive(bytes)
        } catch {
            // Returning a short count makes libcurl abort with CURLE_WRITE_ERROR.
            context.sinkError = error
            return 0
        }
    } else if context.errorBody.count < 65536 {
        context.errorBody.append(contentsOf: bytes.prefix(65536 - context.errorBody.count))
    }
    return bytes.count
}

private let curlHeaderCallback: @convention(c) (UnsafeMutablePointer<CChar>, Int, Int, UnsafeMutableRawPointer?) -> Int = {
    data, size, count, user in
    guard let user else { return 0 }
    let context = Unmanaged<TransferContext>.fromOpaque(user).takeUnretainedValue()
    let length = size * count
    let line = String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
        .trimmingScalars { $0 == " " || $0 == "\r" || $0 == "\n" || $0 == "\t" }
    if line.hasPrefix("HTTP/") {
        // A new response (an interim 1xx or the final one) starts; keep only the last one's headers.
        let parts = line.split(separator: " ")
        context.status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        context.headers.removeAll()
    } else if let colon = line.firstIndex(of: ":") {
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingScalars { $0 == " " || $0 == "\t" }
        context.headers.append((name: name, value: value))
    }
    return length
}

/// Parts of a URL, read with libcurl's URL parser.
struct URLParts: Equatable {
    var scheme: String
    var host: String
    var port: String

    /// Parses `url`, or returns `nil` if libcurl cannot.
    init?(_ url: String) {
        guard let parsed = curl_url() else { return nil }
        defer { curl_url_cleanup(parsed) }
        guard curl_url_set(parsed, CURLUPART_URL, url, 0) == CURLUE_OK else { return nil }
        func part(_ which: CURLUPart, _ flags: UInt32 = 0) -> String? {
            var text: UnsafeMutablePointer<CChar>?
            guard curl_url_get(parsed, which, &text, flags) == CURLUE_OK, let text else { return nil }
            defer { curl_free(text) }
            return String(cString: text)
        }
        guard let scheme = part(CURLUPART_SCHEME), let host = part(CURLUPART_HOST),
            let port = part(CURLUPART_PORT, UInt32(CURLU_DEFAULT_PORT))
        else { return nil }
        self.scheme = scheme.lowercased()
        self.host = host.lowercased()
        self.port = port
    }

    /// `url` with `items` appended to its query, each encoded by libcurl.
    static func appendingQuery(_ url: String, _ items: [(String, String)]) -> String? {
        guard let parsed = curl_url() else { return nil }
        defer { curl_url_cleanup(parsed) }
        guard curl_url_set(parsed, CURLUPART_URL, url, 0) == CURLUE_OK else { return nil }
        for (name, value) in items {
            let flags = UInt32(CURLU_APPENDQUERY) | UInt32(CURLU_URLENCODE)
            guard curl_url_set(parsed, CURLUPART_QUERY, name + "=" + value, flags) == CURLUE_OK else { return nil }
        }
        var text: UnsafeMutablePointer<CChar>?
        guard curl_url_get(parsed, CURLUPART_URL, &text, 0) == CURLUE_OK, let text else { return nil }
        defer { curl_free(text) }
        return String(cString: text)
    }
}
