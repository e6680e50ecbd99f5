/// A downloaded layer blob, still compressed, ready to be flattened.
public struct LayerBlob: Sendable, Equatable {
    /// The file holding the blob.
    public var path: String
    /// How errors name the layer, normally its digest.
    public var name: String

    /// Creates a layer description.
    public init(path: String, name: String) {
        self.path = path
        self.name = name
    }
}

/// What a flattening did, for logs and progress output.
public struct FlattenSummary: Sendable, Equatable {
    /// Tar entries read, over all layers.
    public var entryCount = 0
    /// Bytes of file data stored (before compression and deduplication).
    public var dataBytes: UInt64 = 0
    /// Device nodes left out of the image.
    public var droppedDeviceCount = 0
    /// Extended attributes left out because squashfs cannot store their namespace.
    public var droppedAttributeCount = 0
}

/// A step of a flattening, for progress output.
public enum FlattenProgress: Sendable, Equatable {
    /// Reading of layer `index` (0 is the bottom layer) began.
    case layerStarted(index: Int, count: Int, name: String)
    /// Layer `index` was read: `entries` tar entries, `dataBytes` bytes of file data kept.
    case layerFinished(index: Int, count: Int, name: String, entries: Int, dataBytes: UInt64)
    /// The tables are being written.
    case writingTables
}

/// Flattens image layers into one squashfs file, without extracting anything to disk.
///
/// Layers are read from the top down, so an entry that an upper layer replaced or removed is
/// skipped in the stream and its data is never decompressed into the image. Only file data goes to
/// libsquashfs as it streams; the tree of names and metadata is kept in memory (a few hundred
/// bytes per entry). A hard link that points at a file its own layer hid is completed by a second
/// read of that one layer.
public enum LayerFlattener {
    /// Writes the image for `layers` (bottom layer first) to `imagePath`, stopping with an error
    /// once the layers expand beyond `limits`.
    ///
    /// `waitForLayer`, if given, is called before a layer is opened and returns once its blob is
    /// complete, so conversion of the top layers can start while lower ones still download.
    /// On failure `imagePath` may hold a partial file, which the caller removes.
    @discardableResult
    public static func flatten(
        layers: [LayerBlob], into imagePath: String, options: SquashfsOptions = SquashfsOptions(),
        limits: ImportLimits = .standard, waitForLayer: ((Int) throws(ImageImportError) -> Void)? = nil,
        progress: ((FlattenProgress) -> Void)? = nil
    ) throws(ImageImportError) -> FlattenSummary {
        let writer = try SquashfsWriter(path: imagePath, options: options)
        let merger = LayerMerger()
        var summary = FlattenSummary()
        var budget = ExpansionBudget(limits)
        for index in layers.indices.reversed() {
            let layer = layers[index]
            try waitForLayer?(index)
            progress?(.layerStarted(index: index, count: layers.count, name: layer.name))
            let before = writer.dataBytesRead
            merger.beginLayer(index, name: "layer \(index + 1) of \(layers.count) (\(layer.name))")
            let reader = try TarLayerReader(path: layer.path, name: "layer \(layer.name)")
            var entryIndex = 0
            while let header = try reader.next() {
                try budget.countEntry(of: reader)
                if let inode = try merger.add(header, entryIndex: entryIndex) {
                    inode.content = .regularFile(dataIndex: try store(reader, header.path, into: writer, budget: &budget))
                }
                entryIndex += 1
            }
            try budget.finishLayer(reader)
            summary.entryCount += entryIndex
            progress?(.layerFinished(
                index: index, count: layers.count, name: layer.name, entries: entryIndex, dataBytes: writer.dataBytesRead - before))
        }
        for (index, files) in merger.deferredFiles.sorted(by: { $0.key < $1.key }) {
            try storeDeferred(files, from: layers[index], into: writer, budget: &budget)
        }
        try merger.finish()
        progress?(.writingTables)
        try writer.finish(merger.tree)
        summary.dataBytes = writer.dataBytesRead
        summary.droppedDeviceCount = merger.droppedDeviceCount
        summary.droppedAttributeCount = merger.droppedAttributeCount
        return summary
    }

    private static func store(
        _ reader: TarLayerReader, _ path: [UInt8], into writer: SquashfsWriter, budget: inout ExpansionBudget
    ) throws(ImageImportError) -> Int {
        let dataIndex = try writer.beginFile()
        try reader.readData({ (chunk) throws(ImageImportError) in
            try budget.countData(chunk.count, of: reader)
            try writer.append(chunk)
        }, path: path)
        try writer.endFile()
        return dataIndex
    }

    /// Reads one layer again for the files that a hard link of the layer needs but the layer hid.
    private static func storeDeferred(
        _ files: [LayerMerger.DeferredFile], from layer: LayerBlob, into writer: SquashfsWriter, budget: inout ExpansionBudget
    ) throws(ImageImportError) {
        var wanted: [Int: [LeafInode]] = [:]
        for file in files { wanted[file.entryIndex, default: []].append(file.inode) }
        let reader = try TarLayerReader(path: layer.path, name: "layer \(layer.name)")
        var entryIndex = 0
        while !wanted.isEmpty, let header = try reader.next() {
            if let inodes = wanted.removeValue(forKey: entryIndex) {
                let dataIndex = try store(reader, header.path, into: writer, budget: &budget)
                for inode in inodes { inode.content = .regularFile(dataIndex: dataIndex) }
            }
            entryIndex += 1
        }
        if !wanted.isEmpty {
            throw ImageImportError(.invalidLayer, "layer \(layer.name): changed between two reads")
        }
    }
}
