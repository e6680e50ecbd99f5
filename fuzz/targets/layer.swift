import Foundation
@testable import ShifterImage

/// Whole layer blobs (tar, compressed or not) through libarchive, the merger and the squashfs
/// writer, as an import flattens them, under small import limits so that a generated bomb ends
/// quickly. Each input becomes an image or a refusal.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLayer(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let directory = NSTemporaryDirectory()
    let blob = directory + "/shifter-fuzz-layer-\(getpid()).blob"
    let image = directory + "/shifter-fuzz-layer-\(getpid()).squashfs"
    defer {
        unlink(blob)
        unlink(image)
    }
    guard FileManager.default.createFile(atPath: blob, contents: Data(UnsafeBufferPointer(start: data, count: size))) else {
        fatalError("cannot write \(blob)")
    }
    let limits = ImportLimits(maximumExpandedBytes: 32 << 20, maximumEntries: 20_000)
    _ = try? LayerFlattener.flatten(
        layers: [LayerBlob(path: blob, name: "fuzz")], into: image, options: SquashfsOptions(workerCount: 1), limits: limits)
    return 0
}
