import Foundation
import Testing
@testable import ShifterSystem

/// A pidfd signals the process it was opened for, and nobody once that process has gone.
@Suite struct ProcessDescriptorTests {
    @Test func signalsTheProcessItHolds() throws {
        let sleeper = try Process.run(URL(fileURLWithPath: "/bin/sleep"), arguments: ["600"])
        defer { if sleeper.isRunning { sleeper.terminate() } }
        let process = try ProcessDescriptor(pid: sleeper.processIdentifier)

        try process.send(SIGKILL)
        for _ in 0..<100 where sleeper.isRunning { usleep(50_000) }

        try #require(!sleeper.isRunning, "the process was not killed")
        #expect(sleeper.terminationReason == .uncaughtSignal)
        #expect(sleeper.terminationStatus == SIGKILL)
    }

    @Test func aProcessThatHasGoneCannotBeSignalled() throws {
        let sleeper = try Process.run(URL(fileURLWithPath: "/bin/sleep"), arguments: ["600"])
        defer { if sleeper.isRunning { sleeper.terminate() } }
        let process = try ProcessDescriptor(pid: sleeper.processIdentifier)
        kill(sleeper.processIdentifier, SIGKILL)
        for _ in 0..<100 where sleeper.isRunning { usleep(50_000) }
        try #require(!sleeper.isRunning)

        // Reaped: the number is free for the next process, but the pidfd still means the old one.
        let error = #expect(throws: SystemError.self) { try process.send(0) }
        #expect(error?.errno == ESRCH)
    }

    @Test func saysWhenTheProcessHasExited() throws {
        let sleeper = try Process.run(URL(fileURLWithPath: "/bin/sleep"), arguments: ["600"])
        defer { if sleeper.isRunning { sleeper.terminate() } }
        let process = try ProcessDescriptor(pid: sleeper.processIdentifier)
        let runningAtFirst = process.hasExited()
        #expect(!runningAtFirst)
        kill(sleeper.processIdentifier, SIGKILL)
        var exited = false
        for _ in 0..<100 where !exited {
            exited = process.hasExited()
            if !exited { usleep(50_000) }
        }
        #expect(exited)
    }

    @Test func noSuchProcess() {
        // Above the largest pid_max the kernel allows (4194304).
        let error = #expect(throws: SystemError.self) { _ = try ProcessDescriptor(pid: 4_194_305) }
        #expect(error?.errno == ESRCH)
    }
}
