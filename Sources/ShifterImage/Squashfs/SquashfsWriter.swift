import CSquashfs

#if canImport(Glibc)
import Glibc
#endif

/// Writes a squashfs image with libsquashfs: file data is streamed into the block processor as
/// layers are read, and the inode, directory, fragment, id and xattr tables are written at the end
/// from the merged tree.
///
/// libsquashfs 1.2 offers the table writers but no tree serialiser, so this type lays the image
/// out the way its own tools do: superblock, compressor options, data and fragment blocks, inode
/// table, directory table, fragment table, id table, xattr table, padded to 4 KiB.
final class SquashfsWriter {
    private let path: String
    private let options: SquashfsOptions
    private var superblock = sqfs_super_t()

    private let file: UnsafeMutablePointer<sqfs_file_t>
    private let compressor: UnsafeMutablePointer<sqfs_compressor_t>
    private let blockWriter: UnsafeMutablePointer<sqfs_block_writer_t>
    private let fragmentTable: OpaquePointer
    private let processor: OpaquePointer
    private let idTable: OpaquePointer
    private let xattrWriter: OpaquePointer
    private let inodeWriter: OpaquePointer
    private let directoryMetaWriter: OpaquePointer
    private let directoryWriter: OpaquePointer

    /// Per file: where the block processor keeps the file's inode, which it grows and moves.
    private var fileInodes: [UnsafeMutablePointer<UnsafeMutablePointer<sqfs_inode_generic_t>?>] = []
    private var fileOpen = false
    private var finished = false

    /// Creates (or truncates) the image file at `path`.
    init(path: String, options: SquashfsOptions) throws(ImageImportError) {
        self.path = path
        self.options = options
        var created: [UnsafeMutableRawPointer] = []
        func fail(_ what: String, _ status: Int32 = SQFS_ERROR_ALLOC.rawValue) -> ImageImportError {
            for object in created.reversed() { sqfs_destroy(object) }
            return ImageImportError(.squashfs, "image \(displayQuoted(path)): \(what): \(SquashfsWriter.describe(status))")
        }

        let algorithmID: SQFS_COMPRESSOR
        switch options.compression.algorithm {
        case .zstd: algorithmID = SQFS_COMP_ZSTD
        case .gzip: algorithmID = SQFS_COMP_GZIP
        case .lz4: algorithmID = SQFS_COMP_LZ4
        case .xz: algorithmID = SQFS_COMP_XZ
        }
        var config = sqfs_compressor_config_t()
        var status = sqfs_compressor_config_init(&config, algorithmID, options.blockSize, 0)
        if status != 0 { throw fail("configuring \(options.compression)", status) }
        if let level = options.compression.level { config.level = UInt32(level) }

        guard let file = sqfs_open_file(path, UInt32(SQFS_FILE_OPEN_OVERWRITE.rawValue)) else {
            throw ImageImportError(.io, "image \(displayQuoted(path)): cannot create the file: \(String(cString: strerror(errno)))")
        }
        created.append(UnsafeMutableRawPointer(file))
        self.file = file

        var compressor: UnsafeMutablePointer<sqfs_compressor_t>?
        status = sqfs_compressor_create(&config, &compressor)
        guard status == 0, let compressor else { throw fail("creating the \(options.compression) compressor", status) }
        created.append(UnsafeMutableRawPointer(compressor))
        self.compressor = compressor

        status = sqfs_super_init(&superblock, options.blockSize, options.modificationTime, algorithmID)
        if status != 0 { throw fail("initialising the superblock", status) }
        // The superblock is written now to reserve its place, and again with its final values.
        status = sqfs_super_write(&superblock, file)
        if status != 0 { throw fail("writing the superblock", status) }
        status = compressor.pointee.write_options(compressor, file)
        if status < 0 { throw fail("writing the compressor options", status) }
        if status > 0 { superblock.flags |= UInt16(SQFS_FLAG_COMPRESSOR_OPTIONS.rawValue) }

        guard let blockWriter = sqfs_block_writer_create(file, Int(SQFS_DEVBLK_SIZE), 0) else {
            throw fail("creating the block writer")
        }
        created.append(UnsafeMutableRawPointer(blockWriter))
        self.blockWriter = blockWriter
        guard let fragmentTable = sqfs_frag_table_create(0) else { throw fail("creating the fragment table") }
        created.append(UnsafeMutableRawPointer(fragmentTable))
        self.fragmentTable = fragmentTable
        let workers = UInt32(options.workerCount)
        guard let processor = sqfs_block_processor_create(
            options.blockSize, compressor, workers, Int(max(16, workers * 8)), blockWriter, fragmentTable)
        else { throw fail("creating the block processor") }
        created.append(UnsafeMutableRawPointer(processor))
        self.processor = processor
        guard let idTable = sqfs_id_table_create(0) else { throw fail("creating the id table") }
        created.append(UnsafeMutableRawPointer(idTable))
        self.idTable = idTable
        guard let xattrWriter = sqfs_xattr_writer_create(0) else { throw fail("creating the xattr writer") }
        created.append(UnsafeMutableRawPointer(xattrWriter))
        self.xattrWriter = xattrWriter
        guard let inodeWriter = sqfs_meta_writer_create(file, compressor, 0) else {
            throw fail("creating the inode table writer")
        }
        created.append(UnsafeMutableRawPointer(inodeWriter))
        self.inodeWriter = inodeWriter
        // The directory table must follow the whole inode table, so it is kept in memory until then.
        guard let directoryMetaWriter = sqfs_meta_writer_create(file, compressor, UInt32(SQFS_META_WRITER_KEEP_IN_MEMORY.rawValue))
        else { throw fail("creating the directory table writer") }
        created.append(UnsafeMutableRawPointer(directoryMetaWriter))
        self.directoryMetaWriter = directoryMetaWriter
        guard let directoryWriter = sqfs_dir_writer_create(directoryMetaWriter, 0) else {
            throw fail("creating the directory writer")
        }
        self.directoryWriter = directoryWriter
    }

