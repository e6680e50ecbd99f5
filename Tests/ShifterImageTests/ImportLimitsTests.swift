import Foundation
import Testing
@testable import ShifterImage

/// The import limits stop decompression bombs and entry floods early, and leave ordinary images alone.
struct ImportLimitsTests {
    private func flatten(_ layers: [[TarEntry]], limits: ImportLimits, scratch: ScratchDirectory) throws -> FlattenSummary {
        var blobs: [LayerBlob] = []
        for (index, entries) in layers.enumerated() {
            let path = scratch.file("layer\(index).tar")
            try TarBuilder.write(entries, to: path, compression: .gzip)
            blobs.append(LayerBlob(path: path, name: "L\(index)"))
        }
        return try LayerFlattener.flatten(
            layers: blobs, into: scratch.file("image.squashfs"), options: SquashfsOptions(workerCount: 1), limits: limits)
    }

    @Test func aLayerThatExpandsBeyondTheLimitStopsAtItsHeader() throws {
        let scratch = try ScratchDirectory()
        // 4 MiB of zeros compress to about 4 KiB: a thousandfold expansion.
        let zeros = Data(count: 4 << 20)
        let error = #expect(throws: ImageImportError.self) {
            try flatten([[.file("bomb", data: zeros)]], limits: ImportLimits(maximumExpandedBytes: 1 << 20, maximumEntries: 100), scratch: scratch)
        }
        #expect(error?.code == .tooLarge)
        #expect(error?.message.contains("exceed 1048576 bytes, the import limit (imageExpandedSizeLimit)") == true)
        #expect(error?.message.hasPrefix("layer L0: ") == true)
    }

    @Test func aHiddenBombIsStoppedBeforeItIsSkipped() throws {
        let scratch = try ScratchDirectory()
        // The upper layer removes the bomb, so its data would only be decompressed to be skipped.
        let error = #expect(throws: ImageImportError.self) {
            try flatten(
                [[.file("bomb", data: Data(count: 4 << 20))], [.whiteout("bomb")]],
                limits: ImportLimits(maximumExpandedBytes: 1 << 20, maximumEntries: 100), scratch: scratch)
        }
        #expect(error?.code == .tooLarge)
    }

    @Test func theStreamsOfAllLayersCountTogether() throws {
        let scratch = try ScratchDirectory()
        let half = Data(count: 600 << 10)
        let error = #expect(throws: ImageImportError.self) {
            try flatten(
                [[.file("a", data: half)], [.file("b", data: half)]],
                limits: ImportLimits(maximumExpandedBytes: 1 << 20, maximumEntries: 100), scratch: scratch)
        }
        #expect(error?.code == .tooLarge)
    }

    @Test func tooManyEntriesAreRefused() throws {
        let scratch = try ScratchDirectory()
        let entries = (0..<50).map { TarEntry.file("f\($0)", "") }
        let error = #expect(throws: ImageImportError.self) {
            try flatten([entries], limits: ImportLimits(maximumExpandedBytes: 1 << 30, maximumEntries: 49), scratch: scratch)
        }
        #expect(error?.code == .tooLarge)
        #expect(error?.message.contains("more than 49 entries") == true)
    }

    @Test func anImageWithinTheLimitsIsWritten() throws {
        let scratch = try ScratchDirectory()
        let entries = (0..<50).map { TarEntry.file("f\($0)", "x") }
        let summary = try flatten([entries], limits: ImportLimits(maximumExpandedBytes: 1 << 20, maximumEntries: 50), scratch: scratch)
        #expect(summary.entryCount == 50)
    }

    @Test func siteSettingsReplaceOnlyTheDefaultsTheyName() {
        #expect(ImportLimits(expandedBytes: nil, entries: nil) == .standard)
        let limits = ImportLimits(expandedBytes: 1024, entries: nil)
        #expect(limits.maximumExpandedBytes == 1024)
        #expect(limits.maximumEntries == ImportLimits.standard.maximumEntries)
    }
}
