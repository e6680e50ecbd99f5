import ShifterCore
import Synchronization

/// The gateway's Prometheus metrics, rendered in the text exposition format (version 0.0.4).
///
/// Counters live in memory and restart at zero with the process, as Prometheus expects.
public final class GatewayMetrics: Sendable {
    /// How a pull request ended.
    public enum PullOutcome: String, Sendable, CaseIterable {
        /// The image was pulled (or found already converted) and is READY.
        case ready
        /// The pull failed.
        case failure
        /// The request joined a pull of the same tag already queued or running.
        case joined
        /// The tag was pulled within the minimum interval, so nothing was done.
        case skipped
    }

    /// Upper bounds, in seconds, of the pull duration histogram buckets.
    static let durationBuckets: [Double] = [1, 5, 15, 30, 60, 120, 300, 600, 1800]

    private struct State {
        var pulls: [PullOutcome: Int] = [:]
        var durationCounts: [Int]
        var durationSum = 0.0
        var durationCount = 0
        var bytesPulled: Int64 = 0
        var lookupsFound = 0
        var lookupsMissing = 0
        var requests: [Int: Int] = [:]
        var autoexpireRuns = 0
        var autoexpireFailedRuns = 0
        var autoexpiredImages = 0
        var signatureRefusals: [SignatureRefusal.Kind: Int] = [:]

        init() { durationCounts = Array(repeating: 0, count: GatewayMetrics.durationBuckets.count) }
    }

    private let state = Mutex(State())

    /// Empty metrics.
    public init() {}

    /// Counts a pull request's outcome.
    func countPull(_ outcome: PullOutcome) {
        state.withLock { $0.pulls[outcome, default: 0] += 1 }
    }

    /// Records a finished pull's duration and downloaded bytes.
    func recordPull(seconds: Double, bytes: Int64) {
        state.withLock { state in
            for (index, bound) in Self.durationBuckets.enumerated() where seconds <= bound {
                state.durationCounts[index] += 1
            }
            state.durationSum += seconds
            state.durationCount += 1
            state.bytesPulled += bytes
        }
    }

    /// Counts a lookup.
    func countLookup(found: Bool) {
        state.withLock { found ? ($0.lookupsFound += 1) : ($0.lookupsMissing += 1) }
    }

    /// Counts an image the signature policy refused, by why.
    func countSignatureRefusal(_ kind: SignatureRefusal.Kind) {
        state.withLock { $0.signatureRefusals[kind, default: 0] += 1 }
    }

    /// Counts an answered HTTP request by status.
    func countRequest(status: Int) {
        state.withLock { $0.requests[status, default: 0] += 1 }
    }

    /// Counts a run of the autoexpire timer: the images it expired, and whether autoexpire failed
    /// for some system.
    func countAutoexpireRun(expired: Int, failed: Bool) {
        state.withLock { state in
            if failed {
                state.autoexpireFailedRuns += 1
            } else {
                state.autoexpireRuns += 1
            }
            state.autoexpiredImages += expired
        }
    }

    /// The metrics as Prometheus text; `queueLength` is sampled by the caller.
    func render(queueLength: Int, running: Int) -> String {
        let snapshot = state.withLock { $0 }
        var lines: [String] = []
        lines.append("# HELP shifter_gateway_pulls_total Pull requests by outcome.")
        lines.append("# TYPE shifter_gateway_pulls_total counter")
        for outcome in PullOutcome.allCases {
            lines.append("shifter_gateway_pulls_total{outcome=\"\(outcome.rawValue)\"} \(snapshot.pulls[outcome] ?? 0)")
        }
        lines.append("# HELP shifter_gateway_pull_duration_seconds Time from the start of a pull to READY or FAILURE.")
        lines.append("# TYPE shifter_gateway_pull_duration_seconds histogram")
        for (index, bound) in Self.durationBuckets.enumerated() {
            lines.append("shifter_gateway_pull_duration_seconds_bucket{le=\"\(Self.number(bound))\"} \(snapshot.durationCounts[index])")
        }
        lines.append("shifter_gateway_pull_duration_seconds_bucket{le=\"+Inf\"} \(snapshot.durationCount)")
        lines.append("shifter_gateway_pull_duration_seconds_sum \(Self.number(snapshot.durationSum))")
        lines.append("shifter_gateway_pull_duration_seconds_count \(snapshot.durationCount)")
        lines.append("# HELP shifter_gateway_pulled_bytes_total Bytes of layers downloaded from registries.")
        lines.append("# TYPE shifter_gateway_pulled_bytes_total counter")
        lines.append("shifter_gateway_pulled_bytes_total \(snapshot.bytesPulled)")
        lines.append("# HELP shifter_gateway_queue_length Pulls waiting for a worker.")
        lines.append("# TYPE shifter_gateway_queue_length gauge")
        lines.append("shifter_gateway_queue_length \(queueLength)")
        lines.append("# HELP shifter_gateway_pulls_running Pulls running now.")
        lines.append("# TYPE shifter_gateway_pulls_running gauge")
        lines.append("shifter_gateway_pulls_running \(running)")
        lines.append("# HELP shifter_gateway_lookups_total Image lookups by result.")
        lines.append("# TYPE shifter_gateway_lookups_total counter")
        lines.append("shifter_gateway_lookups_total{result=\"found\"} \(snapshot.lookupsFound)")
        lines.append("shifter_gateway_lookups_total{result=\"not_found\"} \(snapshot.lookupsMissing)")
        lines.append("# HELP shifter_gateway_requests_total HTTP requests answered, by status.")
        lines.append("# TYPE shifter_gateway_requests_total counter")
        for status in snapshot.requests.keys.sorted() {
            lines.append("shifter_gateway_requests_total{status=\"\(status)\"} \(snapshot.requests[status] ?? 0)")
        }
        lines.append("# HELP shifter_gateway_autoexpire_runs_total Runs of the autoexpire timer, by result (failed: autoexpire failed for a system).")
        lines.append("# TYPE shifter_gateway_autoexpire_runs_total counter")
        lines.append("shifter_gateway_autoexpire_runs_total{result=\"ok\"} \(snapshot.autoexpireRuns)")
        lines.append("shifter_gateway_autoexpire_runs_total{result=\"failed\"} \(snapshot.autoexpireFailedRuns)")
        lines.append("# HELP shifter_gateway_autoexpired_images_total Images the autoexpire timer expired.")
        lines.append("# TYPE shifter_gateway_autoexpired_images_total counter")
        lines.append("shifter_gateway_autoexpired_images_total \(snapshot.autoexpiredImages)")
        lines.append("# HELP shifter_gateway_signature_refusals_total Images the signature policy refused, by reason.")
        lines.append("# TYPE shifter_gateway_signature_refusals_total counter")
        for kind in SignatureRefusal.Kind.allCases {
            lines.append("shifter_gateway_signature_refusals_total{reason=\"\(kind.rawValue)\"} \(snapshot.signatureRefusals[kind] ?? 0)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