    deinit {
        // libsquashfs 1.2 frees the block processor's pending fragment block only when it finishes:
        // an import that fails half-way leaked 128 KiB each time (found by fuzz/targets/tarentry),
        // which adds up in the long-running gateway. Finishing writes into a file that is removed.
        if !finished {
            if fileOpen { _ = sqfs_block_processor_end_file(processor) }
            _ = sqfs_block_processor_finish(processor)
        }
        for slot in fileInodes {
            if let inode = slot.pointee { sqfs_free(inode) }
            slot.deallocate()
        }
        // The block processor's worker threads use the fragment table, block writer, compressor and
        // file, so it is destroyed before them.
        for object: UnsafeMutableRawPointer in [
            UnsafeMutableRawPointer(directoryWriter), UnsafeMutableRawPointer(directoryMetaWriter),
            UnsafeMutableRawPointer(inodeWriter), UnsafeMutableRawPointer(xattrWriter), UnsafeMutableRawPointer(idTable),
            UnsafeMutableRawPointer(processor), UnsafeMutableRawPointer(fragmentTable), UnsafeMutableRawPointer(blockWriter),
            UnsafeMutableRawPointer(compressor), UnsafeMutableRawPointer(file),
        ] {
            sqfs_destroy(object)
        }
    }

    // MARK: - File data

    /// Starts a regular file; returns the index that names its data in the tree.
    func beginFile() throws(ImageImportError) -> Int {
        let slot = UnsafeMutablePointer<UnsafeMutablePointer<sqfs_inode_generic_t>?>.allocate(capacity: 1)
        slot.initialize(to: nil)
        fileInodes.append(slot)
        try check(sqfs_block_processor_begin_file(processor, slot, nil, 0), "starting a file")
        fileOpen = true
        return fileInodes.count - 1
    }

    /// Appends data to the file begun last.
    func append(_ data: UnsafeRawBufferPointer) throws(ImageImportError) {
        guard let base = data.baseAddress, data.count > 0 else { return }
        try check(sqfs_block_processor_append(processor, base, data.count), "storing file data")
    }

    /// Ends the file begun last.
    func endFile() throws(ImageImportError) {
        fileOpen = false
        try check(sqfs_block_processor_end_file(processor), "ending a file")
    }

    /// Bytes of file data fed in so far.
    var dataBytesRead: UInt64 {
        sqfs_block_processor_get_stats(processor).pointee.input_bytes_read
    }

    // MARK: - Tables

