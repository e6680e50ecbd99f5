/// What one tar entry is, as the merger needs it; built from a libarchive header.
struct LayerEntryHeader: Sendable {
    enum Kind: Equatable, Sendable {
        case regularFile
        case directory
        case symbolicLink(target: [UInt8])
        case hardLink(target: [UInt8])
        case fifo
        case socket
        case characterDevice
        case blockDevice
    }

    var path: [UInt8]
    var kind: Kind
    var metadata: EntryMetadata
}

/// Merges the entries of an image's layers, fed top layer first, into one `FlattenedTree`.
///
/// It applies the OCI layer rules: `.wh.NAME` removes `NAME` from lower layers, `.wh..wh..opq`
/// hides a directory's lower contents, device nodes are dropped (an unprivileged runtime cannot use
/// them, and they would be a way around `nodev` for anyone who copies the image). Hard links may
/// point into lower layers; such a link waits until its target appears. Paths that leave the root
/// and entries written through a non-directory of the same layer are refused.
final class LayerMerger {
    /// A regular file whose data the caller must stream, either now or in a second pass.
    struct DeferredFile {
        /// The entry's position in its layer, counting from 0.
        let entryIndex: Int
        let inode: LeafInode
    }

    let tree = FlattenedTree()
    /// How many device nodes were dropped.
    private(set) var droppedDeviceCount = 0
    /// How many extended attributes outside squashfs' namespaces were dropped.
    private(set) var droppedAttributeCount = 0

    /// Regular files hidden in their own layer that a later hard link of that layer needs, by layer.
    private(set) var deferredFiles: [Int: [DeferredFile]] = [:]

    private enum SeenEntry {
        case inode(LeafInode)
        case hiddenFile(entryIndex: Int, metadata: EntryMetadata)
        case hiddenOther(content: LeafInode.Content, metadata: EntryMetadata)
        /// A hard link of this layer still waiting for the given target in a lower layer.
        case waiting(targetKey: [UInt8])
    }

    /// A hard link waiting for its target; `leaf` is nil when an upper layer hides the link itself.
    private struct WaitingLink {
        let leaf: LeafNode?
        let description: String
    }

    private var layer = 0
    private var layerName = ""
    /// The non-directories of the current layer seen so far, by path key.
    private var seen: [[UInt8]: SeenEntry] = [:]
    /// Hard links from upper layers waiting for a target, by the target's path key.
    private var waiting: [[UInt8]: [WaitingLink]] = [:]

    /// Starts the next lower layer; `name` appears in error messages (`layer 2 (sha256:…)`).
    func beginLayer(_ index: Int, name: String) {
        layer = index
        layerName = name
        seen.removeAll(keepingCapacity: true)
    }

