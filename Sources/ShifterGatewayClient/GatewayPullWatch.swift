#if canImport(Glibc)
import Glibc
#endif

/// Follows one pull the gateway accepted until it ends.
///
/// A tag can have several records at the gateway: the public one and users' private ones. A lookup
/// answers with the record the caller would use (a READY one first), which need not be the record
/// this pull updates. So a lookup counts only when it shows this pull's record (same type, tag and
/// ACLs); otherwise the queue, then the list of READY images, say where this pull stands.
public struct GatewayPullWatch: Sendable {
    /// Where the pull stands after one poll.
    public enum Step: Sendable, Equatable {
        /// Queued or running; the record has the status, message and byte counts.
        case running(GatewayImageRecord)
        /// The image is ready.
        case ready(GatewayImageRecord)
        /// The pull ended without an image, for this reason.
        case failed(String)
        /// The lookup showed another record of the tag, or none: ask the queue and the list.
        case undecided
    }

    /// The record as the gateway answered the pull request.
    public let requested: GatewayImageRecord

    /// Follows the pull that answered `requested`.
    public init(requested: GatewayImageRecord) {
        self.requested = requested
    }

    /// Whether `record` is the one this pull updates: same type, tag, users and groups.
    public func isSame(_ record: GatewayImageRecord) -> Bool {
        record.itype == requested.itype && record.tag == requested.tag && Set(record.userACL) == Set(requested.userACL)
            && Set(record.groupACL) == Set(requested.groupACL)
    }

    /// What a lookup answer says; nil means the lookup found nothing (404).
    public func step(lookup record: GatewayImageRecord?) -> Step {
        guard let record, isSame(record) else { return .undecided }
        return step(of: record)
    }

    /// What the queue and the list of READY images say, when the lookup could not.
    public func step(queue: [GatewayImageRecord], list: [GatewayImageRecord]) -> Step {
        if let running = queue.first(where: isSame) { return .running(running) }
        if let ready = list.first(where: { isSame($0) && $0.status == .ready }) { return .ready(ready) }
        let access = requested.isPrivate ? "this private" : "the public"
        return .failed("the pull ended, but the gateway shows no ready image of \(requested.itype):\(requested.tag) with \(access) access")
    }

    /// The step a record of this pull stands at.
    public func step(of record: GatewayImageRecord) -> Step {
        switch record.status {
        case .ready:
            return .ready(record)
        case .failure:
            return .failed(record.statusMessage.isEmpty ? "the pull failed without a reason" : record.statusMessage)
        case .expired:
            return .failed("the image was expired while it was pulled\(record.statusMessage.isEmpty ? "" : ": " + record.statusMessage)")
        case .pending, .pulling, .conversion, .initial:
            return .running(record)
        }
    }

    /// Polls until the pull ends: `lookup` (nil for 404) every `interval` seconds, with `queue` and
    /// `list` when the lookup shows another record. Each running record goes to `update`. Returns
    /// the READY record; a failed pull throws `.pullFailed` with the gateway's reason.
    public func follow(
        interval: Double,
        lookup: () throws(GatewayClientError) -> GatewayImageRecord?,
        queue: () throws(GatewayClientError) -> [GatewayImageRecord],
        list: () throws(GatewayClientError) -> [GatewayImageRecord],
        wait: (Double) -> Void,
        update: (GatewayImageRecord) -> Void
    ) throws(GatewayClientError) -> GatewayImageRecord {
        var next = step(of: requested)
        while true {
            switch next {
            case .ready(let record):
                return record
            case .failed(let reason):
                throw GatewayClientError(
                    .pullFailed, "pull of \(requested.itype):\(requested.tag) failed at the gateway: \(reason)", detail: reason)
            case .running(let record):
                update(record)
                wait(interval)
                next = step(lookup: try lookup())
            case .undecided:
                next = step(queue: try queue(), list: try list())
            }
        }
    }
}

extension GatewayClient {
    /// Waits for the pull that answered `requested` to end, polling every `interval` seconds; see
    /// `GatewayPullWatch`. Returns the READY record.
    public func waitForPull(
        _ requested: GatewayImageRecord, interval: Double = 0.5, update: (GatewayImageRecord) -> Void
    ) throws(GatewayClientError) -> GatewayImageRecord {
        try GatewayPullWatch(requested: requested).follow(
            interval: interval,
            lookup: { () throws(GatewayClientError) -> GatewayImageRecord? in
                do throws(GatewayClientError) {
                    return try lookup(type: requested.itype, tag: requested.tag)
                } catch {
                    if error.httpStatus == 404 { return nil }
                    throw error
                }
            },
            queue: { () throws(GatewayClientError) in try queue() },
            list: { () throws(GatewayClientError) in try list() },
            wait: { seconds in
                // nanosleep(2) leaves the time still to sleep in its second argument after EINTR.
                var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
                var remaining = timespec()
                while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
            },
            update: update)
    }
}
