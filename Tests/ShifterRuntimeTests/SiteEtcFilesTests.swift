import Foundation
import Testing
@testable import ShifterRuntime

/// The site's `etcPath` files go into every container's `/etc`: files and links to them, never its
/// subdirectories; an `etcPath` that cannot be read stops the build with its name.
@Suite struct SiteEtcFilesTests {
    @Test func filesAndLinksAreCopiedSubdirectoriesAreNot() throws {
        let directory = NSTemporaryDirectory() + "/shifter-etc-test-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory + "/skel", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: directory + "/passwd", contents: Data("site\n".utf8))
        try FileManager.default.createSymbolicLink(atPath: directory + "/localtime", withDestinationPath: directory + "/passwd")
        try FileManager.default.createSymbolicLink(atPath: directory + "/gone", withDestinationPath: directory + "/absent")

        #expect(try ContainerPlanner.siteEtcFileNames(directory) == ["gone", "localtime", "passwd"])
    }

    @Test func noEtcPathIsNoFiles() throws {
        #expect(try ContainerPlanner.siteEtcFileNames(nil).isEmpty)
    }

    @Test func anUnreadableEtcPathIsAnError() {
        #expect {
            try ContainerPlanner.siteEtcFileNames("/nonexistent/shifter-etc")
        } throws: { error in
            "\(error)".hasPrefix("etcPath /nonexistent/shifter-etc in udiRoot.conf: couldn't ") && "\(error)".contains("No such file")
        }
    }
}