    /// Adds one entry of the current layer.
    ///
    /// Returns the inode whose data the caller must now read from the entry and store, or `nil`
    /// when the entry has no data to keep.
    func add(_ header: LayerEntryHeader, entryIndex: Int) throws(ImageImportError) -> LeafInode? {
        let path = try parsePath(header.path, what: "entry")
        if let name = path.lastComponent, name.hasPrefix(Self.whiteoutPrefix) {
            try addMarker(name, in: path, header: header)
            return nil
        }
        try checkAncestors(of: path)
        let key = path.key
        var metadata = header.metadata
        metadata.extendedAttributes = keptAttributes(metadata.extendedAttributes)

        switch header.kind {
        case .characterDevice, .blockDevice:
            droppedDeviceCount += 1
            // The device is gone, but it still replaced whatever the lower layers had at its path.
            if let name = path.lastComponent {
                try placeOrFail(path) { () throws(FlattenedTree.Conflict) in
                    try tree.addWhiteout(named: name, in: path.parent, layer: layer)
                }
            }
            seen[key] = nil
            return nil
        case .directory:
            if let links = waiting[key], let first = links.first {
                throw ImageImportError(.missingLinkTarget, "\(layerName): hard link \(first.description) points to \(path), which is a directory")
            }
            seen[key] = nil
            let placement = try placeOrFail(path) { () throws(FlattenedTree.Conflict) in
                try tree.place(path, isDirectory: true, layer: layer)
            }
            switch placement {
            case .hidden: break
            case .insert(let slot): tree.insertDirectory(at: slot, metadata: metadata, layer: layer)
            case .describe(let directory):
                directory.metadata = metadata
                directory.metadataLayer = layer
            }
            return nil
        case .hardLink(let rawTarget):
            try addHardLink(path, target: rawTarget)
            return nil
        case .regularFile, .symbolicLink, .fifo, .socket:
            let content: LeafInode.Content
            switch header.kind {
            case .symbolicLink(let target):
                if target.isEmpty || target.contains(0) {
                    throw ImageImportError(.invalidLayer, "\(layerName): symbolic link \(path) has an empty or malformed target")
                }
                content = .symbolicLink(target: target)
            case .fifo: content = .fifo
            case .socket: content = .socket
            default: content = .regularFile(dataIndex: nil)
            }
            let placement = try placeOrFail(path) { () throws(FlattenedTree.Conflict) in
                try tree.place(path, isDirectory: false, layer: layer)
            }
            let links = waiting.removeValue(forKey: key) ?? []
            var inode: LeafInode?
            if case .insert(let slot) = placement {
                let created = LeafInode(content: content, metadata: metadata)
                tree.insertLeaf(at: slot, LeafNode(layer: layer, inode: created))
                inode = created
            } else if !links.isEmpty {
                // Hidden here, but an upper layer links to it: keep the inode without a name of its own.
                inode = LeafInode(content: content, metadata: metadata)
            }
            guard let inode else {
                if case .regularFile = content {
                    seen[key] = .hiddenFile(entryIndex: entryIndex, metadata: metadata)
                } else {
                    seen[key] = .hiddenOther(content: content, metadata: metadata)
                }
                return nil
            }
            for link in links { link.leaf?.inode = inode }
            seen[key] = .inode(inode)
            if case .regularFile = content { return inode }
            return nil
        }
    }

    /// Ends the merge: fails if a hard link never found its target.
    func finish() throws(ImageImportError) {
        let unresolved = waiting.flatMap { key, links in links.map { (key, $0) } }
            .sorted { $0.1.description < $1.1.description }
        if let (key, link) = unresolved.first {
            throw ImageImportError(
                .missingLinkTarget,
                "hard link \(link.description) points to \(displayQuoted(key)), which no layer at or below it contains")
        }
    }

    // MARK: - Entries

    static let whiteoutPrefix = Array(".wh.".utf8)
    static let opaqueMarker = PathComponent(".wh..wh..opq")
    private static let aufsMetadataPrefix = Array(".wh..wh.".utf8)

    private func addMarker(_ name: PathComponent, in path: LayerPath, header: LayerEntryHeader) throws(ImageImportError) {
        try checkAncestors(of: path)
        let directory = path.parent
        if name == Self.opaqueMarker {
            try placeOrFail(path) { () throws(FlattenedTree.Conflict) in try tree.markOpaque(directory, layer: layer) }
            return
        }
        // Other `.wh..wh.` names are aufs bookkeeping (hard link directories and the like), not whiteouts.
        if name.hasPrefix(Self.aufsMetadataPrefix) { return }
        let removed = Array(name.bytes.dropFirst(Self.whiteoutPrefix.count))
        if removed.isEmpty || removed == Array(".".utf8) || removed == Array("..".utf8) {
            throw ImageImportError(.unsafePath, "\(layerName): whiteout \(path) names no valid entry")
        }
        try placeOrFail(path) { () throws(FlattenedTree.Conflict) in
            try tree.addWhiteout(named: PathComponent(removed), in: directory, layer: layer)
        }
    }