    /// Waits for the compressor threads, writes the tree's inodes and directories and every table,
    /// and completes the superblock. The file is complete but not yet synced when this returns.
    func finish(_ tree: FlattenedTree) throws(ImageImportError) {
        guard !finished, !fileOpen else {
            throw ImageImportError(.squashfs, "image \(displayQuoted(path)): finished twice or with a file still open")
        }
        finished = true
        try check(sqfs_block_processor_finish(processor), "writing the remaining data blocks")

        let directories = Self.postOrder(tree.root)
        let inodeCount = Self.numberInodes(directories)

        superblock.inode_table_start = file.pointee.get_size(file)
        var references: [ObjectIdentifier: UInt64] = [:]
        for (directory, parent) in directories {
            let parentNumber = parent?.inodeNumber ?? inodeCount + 1
            references[ObjectIdentifier(directory)] = try writeDirectory(directory, parentNumber: parentNumber, references: references)
        }
        try check(sqfs_meta_writer_flush(inodeWriter), "writing the inode table")
        try check(sqfs_meta_writer_flush(directoryMetaWriter), "writing the directory table")
        superblock.root_inode_ref = references[ObjectIdentifier(tree.root)] ?? 0
        superblock.directory_table_start = file.pointee.get_size(file)
        try check(sqfs_meta_write_write_to_file(directoryMetaWriter), "writing the directory table")
        try check(sqfs_frag_table_write(fragmentTable, file, &superblock, compressor), "writing the fragment table")
        try check(sqfs_id_table_write(idTable, file, &superblock, compressor), "writing the id table")
        try check(sqfs_xattr_writer_flush(xattrWriter, file, &superblock, compressor), "writing the xattr table")
        superblock.inode_count = inodeCount
        superblock.bytes_used = file.pointee.get_size(file)
        try check(sqfs_super_write(&superblock, file), "writing the superblock")

        // Loop devices and some block layers want whole 4 KiB blocks.
        let remainder = Int(superblock.bytes_used % UInt64(SQFS_DEVBLK_SIZE))
        if remainder != 0 {
            let padding = [UInt8](repeating: 0, count: Int(SQFS_DEVBLK_SIZE) - remainder)
            let status = padding.withUnsafeBytes { bytes in
                file.pointee.write_at(file, superblock.bytes_used, bytes.baseAddress, bytes.count)
            }
            try check(status, "padding the image")
        }
    }

    /// Directories with their parents, children before parents and siblings in name order.
    private static func postOrder(_ root: DirectoryNode) -> [(DirectoryNode, DirectoryNode?)] {
        // A reversed pre-order that pushes children in name order is a post-order; doing it with an
        // explicit stack keeps hostile nesting depths off the call stack.
        var order: [(DirectoryNode, DirectoryNode?)] = []
        var stack: [(DirectoryNode, DirectoryNode?)] = [(root, nil)]
        while let (directory, parent) = stack.popLast() {
            order.append((directory, parent))
            directory.orderedChildren = directory.sortedChildren
            for (_, node) in directory.orderedChildren {
                if case .directory(let child) = node { stack.append((child, directory)) }
            }
        }
        return order.reversed()
    }

    /// Numbers inodes the way squashfs tools do: each directory's entries get consecutive numbers,
    /// after everything beneath them, so a directory's entries stay within one header's range.
    /// Returns the number of inodes; the root's is the highest.
    private static func numberInodes(_ directories: [(DirectoryNode, DirectoryNode?)]) -> UInt32 {
        var next: UInt32 = 0
        for (directory, _) in directories {
            for (_, node) in directory.orderedChildren {
                switch node {
                case .directory(let child):
                    next += 1
                    child.inodeNumber = next
                case .leaf(let leaf):
                    guard let inode = leaf.inode else { continue }
                    inode.linkCount += 1
                    if inode.inodeNumber == 0 {
                        next += 1
                        inode.inodeNumber = next
                    }
                }
            }
        }
        next += 1
        directories.last?.0.inodeNumber = next
        return next
    }

