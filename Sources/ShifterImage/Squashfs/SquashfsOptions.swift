#if canImport(Glibc)
import Glibc
#endif

/// The compressor of an image and its level.
public struct SquashfsCompression: Sendable, Equatable, CustomStringConvertible {
    /// The compressors the kernel's squashfs driver reads on every supported distribution.
    public enum Algorithm: String, Sendable, CaseIterable {
        case zstd, gzip, lz4, xz
    }

    /// The compressor.
    public var algorithm: Algorithm
    /// The level, where the algorithm has one (`nil` for lz4).
    public var level: Int?

    /// Zstandard at level 3: for a Python-sized tree about 15 times faster to write than zstd 15
    /// or gzip 9, and within a few percent of gzip's size.
    public static let standard = SquashfsCompression(algorithm: .zstd, level: 3)

    /// Creates a setting; `level` `nil` picks the algorithm's usual default.
    public init(algorithm: Algorithm, level: Int? = nil) {
        self.algorithm = algorithm
        self.level = level ?? Self.defaultLevel(algorithm)
    }

    /// The range of levels the algorithm takes, or `nil` when it has none.
    public static func levels(_ algorithm: Algorithm) -> ClosedRange<Int>? {
        switch algorithm {
        case .zstd: return 1...22
        case .gzip: return 1...9
        case .xz: return 0...9
        case .lz4: return nil
        }
    }

    private static func defaultLevel(_ algorithm: Algorithm) -> Int? {
        switch algorithm {
        case .zstd: return 3
        case .gzip: return 9
        case .xz: return 6
        case .lz4: return nil
        }
    }

    /// Parses `ALGORITHM[:LEVEL]`, such as `zstd`, `zstd:19` or `gzip:6`.
    public static func parse(_ text: String) throws(ImageImportError) -> SquashfsCompression {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let names = Algorithm.allCases.map(\.rawValue).joined(separator: ", ")
        guard let first = parts.first, let algorithm = Algorithm(rawValue: String(first)) else {
            throw ImageImportError(.invalidLayer, "compression \(displayQuoted(text)): unknown compressor; use one of \(names)")
        }
        guard parts.count == 2 else { return SquashfsCompression(algorithm: algorithm) }
        guard let range = levels(algorithm) else {
            throw ImageImportError(.invalidLayer, "compression \(displayQuoted(text)): \(algorithm.rawValue) takes no level")
        }
        guard let level = Int(parts[1]), range.contains(level) else {
            throw ImageImportError(
                .invalidLayer,
                "compression \(displayQuoted(text)): level must be a number from \(range.lowerBound) to \(range.upperBound)")
        }
        return SquashfsCompression(algorithm: algorithm, level: level)
    }

    /// `zstd:3`, `lz4`.
    public var description: String {
        level.map { "\(algorithm.rawValue):\($0)" } ?? algorithm.rawValue
    }
}

/// How a squashfs image is written.
public struct SquashfsOptions: Sendable, Equatable {
    /// The compressor.
    public var compression: SquashfsCompression
    /// The data block size in bytes, a power of two from 4 KiB to 1 MiB.
    public var blockSize: Int
    /// How many threads compress data blocks.
    public var workerCount: Int
    /// The image's own modification time, in seconds since the epoch.
    public var modificationTime: UInt32

    /// Creates options; the defaults are zstd level 3, 128 KiB blocks and one worker per CPU.
    public init(
        compression: SquashfsCompression = .standard, blockSize: Int = 128 * 1024,
        workerCount: Int = SquashfsOptions.onlineProcessorCount, modificationTime: UInt32 = 0
    ) {
        self.compression = compression
        self.blockSize = blockSize
        self.workerCount = max(1, workerCount)
        self.modificationTime = modificationTime
    }

    /// The number of processors online; the corresponding C function is `sysconf(_SC_NPROCESSORS_ONLN)`.
    public static var onlineProcessorCount: Int {
        max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }
}
