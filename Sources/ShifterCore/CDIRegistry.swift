/// The CDI specs of a node, by device name, and what a request for some of them adds to a
/// container. Pure: the specs are read elsewhere (`CDISpecLoader`).
public struct CDIRegistry: Sendable {
    /// A spec as read, with its file and the index of its directory in the site's list.
    public struct Entry: Sendable {
        public var spec: CDISpec
        public var source: String
        public var priority: Int

        public init(spec: CDISpec, source: String, priority: Int) {
            self.spec = spec
            self.source = source
            self.priority = priority
        }
    }

    /// Each device name's spec, after CDI's rule for names defined twice: a later directory wins;
    /// two files of one directory make the name unusable (`conflicts`).
    private(set) var owners: [CDIDeviceName: Entry] = [:]
    /// Names two specs of one directory define, with the files.
    public private(set) var conflicts: [CDIDeviceName: [String]] = [:]
    /// The kinds the specs describe.
    public private(set) var kinds: Set<String> = []
    /// Every device node each kind's devices name, in every spec (those overridden or in conflict
    /// included), by device: what a container of that kind must not show of the devices it did
    /// not ask for.
    private(set) var nodesOfKind: [String: [(device: String, path: String)]] = [:]
    /// The directories searched, for messages.
    public let directories: [String]

    public init(entries: [Entry], directories: [String]) {
        self.directories = directories
        for entry in entries {
            kinds.insert(entry.spec.kind)
            for device in entry.spec.devices {
                let name = CDIDeviceName(vendor: entry.spec.vendor, deviceClass: entry.spec.deviceClass, name: device.name)
                nodesOfKind[name.kind, default: []] += device.edits.deviceNodes.map { (device.name, $0.path) }
                if let existing = owners[name] {
                    if existing.priority > entry.priority { continue }
                    if existing.priority == entry.priority {
                        conflicts[name] = (conflicts[name] ?? [existing.source]) + [entry.source]
                        continue
                    }
                }
                owners[name] = entry
            }
        }
        for name in conflicts.keys { owners[name] = nil }
    }

    /// What `names` add to a container, in CDI's order: for each spec, its own edits once, before
    /// its first requested device's; then each device's. `all` stands for every device of a kind
    /// whose spec defines no device of that name. Also the device nodes of the same kinds' other
    /// devices (in any spec, a name in conflict included), which the container must not show.
    public func resolve(_ names: [CDIDeviceName]) throws(CDIError) -> CDIResolution {
        var expanded: [CDIDeviceName] = []
        for name in names {
            if name.name == CDIDeviceName.all && owners[name] == nil && conflicts[name] == nil && kinds.contains(name.kind) {
                expanded += owners.keys.filter { $0.kind == name.kind }.sorted { $0.name.compare(numerically: $1.name) }
            } else {
                expanded.append(name)
            }
        }
        var resolution = CDIResolution()
        var specsUsed: [String] = []
        for name in expanded where !resolution.devices.contains(name) {
            guard let entry = owners[name], let device = entry.spec.devices.first(where: { $0.name == name.name }) else {
                throw unresolved(name)
            }
            if !specsUsed.contains(entry.source) {
                specsUsed.append(entry.source)
                resolution.edits.append(entry.spec.edits)
            }
            resolution.edits.append(device.edits)
            resolution.devices.append(name)
        }
        // The nodes of the devices not asked for, of the kinds that were.
        let shown = Set(resolution.edits.deviceNodes.map(\.path))
        var hidden = Set<String>()
        for kind in Set(resolution.devices.map(\.kind)) {
            let asked = Set(resolution.devices.filter { $0.kind == kind }.map(\.name))
            for node in nodesOfKind[kind] ?? [] where !asked.contains(node.device) && !shown.contains(node.path) {
                hidden.insert(node.path)
            }
        }
        resolution.hiddenNodes = hidden.sorted()
        return resolution
    }

    private func unresolved(_ name: CDIDeviceName) -> CDIError {
        if let files = conflicts[name] {
            return CDIError("device \(name) is defined in both \(files.joined(separator: " and ")); the node's administrator must remove one")
        }
        let known = owners.keys.filter { $0.kind == name.kind }.map(\.name).sorted { $0.compare(numerically: $1) }
        if known.isEmpty {
            return CDIError("device \(name): no CDI spec for \(name.kind) in \(directories.joined(separator: ", ")) on this node")
        }
        return CDIError("device \(name): \(name.kind) has no device \(quoted(name.name)) (it has \(known.joined(separator: ", ")), and all)")
    }
}

/// The edits of a request, and the device nodes to hide.
public struct CDIResolution: Sendable, Equatable {
    public var devices: [CDIDeviceName] = []
    public var edits = CDIContainerEdits()
    public var hiddenNodes: [String] = []

}

extension String {
    /// Device names in a stable order: whole numbers first, by value (`2` before `10`), then the
    /// others as text (UUIDs, `all`).
    func compare(numerically other: String) -> Bool {
        switch (Int(self), Int(other)) {
        case let (left?, right?): return left < right
        case (_?, nil): return true
        case (nil, _?): return false
        case (nil, nil): return self < other
        }
    }
}