    private func writeDirectory(
        _ directory: DirectoryNode, parentNumber: UInt32, references: [ObjectIdentifier: UInt64]
    ) throws(ImageImportError) -> UInt64 {
        try check(sqfs_dir_writer_begin(directoryWriter, 0), "starting a directory")
        var subdirectoryCount: UInt32 = 0
        for (name, node) in directory.orderedChildren {
            let number: UInt32
            let reference: UInt64
            let mode: UInt16
            switch node {
            case .directory(let child):
                subdirectoryCount += 1
                number = child.inodeNumber
                reference = references[ObjectIdentifier(child)] ?? 0
                mode = Self.directoryMode
            case .leaf(let leaf):
                guard let inode = leaf.inode else {
                    throw ImageImportError(.squashfs, "image \(displayQuoted(path)): entry \(name) has no inode")
                }
                if !inode.isWritten { try writeLeaf(inode, name: name) }
                number = inode.inodeNumber
                reference = inode.inodeReference
                mode = Self.typeBits(inode.content)
            }
            let status = (name.bytes + [0]).withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { text in
                    sqfs_dir_writer_add_entry(directoryWriter, text.baseAddress, number, reference, mode)
                }
            }
            try check(status, "adding directory entry \(name)")
        }
        try check(sqfs_dir_writer_end(directoryWriter), "ending a directory")

