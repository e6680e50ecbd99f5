/// How far an image's layers may expand while they are flattened.
///
/// A layer of a few kilobytes can decompress to terabytes of zeros, or to a tar of hundreds of
/// millions of empty entries; each costs CPU time, memory (every entry is held in the tree) or space
/// in the store. The limits stop such a layer early with a message, long before the machine suffers.
public struct ImportLimits: Sendable, Equatable {
    /// The most bytes the layers may expand to, over all layers together: the decompressed tar
    /// streams, and separately the file data read from them (sparse files count in full).
    public var maximumExpandedBytes: UInt64
    /// The most tar entries the layers may hold, over all layers together.
    public var maximumEntries: Int

    /// 64 GiB and 4 Mi entries: well above the largest images in common use (tens of GB and a
    /// few hundred thousand files), and within what a gateway host can hold in memory.
    public static let standard = ImportLimits(maximumExpandedBytes: 64 << 30, maximumEntries: 4 << 20)

    /// Creates limits.
    public init(maximumExpandedBytes: UInt64, maximumEntries: Int) {
        self.maximumExpandedBytes = maximumExpandedBytes
        self.maximumEntries = max(1, maximumEntries)
    }

    /// The standard limits with the site's settings (udiRoot.conf's `imageExpandedSizeLimit` and
    /// `imageEntryLimit`) where it has them.
    public init(expandedBytes: UInt64?, entries: Int?) {
        self.init(
            maximumExpandedBytes: expandedBytes ?? Self.standard.maximumExpandedBytes,
            maximumEntries: entries ?? Self.standard.maximumEntries)
    }
}

/// Counts what a flattening has expanded to and stops it at the limits.
struct ExpansionBudget {
    let limits: ImportLimits
    /// Decompressed tar stream bytes of the layers finished so far.
    private var finishedStreamBytes: UInt64 = 0
    private(set) var entries = 0
    private(set) var dataBytes: UInt64 = 0

    init(_ limits: ImportLimits) {
        self.limits = limits
    }

    /// Counts the entry `reader` just read and checks its stream so far with the entry's data, which
    /// libarchive would otherwise decompress unchecked when it skips a hidden entry.
    mutating func countEntry(of reader: TarLayerReader) throws(ImageImportError) {
        entries += 1
        if entries > limits.maximumEntries {
            throw ImageImportError(
                .tooLarge, "\(reader.name): the image has more than \(limits.maximumEntries) entries, the import limit (imageEntryLimit)")
        }
        let (declared, overflow) = reader.decompressedBytes.addingReportingOverflow(reader.currentEntrySize)
        if overflow || declared > remainingStreamBytes {
            throw exceeded(reader, what: "the decompressed layers")
        }
    }

    /// Counts `count` bytes of file data read from `reader`'s layer.
    mutating func countData(_ count: Int, of reader: TarLayerReader) throws(ImageImportError) {
        dataBytes += UInt64(count)
        if dataBytes > limits.maximumExpandedBytes {
            throw exceeded(reader, what: "file data")
        }
    }

    /// Ends `reader`'s layer: its whole stream counts from now on.
    mutating func finishLayer(_ reader: TarLayerReader) throws(ImageImportError) {
        try checkStream(of: reader)
        finishedStreamBytes += reader.decompressedBytes
    }

    /// What the current layer's stream may still hold.
    private var remainingStreamBytes: UInt64 {
        limits.maximumExpandedBytes - min(finishedStreamBytes, limits.maximumExpandedBytes)
    }

    private func checkStream(of reader: TarLayerReader) throws(ImageImportError) {
        if reader.decompressedBytes > remainingStreamBytes {
            throw exceeded(reader, what: "the decompressed layers")
        }
    }

    private func exceeded(_ reader: TarLayerReader, what: String) -> ImageImportError {
        ImageImportError(
            .tooLarge,
            "\(reader.name): \(what) of the image exceed \(limits.maximumExpandedBytes) bytes, the import limit (imageExpandedSizeLimit); the layer may be a decompression bomb")
    }
}
