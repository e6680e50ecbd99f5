/// An extended attribute carried by a tar entry.
struct ExtendedAttribute: Equatable, Sendable {
    /// The full name, with its namespace: `user.mime_type`, `security.capability`.
    var name: String
    var value: [UInt8]
}

/// What squashfs keeps for every inode besides its type and content.
struct EntryMetadata: Equatable, Sendable {
    /// Permission bits with setuid, setgid and sticky (`mode & 0o7777`).
    var permissions: UInt16
    var uid: UInt32
    var gid: UInt32
    /// Seconds since the epoch; squashfs stores 32 bits, so earlier and later times are clamped.
    var modificationTime: UInt32
    var extendedAttributes: [ExtendedAttribute]

    init(permissions: UInt16, uid: UInt32, gid: UInt32, modificationTime: UInt32, extendedAttributes: [ExtendedAttribute] = []) {
        self.permissions = permissions & 0o7777
        self.uid = uid
        self.gid = gid
        self.modificationTime = modificationTime
        self.extendedAttributes = extendedAttributes
    }

    /// A directory no layer describes, but that holds an entry a layer does describe.
    static let implicitDirectory = EntryMetadata(permissions: 0o755, uid: 0, gid: 0, modificationTime: 0)
}

/// A non-directory inode of the final image. Hard links share one.
final class LeafInode {
    enum Content: Equatable {
        /// A regular file; `dataIndex` names its data in the image writer once it is streamed.
        case regularFile(dataIndex: Int?)
        case symbolicLink(target: [UInt8])
        case fifo
        case socket
    }

    var content: Content
    var metadata: EntryMetadata

    /// Set while the image is written.
    var inodeNumber: UInt32 = 0
    var inodeReference: UInt64 = 0
    var isWritten = false
    var linkCount: UInt32 = 0

    init(content: Content, metadata: EntryMetadata) {
        self.content = content
        self.metadata = metadata
    }
}

/// A directory of the final image.
final class DirectoryNode {
    var metadata: EntryMetadata
    /// The layer whose entry gave `metadata`; `nil` while the directory is only implied by its children.
    var metadataLayer: Int?
    /// The layer that made this path a directory.
    let layer: Int
    var children: [PathComponent: TreeNode] = [:]
    /// Names removed by a whiteout, with the layer of the whiteout: entries from lower layers are hidden.
    var whiteouts: [PathComponent: Int] = [:]
    /// The highest layer that marked this directory opaque: children from lower layers are hidden.
    var opaqueLayer: Int?

    /// Set while the image is written.
    var inodeNumber: UInt32 = 0
    var orderedChildren: [(name: PathComponent, node: TreeNode)] = []

    init(metadata: EntryMetadata, metadataLayer: Int?, layer: Int) {
        self.metadata = metadata
        self.metadataLayer = metadataLayer
        self.layer = layer
    }

    /// Whether an entry named `name` from `layer` is hidden by a whiteout or an opaque marker above it.
    func hides(_ name: PathComponent, from layer: Int) -> Bool {
        if let opaqueLayer, opaqueLayer > layer { return true }
        if let whiteout = whiteouts[name], whiteout > layer { return true }
        return false
    }

    /// The children in the order squashfs stores them: by name, byte by byte.
    var sortedChildren: [(name: PathComponent, node: TreeNode)] {
        children.map { (name: $0.key, node: $0.value) }.sorted { $0.name < $1.name }
    }
}

/// A directory entry for a non-directory; hard links are several leaves that share an inode.
final class LeafNode {
    /// The layer the entry came from.
    let layer: Int
    /// `nil` only while a hard link waits for its target to appear in a lower layer.
    var inode: LeafInode?

    init(layer: Int, inode: LeafInode?) {
        self.layer = layer
        self.inode = inode
    }
}

/// One name in a directory.
enum TreeNode {
    case directory(DirectoryNode)
    case leaf(LeafNode)
}

/// The merged file tree of an image, built from its layers top-down.
///
/// Layers are numbered from the bottom (0) up and are fed from the top down, so the first entry
/// seen for a path is the one that wins, and every later (lower) entry for that path, or beneath a
/// path an upper layer removed or replaced, is hidden without its data ever being read. Entries of
/// one layer do not hide each other through whiteouts; within a layer a later entry replaces an
/// earlier one, as tar extraction would.
final class FlattenedTree {
    /// Where a new entry goes.
    struct Slot {
        let parent: DirectoryNode
        let name: PathComponent
    }

