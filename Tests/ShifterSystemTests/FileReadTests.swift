import Foundation
import Testing
@testable import ShifterSystem

/// `FileSystem.readFile` returns every byte of a file, whatever its size against its read chunk,
/// and refuses one over the limit.
@Suite struct FileReadTests {
    private func withFile(_ bytes: [UInt8], _ body: (String) throws -> Void) throws {
        let path = NSTemporaryDirectory() + "shifter-read-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        try body(path)
    }

    @Test(arguments: [0, 1, 4095, 4096, 65535, 65536, 65537, 200_000])
    func readsEveryByte(size: Int) throws {
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
        try withFile(bytes) { path in
            #expect(try FileSystem.readFile(path) == bytes)
            let (read, status) = try FileSystem.readFileWithStatus(path)
            #expect(read == bytes)
            #expect(status.size == Int64(size))
        }
    }

    @Test func refusesAFileOverTheLimit() throws {
        var refused: SystemError?
        try withFile([UInt8](repeating: 7, count: 70_000)) { path in
            #expect(try FileSystem.readFile(path, limit: 70_000).count == 70_000)
            do { _ = try FileSystem.readFile(path, limit: 69_999) } catch let error as SystemError { refused = error }
        }
        #expect(refused?.errno == EFBIG)
    }

    @Test func saysWhyAMissingFileCannotBeRead() {
        let error = #expect(throws: SystemError.self) { try FileSystem.readFile("/nonexistent/shifter-read") }
        #expect(error?.errno == ENOENT)
    }
}
