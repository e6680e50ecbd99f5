/// Turns import events into what `pull` prints: a live table of layers on a terminal, or plain
/// `key=value` lines that scripts can parse in a pipe. Not thread-safe; callers serialise events.
public struct PullProgress: Sendable {
    private struct Layer: Sendable {
        var digest: String
        var size: Int64
        var received: Int64 = 0
        var state = "waiting"
    }

    private let reference: String
    private var layers: [Layer] = []
    private var imageID = ""

    /// Progress for a pull of `reference` (shown as given by the user).
    public init(reference: String) {
        self.reference = reference
    }

    /// Records an event; returns the plain lines it produces for a pipe (often none).
    public mutating func record(_ event: ImportEvent) -> [String] {
        switch event {
        case .resolved(let id, let platform, let descriptions):
            imageID = id
            layers = descriptions.map { Layer(digest: $0.digest, size: $0.size) }
            let total = descriptions.reduce(Int64(0)) { $0 + $1.size }
            return ["resolved reference=\(reference) id=\(id) platform=\(platform) layers=\(descriptions.count) bytes=\(total)"]
        case .alreadyPresent(let id):
            for index in layers.indices { layers[index].state = "present" }
            return ["present id=\(id)"]
        case .downloading(let index, _, let received, _):
            guard layers.indices.contains(index) else { return [] }
            layers[index].received = received
            layers[index].state = "downloading"
            return []
        case .downloaded(let index, let digest, let size):
            guard layers.indices.contains(index) else { return [] }
            layers[index].received = size
            layers[index].state = "downloaded"
            return ["downloaded layer=\(index + 1)/\(layers.count) digest=\(digest) bytes=\(size)"]
        case .converting(.layerStarted(let index, _, _)):
            guard layers.indices.contains(index) else { return [] }
            layers[index].state = "converting"
            return []
        case .converting(.layerFinished(let index, let count, let digest, let entries, let bytes)):
            if layers.indices.contains(index) { layers[index].state = "converted, \(entries) entries" }
            return ["converted layer=\(index + 1)/\(count) digest=\(digest) entries=\(entries) kept_bytes=\(bytes)"]
        case .converting(.writingTables):
            return ["writing tables"]
        case .stored(let id, let path, let bytes):
            return ["stored id=\(id) path=\(path) bytes=\(bytes)"]
        }
    }

    /// The terminal table: one line per layer, top layer first as registries show them.
    public func terminalLines(width: Int = 100) -> [String] {
        layers.enumerated().map { index, layer in
            let digest = layer.digest.hasPrefix("sha256:") ? String(layer.digest.dropFirst(7).prefix(12)) : String(layer.digest.prefix(12))
            var line = "layer \(index + 1)/\(layers.count) \(digest)  \(layer.state)"
            if layer.state == "downloading" || layer.state == "waiting" {
                line += "  \(Self.formatBytes(layer.received)) / \(Self.formatBytes(layer.size))"
            } else if layer.state == "downloaded" {
                line += "  \(Self.formatBytes(layer.size))"
            }
            return String(line.prefix(max(20, width - 1)))
        }
    }

    /// `1.5 MiB`, `312 B`.
    public static func formatBytes(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(bytes) B" }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }
}