        let xattrIndex = try xattrIndex(directory.metadata.extendedAttributes)
        guard let inode = sqfs_dir_writer_create_inode(directoryWriter, 0, xattrIndex, parentNumber) else {
            throw ImageImportError(.squashfs, "image \(displayQuoted(path)): creating a directory inode: out of memory")
        }
        defer { sqfs_free(inode) }
        if inode.pointee.base.type == UInt16(SQFS_INODE_DIR.rawValue) {
            inode.pointee.data.dir.nlink = 2 + subdirectoryCount
        } else {
            inode.pointee.data.dir_ext.nlink = 2 + subdirectoryCount
        }
        return try writeInode(inode, metadata: directory.metadata, typeBits: Self.directoryMode, number: directory.inodeNumber)
    }

    private func writeLeaf(_ leaf: LeafInode, name: PathComponent) throws(ImageImportError) {
        let inode: UnsafeMutablePointer<sqfs_inode_generic_t>
        var ownsInode = true
        switch leaf.content {
        case .regularFile(let dataIndex):
            guard let dataIndex, dataIndex < fileInodes.count, let stored = fileInodes[dataIndex].pointee else {
                throw ImageImportError(.squashfs, "image \(displayQuoted(path)): file \(name) has no data")
            }
            inode = stored
            ownsInode = false
            if leaf.linkCount > 1 {
                try check(sqfs_inode_make_extended(inode), "extending the inode of \(name)")
                inode.pointee.data.file_ext.nlink = leaf.linkCount
            }
        case .symbolicLink(let target):
            inode = try allocateInode(extra: target.count)
            inode.pointee.base.type = UInt16(SQFS_INODE_SLINK.rawValue)
            inode.pointee.data.slink.nlink = leaf.linkCount
            inode.pointee.data.slink.target_size = UInt32(target.count)
            inode.pointee.payload_bytes_available = UInt32(target.count)
            inode.pointee.payload_bytes_used = UInt32(target.count)
            target.withUnsafeBytes { bytes in
                if let source = bytes.baseAddress {
                    (UnsafeMutableRawPointer(inode) + Self.extraOffset).copyMemory(from: source, byteCount: bytes.count)
                }
            }
        case .fifo, .socket:
            inode = try allocateInode(extra: 0)
            let type = leaf.content == .fifo ? SQFS_INODE_FIFO : SQFS_INODE_SOCKET
            inode.pointee.base.type = UInt16(type.rawValue)
            inode.pointee.data.ipc.nlink = leaf.linkCount
        }
        defer {
            if ownsInode { free(inode) }
        }
        let xattrIndex = try xattrIndex(leaf.metadata.extendedAttributes)
        try check(sqfs_inode_set_xattr_index(inode, xattrIndex), "setting the xattrs of \(name)")
        leaf.inodeReference = try writeInode(inode, metadata: leaf.metadata, typeBits: Self.typeBits(leaf.content), number: leaf.inodeNumber)
        leaf.isWritten = true
    }

    private func writeInode(
        _ inode: UnsafeMutablePointer<sqfs_inode_generic_t>, metadata: EntryMetadata, typeBits: UInt16, number: UInt32
    ) throws(ImageImportError) -> UInt64 {
        // A symbolic link's own mode means nothing on Linux, which shows every link as 0777, and so
        // do Docker's extraction and umoci; the squashfs driver would show a layer's 0644 as it is.
        inode.pointee.base.mode = typeBits == Self.symbolicLinkBits ? typeBits | 0o777 : typeBits | metadata.permissions
        inode.pointee.base.mod_time = metadata.modificationTime
        inode.pointee.base.inode_number = number
        try check(sqfs_id_table_id_to_index(idTable, metadata.uid, &inode.pointee.base.uid_idx), "recording uid \(metadata.uid)")
        try check(sqfs_id_table_id_to_index(idTable, metadata.gid, &inode.pointee.base.gid_idx), "recording gid \(metadata.gid)")
        var block: UInt64 = 0
        var offset: UInt32 = 0
        sqfs_meta_writer_get_position(inodeWriter, &block, &offset)
        try check(sqfs_meta_writer_write_inode(inodeWriter, inode), "writing an inode")
        return (block << 16) | UInt64(offset)
    }

    private func xattrIndex(_ attributes: [ExtendedAttribute]) throws(ImageImportError) -> UInt32 {
        if attributes.isEmpty { return 0xFFFF_FFFF }
        try check(sqfs_xattr_writer_begin(xattrWriter, 0), "starting an xattr block")
        for attribute in attributes {
            let status = attribute.value.withUnsafeBytes { value in
                sqfs_xattr_writer_add(xattrWriter, attribute.name, value.baseAddress, value.count)
            }
            try check(status, "storing xattr \(displayQuoted(attribute.name))")
        }
        var index: UInt32 = 0
        try check(sqfs_xattr_writer_end(xattrWriter, &index), "ending an xattr block")
        return index
    }

    private func allocateInode(extra: Int) throws(ImageImportError) -> UnsafeMutablePointer<sqfs_inode_generic_t> {
        guard let memory = calloc(1, MemoryLayout<sqfs_inode_generic_t>.size + extra) else {
            throw ImageImportError(.squashfs, "image \(displayQuoted(path)): allocating an inode: out of memory")
        }
        return memory.bindMemory(to: sqfs_inode_generic_t.self, capacity: 1)
    }

    /// Where the flexible `extra` array of `sqfs_inode_generic_t` starts, which Swift does not import.
    private static let extraOffset: Int = {
        let dataOffset = MemoryLayout<sqfs_inode_generic_t>.offset(of: \.data) ?? 0
        return dataOffset + MemoryLayout.size(ofValue: sqfs_inode_generic_t().data)
    }()

    private static let directoryMode: UInt16 = 0o040000

    private static let symbolicLinkBits: UInt16 = 0o120000

    private static func typeBits(_ content: LeafInode.Content) -> UInt16 {
        switch content {
        case .regularFile: return 0o100000
        case .symbolicLink: return symbolicLinkBits
        case .fifo: return 0o010000
        case .socket: return 0o140000
        }
    }

    private func check(_ status: Int32, _ what: String) throws(ImageImportError) {
        if status != 0 {
            // libsquashfs reports a failed write(2) as a bare SQFS_ERROR_IO; the errno it leaves
            // says why (a full store reads "No space left on device", not "input/output error").
            let cause = errno
            let detail = status == SQFS_ERROR_IO.rawValue && cause != 0 ? ": " + String(cString: strerror(cause)) : ""
            throw ImageImportError(.squashfs, "image \(displayQuoted(path)): \(what): \(Self.describe(status))\(detail)")
        }
    }

    /// libsquashfs has no `strerror`; its codes are named in `sqfs/error.h`.
    static func describe(_ status: Int32) -> String {
        switch status {
        case SQFS_ERROR_ALLOC.rawValue: return "out of memory"
        case SQFS_ERROR_IO.rawValue: return "input/output error"
        case SQFS_ERROR_COMPRESSOR.rawValue: return "compressor failed"
        case SQFS_ERROR_INTERNAL.rawValue: return "internal libsquashfs error"
        case SQFS_ERROR_CORRUPTED.rawValue: return "corrupted data"
        case SQFS_ERROR_UNSUPPORTED.rawValue: return "not supported by this libsquashfs"
        case SQFS_ERROR_OVERFLOW.rawValue: return "size overflow"
        case SQFS_ERROR_OUT_OF_BOUNDS.rawValue: return "out of bounds"
        case SQFS_ERROR_SUPER_BLOCK_SIZE.rawValue: return "invalid block size"
        case SQFS_ERROR_ARG_INVALID.rawValue: return "invalid argument"
        case SQFS_ERROR_SEQUENCE.rawValue: return "calls out of sequence"
        default: return "libsquashfs error \(status)"
        }
    }
}
