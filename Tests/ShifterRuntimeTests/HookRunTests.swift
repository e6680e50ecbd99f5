import Foundation
import ShifterCore
import ShifterSystem
import Testing
@testable import ShifterRuntime

/// A site hook that hangs fails the build with a message that names it, instead of hanging it.
@Suite struct HookRunTests {
    static let layout = RootLayout(name: "job-7", udiMount: "/var/udiMount", loopMount: "/var/loopMount")
    static let user = ContainerUser(uid: 1000, gid: 100, groups: [100], name: "alice", home: "/home/alice",
                                    shell: "/bin/bash")

    func withScript(_ text: String, _ body: (String) throws -> Void) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("shifter-hook-\(UUID().uuidString).sh").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try body(path)
    }

    @Test func aHookPastItsTimeLimitFailsNamingTheHook() throws {
        let builder = RootBuilder(plan: ContainerPlan(layout: Self.layout, user: Self.user, steps: []))
        try withScript("sleep 30\n") { script in
            let error = #expect(throws: RuntimeError.self) {
                try builder.runHook(script, name: "sitePreMountHook", timeLimit: .milliseconds(300))
            }
            #expect(error?.message.hasPrefix("sitePreMountHook \(script) did not finish within") == true,
                    "\(error?.message ?? "")")
        }
    }

    @Test func aFailingHookReportsItsLastLine() throws {
        let builder = RootBuilder(plan: ContainerPlan(layout: Self.layout, user: Self.user, steps: []))
        try withScript("echo checking \"$1\"\necho 'MPI ABI mismatch' >&2\nexit 2\n") { script in
            let error = #expect(throws: RuntimeError.self) {
                try builder.runHook(script, name: "module mpich roothook")
            }
            #expect(error?.message == "module mpich roothook \(script) failed with status 2: MPI ABI mismatch")
        }
    }
}
