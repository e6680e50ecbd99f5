/// Turns the polled state of a pull at the image gateway into what `pull` prints: on a terminal, one
/// line per status, the current one redrawn with its byte counts; in a pipe, a plain
/// `progress status=... received=... total=... message=...` line whenever something changed.
///
/// The gateway reports one byte total per pull, not per layer, so that is what is shown.
public struct GatewayPullProgress: Sendable {
    /// What one poll of the gateway's record says.
    public struct Snapshot: Sendable, Equatable {
        /// The record's status (`PENDING`, `PULLING`, `CONVERSION`, ...).
        public var status: String
        /// Bytes downloaded so far, once the pull runs.
        public var received: Int64?
        /// Bytes to download in all, once the reference is resolved.
        public var total: Int64?
        /// What the gateway says the pull is doing.
        public var message: String

        /// A snapshot.
        public init(status: String, received: Int64? = nil, total: Int64? = nil, message: String = "") {
            self.status = status
            self.received = received
            self.total = total
            self.message = message
        }
    }

    /// What one recorded snapshot changed.
    public struct Update: Sendable, Equatable {
        /// Lines for a pipe: one when anything changed, else none.
        public var plainLines: [String]
        /// Whether the status changed, so a terminal keeps the old line and starts a new one.
        public var statusChanged: Bool
        /// Whether anything changed, so a terminal redraws the current line.
        public var changed: Bool
    }

    private let name: String
    private var current: Snapshot?

    /// Progress for a pull of `name` (the gateway's `TYPE:TAG`).
    public init(name: String) {
        self.name = name
    }

    /// Records a poll.
    public mutating func record(_ snapshot: Snapshot) -> Update {
        let previous = current
        // The gateway reports byte counts only while the pull runs, and the total not before the
        // reference is resolved: a count it stops sending keeps the value last shown, except that
        // `received` starts over with each status.
        var merged = snapshot
        if merged.received == nil, previous?.status == snapshot.status { merged.received = previous?.received }
        if merged.total == nil { merged.total = previous?.total }
        guard merged != previous else { return Update(plainLines: [], statusChanged: false, changed: false) }
        current = merged
        var line = "progress status=\(merged.status) received=\(merged.received.map(String.init) ?? "-") total=\(merged.total.map(String.init) ?? "-")"
        let message = Self.singleLine(merged.message)
        if !message.isEmpty { line += " message=" + message }
        return Update(plainLines: [line], statusChanged: previous?.status != merged.status, changed: true)
    }

    /// The terminal line for the current state: name, status, bytes and percentage, message.
    public func terminalLine(width: Int = 100) -> String {
        guard let current else { return name }
        var line = "\(name)  \(current.status)"
        if let received = current.received {
            line += "  " + PullProgress.formatBytes(received)
            if let total = current.total, total > 0 {
                line += " / " + PullProgress.formatBytes(total) + " (\(min(100, received * 100 / total))%)"
            }
        } else if let total = current.total {
            line += "  " + PullProgress.formatBytes(total)
        }
        let message = Self.singleLine(current.message)
        if !message.isEmpty { line += "  " + message }
        return String(line.prefix(max(20, width - 1)))
    }

    /// `text` with control characters (newlines, escapes) replaced by spaces, so one message stays
    /// one line and cannot move the cursor.
    static func singleLine(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : $0 }))
    }
}
