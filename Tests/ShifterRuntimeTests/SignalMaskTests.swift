import ShifterSystem
import Testing
@testable import ShifterRuntime

#if canImport(Glibc)
import Glibc
#endif

/// While `shifter` builds a private root, the signals that end a command wait; the caller's mask
/// is back afterwards, whether the build succeeded or failed, so the command exec'd sees it.
@Suite struct TerminationSignalTests {
    static let termination = [SIGINT, SIGQUIT, SIGHUP, SIGTERM]

    /// The test runner's threads block most signals: each test runs on a thread that blocks only
    /// `blocked`, as a command started from a shell does, and the runner's mask is put back.
    func withThreadMask(blocking blocked: [Int32], _ body: () throws -> Void) rethrows {
        var wanted = sigset_t(), original = sigset_t()
        sigemptyset(&wanted)
        for signal in blocked { sigaddset(&wanted, signal) }
        sigprocmask(SIG_SETMASK, &wanted, &original)
        defer { sigprocmask(SIG_SETMASK, &original, nil) }
        try body()
    }

    @Test func blockedDuringTheBuildAndRestoredAfter() throws {
        try withThreadMask(blocking: []) {
            let during = try ContainerLauncher.withTerminationSignalsBlocked { () throws(RuntimeError) -> SignalMask in
                ProcessControl.signalMask()
            }

            for signal in Self.termination { #expect(during.contains(signal)) }
            #expect(!during.contains(SIGUSR1))
            let after = ProcessControl.signalMask()
            for signal in Self.termination + [SIGUSR1] { #expect(!after.contains(signal)) }
        }
    }

    @Test func restoredWhenTheBuildFails() {
        withThreadMask(blocking: []) {
            #expect(throws: RuntimeError.self) {
                try ContainerLauncher.withTerminationSignalsBlocked { () throws(RuntimeError) in
                    throw RuntimeError("mount failed")
                }
            }

            let after = ProcessControl.signalMask()
            for signal in Self.termination { #expect(!after.contains(signal)) }
        }
    }

    @Test func theCallersOwnMaskIsKept() throws {
        try withThreadMask(blocking: [SIGUSR2, SIGHUP]) {
            try ContainerLauncher.withTerminationSignalsBlocked { () throws(RuntimeError) in }

            let after = ProcessControl.signalMask()
            #expect(after.contains(SIGUSR2))
            #expect(after.contains(SIGHUP))
            #expect(!after.contains(SIGTERM))
            #expect(!after.contains(SIGINT))
        }
    }
}