    private func addHardLink(_ path: LayerPath, target rawTarget: [UInt8]) throws(ImageImportError) {
        let target = try parsePath(rawTarget, what: "hard link target of \(path):")
        if target.isRoot || target == path {
            throw ImageImportError(.missingLinkTarget, "\(layerName): hard link \(path) points to itself or to the root")
        }
        let key = path.key
        let targetKey = target.key
        let placement = try placeOrFail(path) { () throws(FlattenedTree.Conflict) in
            try tree.place(path, isDirectory: false, layer: layer)
        }
        var followers = waiting.removeValue(forKey: key) ?? []
        if case .insert(let slot) = placement {
            let leaf = LeafNode(layer: layer, inode: nil)
            tree.insertLeaf(at: slot, leaf)
            followers.append(WaitingLink(leaf: leaf, description: "\(path) in \(layerName)"))
        } else {
            followers.append(WaitingLink(leaf: nil, description: "\(path) in \(layerName)"))
        }

        let resolved: LeafInode
        switch seen[targetKey] {
        case .inode(let inode):
            resolved = inode
        case .hiddenFile(let entryIndex, let metadata):
            // The target was hidden and its data skipped; read it again in a second pass over this layer.
            resolved = LeafInode(content: .regularFile(dataIndex: nil), metadata: metadata)
            deferredFiles[layer, default: []].append(DeferredFile(entryIndex: entryIndex, inode: resolved))
            seen[targetKey] = .inode(resolved)
        case .hiddenOther(let content, let metadata):
            resolved = LeafInode(content: content, metadata: metadata)
            seen[targetKey] = .inode(resolved)
        case .waiting(let lowerKey):
            waiting[lowerKey, default: []].append(contentsOf: followers)
            seen[key] = .waiting(targetKey: lowerKey)
            return
        case nil:
            waiting[targetKey, default: []].append(contentsOf: followers)
            seen[key] = .waiting(targetKey: targetKey)
            return
        }
        for follower in followers { follower.leaf?.inode = resolved }
        seen[key] = .inode(resolved)
    }

    // MARK: - Checks

    private func parsePath(_ raw: [UInt8], what: String) throws(ImageImportError) -> LayerPath {
        do {
            return try LayerPath.parse(raw)
        } catch {
            throw ImageImportError(.unsafePath, "\(layerName): \(what) \(displayQuoted(raw)): \(error.reason)")
        }
    }

    /// Refuses an entry beneath a symbolic link or file of the same layer: extracting it would write
    /// through the link, the classic way out of an extraction root.
    private func checkAncestors(of path: LayerPath) throws(ImageImportError) {
        for ancestor in path.ancestorKeys {
            guard let entry = seen[ancestor] else { continue }
            let what: String
            switch entry {
            case .inode(let inode):
                if case .symbolicLink = inode.content { what = "a symbolic link" } else { what = "not a directory" }
            case .hiddenOther(.symbolicLink, _): what = "a symbolic link"
            default: what = "not a directory"
            }
            throw ImageImportError(
                .unsafePath,
                "\(layerName): entry \(path) lies beneath \(displayQuoted(ancestor)), which is \(what) in the same layer")
        }
    }

    @discardableResult
    private func placeOrFail<T>(_ path: LayerPath, _ body: () throws(FlattenedTree.Conflict) -> T) throws(ImageImportError) -> T {
        do throws(FlattenedTree.Conflict) {
            return try body()
        } catch {
            switch error {
            case .beneathNonDirectory(let ancestor):
                throw ImageImportError(
                    .unsafePath, "\(layerName): entry \(path) lies beneath \(ancestor), which is not a directory in the same layer")
            case .rootNotDirectory:
                throw ImageImportError(.invalidLayer, "\(layerName): entry \(path) would replace the image root with a non-directory")
            }
        }
    }

    /// Squashfs stores only the `user.`, `trusted.` and `security.` namespaces.
    private func keptAttributes(_ attributes: [ExtendedAttribute]) -> [ExtendedAttribute] {
        if attributes.isEmpty { return attributes }
        let kept = attributes.filter { attribute in
            ["user.", "trusted.", "security."].contains { attribute.name.hasPrefix($0) && attribute.name.count > $0.count }
        }
        droppedAttributeCount += attributes.count - kept.count
        return kept
    }
}
