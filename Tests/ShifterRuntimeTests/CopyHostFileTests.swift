import Foundation
import ShifterSystem
import Testing
@testable import ShifterRuntime

/// A host file copied into the container is skipped only when the host has none; any other
/// failure stops the build and names the file.
@Suite struct CopyHostFileTests {
    static let user = ContainerUser(uid: 1000, gid: 100, groups: [100], name: "alice", home: "/home/alice",
                                    shell: "/bin/bash")

    /// A scratch directory holding a root directory at the layout's path, and a host directory.
    func withRoot(_ body: (_ layout: RootLayout, _ host: String) throws -> Void) throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("shifter-copy-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let layout = RootLayout(name: "job-7", udiMount: scratch + "/udi", loopMount: scratch + "/loop")
        try FileManager.default.createDirectory(atPath: layout.root + "/etc", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: scratch + "/host", withIntermediateDirectories: true)
        try body(layout, scratch + "/host")
    }

    func build(_ layout: RootLayout, _ steps: [PlannedStep]) throws(RuntimeError) {
        try RootBuilder(plan: ContainerPlan(layout: layout, user: Self.user, steps: steps)).build()
    }

    @Test func copiesTheFile() throws {
        try withRoot { layout, host in
            try "10.0.0.1 node1\n".write(toFile: host + "/hosts", atomically: true, encoding: .utf8)

            try build(layout, [.copyHostFile(hostPath: host + "/hosts", containerPath: "/etc/hosts")])

            #expect(try String(contentsOfFile: layout.root + "/etc/hosts", encoding: .utf8) == "10.0.0.1 node1\n")
        }
    }

    @Test func aMissingHostFileIsSkipped() throws {
        try withRoot { layout, host in
            try build(layout, [.copyHostFile(hostPath: host + "/resolv.conf", containerPath: "/etc/resolv.conf")])

            #expect(!FileManager.default.fileExists(atPath: layout.root + "/etc/resolv.conf"))
        }
    }

    @Test func aHostFileThatCannotBeReadStopsTheBuild() throws {
        try withRoot { layout, host in
            // A directory where a file is expected: read(2) fails with EISDIR, as root too.
            try FileManager.default.createDirectory(atPath: host + "/krb5.conf", withIntermediateDirectories: true)

            let error = #expect(throws: RuntimeError.self) {
                try build(layout, [.copyHostFile(hostPath: host + "/krb5.conf", containerPath: "/etc/krb5.conf")])
            }
            #expect(error?.message.hasPrefix("couldn't copy host file \(host)/krb5.conf to /etc/krb5.conf in the container: ") == true,
                    "\(error?.message ?? "")")
            #expect(error?.message.contains("Is a directory") == true)
        }
    }

    @Test func aHostFileTooLargeStopsTheBuild() throws {
        try withRoot { layout, host in
            let path = host + "/big"
            FileManager.default.createFile(atPath: path, contents: nil)
            try #require(truncate(path, 17 << 20) == 0)

            #expect(throws: RuntimeError.self) {
                try build(layout, [.copyHostFile(hostPath: path, containerPath: "/etc/big")])
            }
        }
    }
}
