/// One node's Shifter metrics, kept by the job prolog and epilog in a file in Prometheus text
/// format for node_exporter's textfile collector. Counters carry over from one write to the next
/// by reading the file back (`parse`), so the file is both the export and the only state.
public struct NodeMetrics: Sendable, Equatable {
    /// Prologs that built a root, and prologs that failed, on this node.
    public var prologSuccesses: UInt64 = 0
    public var prologFailures: UInt64 = 0
    /// Epilogs that left the node clean, and epilogs that left something behind.
    public var epilogsClean: UInt64 = 0
    public var epilogsIncomplete: UInt64 = 0
    /// Seconds spent in each prolog phase, summed over every prolog (successful or not).
    public var prologPhaseSecondsTotal: [String: Double] = [:]
    /// Seconds each phase of the most recent prolog took, and the whole of it.
    public var lastPrologPhaseSeconds: [String: Double] = [:]
    public var lastPrologSeconds: Double = 0
    /// The job roots on this node now, and their per-node caches: how many and their total size.
    public var roots: Int = 0
    public var perNodeCaches: Int = 0
    public var perNodeCacheBytes: UInt64 = 0
    /// When the file was written, in seconds since the epoch.
    public var updated: Double = 0

    public init() {}

    /// The prolog phases, in the order a root is built; a prolog that stops early reports only
    /// the phases it reached.
    public static let prologPhases = ["resolve", "image", "etc", "mounts", "cache", "gpu", "devices", "hooks", "namespaces", "sshd", "record"]

    /// Adds one prolog's outcome and phase times.
    public mutating func addProlog(succeeded: Bool, phases: [String: Double], total: Double) {
        if succeeded { prologSuccesses += 1 } else { prologFailures += 1 }
        for (phase, seconds) in phases { prologPhaseSecondsTotal[phase, default: 0] += seconds }
        lastPrologPhaseSeconds = phases
        lastPrologSeconds = total
    }

    /// Adds one epilog's outcome.
    public mutating func addEpilog(clean: Bool) {
        if clean { epilogsClean += 1 } else { epilogsIncomplete += 1 }
    }

    /// The metrics as a Prometheus text exposition, every sample labelled with `node`.
    public func text(node: String) -> String {
        let nodeLabel = "node=\"\(Self.escapedLabel(node))\""
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for sample in samples {
                let labels = sample.labels.isEmpty ? nodeLabel : nodeLabel + "," + sample.labels
                out += "\(name){\(labels)} \(sample.value)\n"
            }
        }
        func phases(_ values: [String: Double]) -> [(labels: String, value: String)] {
            values.keys.sorted(by: Self.phaseOrder).map { ("phase=\"\(Self.escapedLabel($0))\"", Self.number(values[$0] ?? 0)) }
        }
        family("shifter_prolog_runs_total", "counter", "Job prologs run on this node, by result.",
               [("result=\"success\"", String(prologSuccesses)), ("result=\"failure\"", String(prologFailures))])
        family("shifter_prolog_phase_seconds_total", "counter", "Seconds the job prologs spent in each phase.",
               phases(prologPhaseSecondsTotal))
        family("shifter_prolog_last_phase_seconds", "gauge", "Seconds the most recent job prolog spent in each phase.",
               phases(lastPrologPhaseSeconds))
        family("shifter_prolog_last_seconds", "gauge", "Seconds the most recent job prolog took.",
               [("", Self.number(lastPrologSeconds))])
        family("shifter_epilog_runs_total", "counter", "Job epilogs run on this node, by whether they left it clean.",
               [("result=\"clean\"", String(epilogsClean)), ("result=\"incomplete\"", String(epilogsIncomplete))])
        family("shifter_job_roots", "gauge", "Job container roots on this node now.", [("", String(roots))])
        family("shifter_per_node_caches", "gauge", "Per-node write caches of the job roots on this node now.",
               [("", String(perNodeCaches))])
        family("shifter_per_node_cache_bytes", "gauge", "Total size of the per-node write caches on this node now.",
               [("", String(perNodeCacheBytes))])
        family("shifter_metrics_updated_seconds", "gauge", "When a prolog or epilog last wrote this file (Unix time).",
               [("", Self.number(updated))])
        return out
    }

    /// Reads the counters back from a file that `text` wrote. Lines it does not know, and values
    /// that do not parse, are skipped: a damaged file restarts those counters at zero rather than
    /// stopping a prolog.
    public static func parse(_ text: String) -> NodeMetrics {
        var metrics = NodeMetrics()
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let sample = Sample(line) else { continue }
            switch (sample.name, sample.labels["result"], sample.labels["phase"]) {
            case ("shifter_prolog_runs_total", "success", _): metrics.prologSuccesses = sample.count ?? 0
            case ("shifter_prolog_runs_total", "failure", _): metrics.prologFailures = sample.count ?? 0
            case ("shifter_epilog_runs_total", "clean", _): metrics.epilogsClean = sample.count ?? 0
            case ("shifter_epilog_runs_total", "incomplete", _): metrics.epilogsIncomplete = sample.count ?? 0
            case ("shifter_prolog_phase_seconds_total", _, let phase?):
                if let value = sample.value, value >= 0 { metrics.prologPhaseSecondsTotal[phase] = value }
            case ("shifter_prolog_last_phase_seconds", _, let phase?):
                if let value = sample.value, value >= 0 { metrics.lastPrologPhaseSeconds[phase] = value }
            case ("shifter_prolog_last_seconds", _, _): metrics.lastPrologSeconds = max(0, sample.value ?? 0)
            default: break
            }
        }
        return metrics
    }

    /// Known phases in build order, then any others by name.
    static func phaseOrder(_ a: String, _ b: String) -> Bool {
        let ia = prologPhases.firstIndex(of: a) ?? prologPhases.count
        let ib = prologPhases.firstIndex(of: b) ?? prologPhases.count
        return ia != ib ? ia < ib : a < b
    }

    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        // Microseconds are as fine as a prolog's clock is worth; fixed notation keeps the file
        // readable by eye as well as by Prometheus.
        let micros = (value * 1_000_000).rounded()
        guard abs(micros) < 9e15 else { return String(value) }
        let whole = Int64(micros)
        let sign = whole < 0 ? "-" : ""
        let magnitude = whole.magnitude
        let fraction = String(magnitude % 1_000_000)
        return "\(sign)\(magnitude / 1_000_000).\(String(repeating: "0", count: 6 - fraction.count))\(fraction)"
    }

    static func escapedLabel(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    /// One `name{label="value",...} value` line.
    struct Sample {
        var name: String
        var labels: [String: String] = [:]
        var value: Double?
        var count: UInt64? { value.flatMap { $0 >= 0 && $0 < 1.8e19 ? UInt64($0) : nil } }

        init?(_ line: Substring) {
            guard let brace = line.firstIndex(of: "{"), let close = line.lastIndex(of: "}"), brace < close else { return nil }
            name = String(line[..<brace])
            for pair in line[line.index(after: brace)..<close].split(separator: ",") {
                guard let equals = pair.firstIndex(of: "=") else { continue }
                var value = pair[pair.index(after: equals)...]
                guard value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 else { continue }
                value = value.dropFirst().dropLast()
                labels[String(pair[..<equals])] = String(value)
            }
            value = Double(line[line.index(after: close)...].split(separator: " ").first ?? "")
        }
    }
}
