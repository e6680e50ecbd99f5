import Foundation
import Testing
@testable import ShifterSystem

/// A run ends when the program exits, whatever it left behind, and no later than its time limit.
@Suite struct ProgramRunnerTests {
    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = (ContinuousClock.now - start).components
        return Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
    }

    /// The program's background process, by the pid it printed; killed whatever the test found.
    static func backgroundPID(in output: String) throws -> pid_t {
        try #require(output.split(separator: "\n").first.flatMap { pid_t($0) }, "no pid in \(output.debugDescription)")
    }

    @Test func collectsStatusAndBothStreams() throws {
        let outcome = try ProgramRunner.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"])

        #expect(outcome.status == 3)
        #expect(!outcome.timedOut)
        #expect(outcome.output.contains("out\n"))
        #expect(outcome.output.contains("err\n"))
    }

    @Test func showsBothStreamsOnTheGivenDescriptorAndCollectsNothing() throws {
        var ends: [Int32] = [-1, -1]
        #expect(pipe(&ends) == 0)
        defer { close(ends[0]) }
        let outcome = try ProgramRunner.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 4"], showingOutputOn: ends[1])
        close(ends[1])
        var shown: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 256)
        while case let count = read(ends[0], &chunk, chunk.count), count > 0 { shown += chunk[0..<count] }

        #expect(outcome.status == 4)
        #expect(outcome.output.isEmpty)
        #expect(String(decoding: shown, as: UTF8.self) == "out\nerr\n")
    }

    @Test func aBackgroundProcessHoldingTheOutputDoesNotHoldTheRun() throws {
        let start = ContinuousClock.now
        let outcome = try ProgramRunner.run("/bin/sh", ["-c", "sleep 30 & echo $!; echo done"])
        let elapsed = Self.seconds(since: start)
        let background = try Self.backgroundPID(in: outcome.output)
        defer { kill(background, SIGKILL) }

        #expect(elapsed < 5, "the run waited \(elapsed) s for the background process")
        #expect(outcome.status == 0)
        #expect(!outcome.timedOut)
        #expect(outcome.output.hasSuffix("done\n"))
    }

    @Test func aProgramPastItsTimeLimitIsKilledWithItsProcessGroup() throws {
        let start = ContinuousClock.now
        let outcome = try ProgramRunner.run("/bin/sh", ["-c", "sleep 30 & echo $!; sleep 30"],
                                            timeLimit: .milliseconds(300))
        let elapsed = Self.seconds(since: start)
        let background = try Self.backgroundPID(in: outcome.output)
        defer { kill(background, SIGKILL) }

        #expect(elapsed < 5, "the run took \(elapsed) s")
        #expect(outcome.timedOut)
        #expect(outcome.status == 128 + SIGKILL)
        // Killed too: gone, or a zombie until its new parent reaps it.
        var gone = false
        for _ in 0..<100 where !gone {
            let stat = (try? String(contentsOfFile: "/proc/\(background)/stat", encoding: .utf8)) ?? ""
            gone = stat.isEmpty || stat.contains(") Z ")
            if !gone { usleep(20_000) }
        }
        #expect(gone, "the hook's background process \(background) survived the time limit")
    }

    @Test func aProgramThatCannotStartIsAnError() {
        #expect(throws: SystemError.self) { _ = try ProgramRunner.run("/nonexistent/program", []) }
    }
}
