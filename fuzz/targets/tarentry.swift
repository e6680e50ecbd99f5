import Foundation
@testable import ShifterImage

/// Tar entries as the flattener receives them from libarchive, without the tar encoding around
/// them: paths, link targets, whiteouts, opaque markers, hard links across layers, devices. Each is
/// accepted or refused with a message; an accepted set is written out as a squashfs image, which
/// walks every directory and inode the merge produced.
///
/// Input: records of a kind byte (mod 9; 8 starts the next lower layer), a path, and for links a
/// target, each ended by a NUL. Bytes from 0xF0 up stand for path pieces the rules care about.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTarEntries(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    var layers: [[LayerEntryHeader]] = [[]]
    var position = 0
    func field() -> [UInt8] {
        var bytes: [UInt8] = []
        while position < input.count {
            let byte = input[position]
            position += 1
            if byte == 0 { break }
            bytes += token(byte)
        }
        return bytes
    }
    while position < input.count, layers.count <= 8 {
        let kindByte = input[position] % 9
        position += 1
        if kindByte == 8 {
            layers.append([])
            continue
        }
        let path = field()
        let kind: LayerEntryHeader.Kind
        switch kindByte {
        case 0: kind = .regularFile
        case 1: kind = .directory
        case 2: kind = .symbolicLink(target: field())
        case 3: kind = .hardLink(target: field())
        case 4: kind = .fifo
        case 5: kind = .socket
        case 6: kind = .characterDevice
        default: kind = .blockDevice
        }
        let metadata = EntryMetadata(permissions: UInt16(truncatingIfNeeded: path.count &* 73), uid: 0, gid: 0, modificationTime: 0)
        layers[layers.count - 1].append(LayerEntryHeader(path: path, kind: kind, metadata: metadata))
    }
    let image = NSTemporaryDirectory() + "/shifter-fuzz-\(getpid()).squashfs"
    defer { unlink(image) }
    do throws(ImageImportError) {
        let writer = try SquashfsWriter(path: image, options: SquashfsOptions(workerCount: 1))
        let merger = LayerMerger()
        // The first layer of the input is the top one, as the flattener reads them.
        for (offset, entries) in layers.enumerated() {
            let index = layers.count - 1 - offset
            merger.beginLayer(index, name: "layer \(index)")
            for (entryIndex, header) in entries.enumerated() {
                if let inode = try merger.add(header, entryIndex: entryIndex) {
                    inode.content = .regularFile(dataIndex: try storeFile(writer, header.path))
                }
            }
        }
        for (_, files) in merger.deferredFiles {
            for file in files { file.inode.content = .regularFile(dataIndex: try storeFile(writer, [])) }
        }
        try merger.finish()
        try writer.finish(merger.tree)
    } catch {
        // A refusal is a correct outcome; only a crash or a hang is a finding.
    }
    return 0
}

private func storeFile(_ writer: SquashfsWriter, _ content: [UInt8]) throws(ImageImportError) -> Int {
    let index = try writer.beginFile()
    var failure: ImageImportError?
    content.withUnsafeBytes { bytes in
        do throws(ImageImportError) { try writer.append(bytes) } catch { failure = error }
    }
    if let failure { throw failure }
    try writer.endFile()
    return index
}

private let tokens: [[UInt8]] = ["/", ".", "..", ".wh.", ".wh..wh..opq", ".wh..wh.plnk", "a", "b", "a/b", "./", "//", "\n",
                                 String(repeating: "n", count: 255), String(repeating: "d/", count: 300), "\u{FF}", "é"].map { Array($0.utf8) }

private func token(_ byte: UInt8) -> [UInt8] {
    byte >= 0xF0 ? tokens[Int(byte - 0xF0) % tokens.count] : [byte]
}
