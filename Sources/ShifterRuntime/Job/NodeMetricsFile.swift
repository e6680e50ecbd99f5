#if canImport(Glibc)
import Glibc
#endif
import ShifterCore
import ShifterSystem

/// The node's metrics file, `<nodeMetricsPath>/shifter-<node>.prom`, in Prometheus text format
/// for node_exporter's textfile collector. Each prolog and epilog updates it under a lock (jobs on
/// one node start and end at the same time) and replaces it whole, so the collector never reads a
/// half-written file.
public enum NodeMetricsFile {
    /// The file of this node, or nil when the site keeps no metrics.
    public static func path(config: SiteConfig, node: String = nodeName()) -> String? {
        config.nodeMetricsPath.map { RootLayout.join($0, "shifter-\(node).prom") }
    }

    /// Applies `change` to the node's counters, refreshes the gauges (roots and caches on the node
    /// now) and writes the file. Returns why it could not, or nil; a metrics problem never stops
    /// the prolog or epilog that reports it.
    @discardableResult
    public static func update(config: SiteConfig, node: String = nodeName(),
                              _ change: (inout NodeMetrics) -> Void) -> String? {
        guard let directory = config.nodeMetricsPath, let file = path(config: config, node: node) else { return nil }
        do throws(SystemError) {
            try FileSystem.makeDirectories(directory, mode: 0o755)
            let status = try FileSystem.linkStatus(directory)
            // Root writes here: a directory others can write would let them aim those writes.
            guard status.kind == .directory, status.uid == 0, status.mode & 0o022 == 0 else {
                return "nodeMetricsPath \(directory) must be a directory owned by root and writable by root only"
            }
            let lock = try FileSystem.lockExclusively(RootLayout.join(directory, ".shifter-\(node).lock"))
            defer { close(lock) }
            var metrics = NodeMetrics()
            if let existing = try? FileSystem.linkStatus(file), existing.kind == .regular, existing.uid == 0,
               let bytes = try? FileSystem.readFile(file, limit: 1 << 20) {
                metrics = NodeMetrics.parse(String(decoding: bytes, as: UTF8.self))
            }
            change(&metrics)
            let roots = NodeInventory.roots(config: config)
            // A failed prolog's note alone is no root.
            metrics.roots = roots.filter { $0.failure == nil || !$0.mounts.isEmpty }.count
            metrics.perNodeCaches = roots.reduce(0) { $0 + $1.perNodeCaches.count }
            metrics.perNodeCacheBytes = roots.reduce(0) { $0 &+ $1.perNodeCaches.bytes }
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            metrics.updated = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
            try FileSystem.replaceFile(file, Array(metrics.text(node: node).utf8), mode: 0o644)
            return nil
        } catch {
            return "couldn't write the node metrics: \(error.description)"
        }
    }

    /// The node's name: `SLURMD_NODENAME`, which Slurm sets for prologs and epilogs (several
    /// nodes may share a host), else the host name; reduced to characters safe in a file name.
    public static func nodeName() -> String {
        var name = getenv("SLURMD_NODENAME").map { String(cString: $0) } ?? ""
        if name.isEmpty {
            var buffer = [CChar](repeating: 0, count: 256)
            if gethostname(&buffer, buffer.count - 1) == 0 {
                name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
        let safe = name.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") ? $0 : "_" }
        let text = String(safe.prefix(64))
        return text.isEmpty || text.allSatisfy({ $0 == "." }) ? "node" : text
    }
}