    /// What to do with an entry from a layer.
    enum Placement {
        /// An upper layer decided the path, removed it, or removed or replaced a directory above it.
        case hidden
        /// The path is new; insert the entry here.
        case insert(Slot)
        /// A directory entry for a directory that exists but has no metadata from this or an upper layer yet.
        case describe(DirectoryNode)
    }

    /// Why an entry cannot be placed.
    enum Conflict: Error, Equatable {
        /// An earlier entry of the same layer made an ancestor a non-directory.
        case beneathNonDirectory(ancestor: LayerPath)
        /// The entry would replace the image root with a non-directory.
        case rootNotDirectory
    }

    let root = DirectoryNode(metadata: .implicitDirectory, metadataLayer: nil, layer: Int.max)

    /// Finds the place of an entry at `path` from `layer`.
    ///
    /// Missing parent directories are created as implicit directories, which a lower layer's
    /// directory entry may still describe.
    func place(_ path: LayerPath, isDirectory: Bool, layer: Int) throws(Conflict) -> Placement {
        guard let name = path.lastComponent else {
            guard isDirectory else { throw .rootNotDirectory }
            return canDescribe(root, from: layer) ? .describe(root) : .hidden
        }
        guard let parent = try directory(at: path.parent, layer: layer) else { return .hidden }
        if parent.hides(name, from: layer) { return .hidden }
        switch parent.children[name] {
        case nil:
            return .insert(Slot(parent: parent, name: name))
        case .directory(let existing):
            if existing.layer == layer && !isDirectory {
                return .insert(Slot(parent: parent, name: name))
            }
            if isDirectory && canDescribe(existing, from: layer) { return .describe(existing) }
            return .hidden
        case .leaf(let existing):
            // Within one layer a later entry replaces an earlier one; across layers the upper one stays.
            return existing.layer == layer ? .insert(Slot(parent: parent, name: name)) : .hidden
        }
    }

    /// Puts a new directory into `slot`, replacing whatever the same layer put there before.
    @discardableResult
    func insertDirectory(at slot: Slot, metadata: EntryMetadata, layer: Int) -> DirectoryNode {
        if case .directory(let existing) = slot.parent.children[slot.name], existing.layer == layer {
            existing.metadata = metadata
            existing.metadataLayer = layer
            return existing
        }
        let directory = DirectoryNode(metadata: metadata, metadataLayer: layer, layer: layer)
        slot.parent.children[slot.name] = .directory(directory)
        return directory
    }

    /// Puts a non-directory into `slot`, replacing whatever the same layer put there before.
    func insertLeaf(at slot: Slot, _ leaf: LeafNode) {
        slot.parent.children[slot.name] = .leaf(leaf)
    }

    /// Records a whiteout from `layer`: `name` in `directory` is removed from every lower layer.
    func addWhiteout(named name: PathComponent, in directoryPath: LayerPath, layer: Int) throws(Conflict) {
        guard let directory = try directory(at: directoryPath, layer: layer) else { return }
        if directory.whiteouts[name] == nil { directory.whiteouts[name] = layer }
    }

    /// Records an opaque marker from `layer`: the lower layers' contents of the directory are hidden.
    func markOpaque(_ directoryPath: LayerPath, layer: Int) throws(Conflict) {
        guard let directory = try directory(at: directoryPath, layer: layer) else { return }
        if directory.opaqueLayer == nil { directory.opaqueLayer = layer }
    }

    /// The directory at `path` as `layer` sees it, creating implicit directories on the way, or
    /// `nil` when an upper layer removed it or replaced it (or a directory above it) with a non-directory.
    private func directory(at path: LayerPath, layer: Int) throws(Conflict) -> DirectoryNode? {
        var current = root
        for (depth, name) in path.components.enumerated() {
            if current.hides(name, from: layer) { return nil }
            switch current.children[name] {
            case nil:
                let implicit = DirectoryNode(metadata: .implicitDirectory, metadataLayer: nil, layer: layer)
                current.children[name] = .directory(implicit)
                current = implicit
            case .directory(let next):
                current = next
            case .leaf(let leaf):
                if leaf.layer == layer {
                    throw .beneathNonDirectory(ancestor: LayerPath(components: Array(path.components[...depth])))
                }
                return nil
            }
        }
        return current
    }

    private func canDescribe(_ directory: DirectoryNode, from layer: Int) -> Bool {
        guard let metadataLayer = directory.metadataLayer else { return true }
        return metadataLayer == layer
    }
}
