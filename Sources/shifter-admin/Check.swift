import ArgumentParser
import ShifterCore
import ShifterRuntime

#if canImport(Glibc)
import Glibc
#endif

extension ShifterAdmin {
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Report what ended jobs left on this node; exit 1 when anything is left.",
            discussion: """
                A job counts as ended when Slurm no longer lists it (squeue) or, with --active, \
                when it is not among the jobs given. Each line names what is left and the command \
                that removes it.
                """
        )

        @OptionGroup var site: SiteOptions

        @Option(help: ArgumentHelp("The jobs that have not ended, comma-separated, instead of asking squeue (empty: none).", valueName: "JOBIDS"))
        var active: String?

        func run() throws {
            try requireRoot("check")
            let config = try site.load()
            let given = try active.map(Self.parseJobs)
            // Slurm is asked after the node is looked at, so a job that starts meanwhile is active.
            let found = try NodeInventory.leftovers(config: config, activeJobs: { () throws -> Set<UInt32> in
                try given ?? Self.jobsInQueue()
            })
            for line in found { print(line) }
            if found.isEmpty {
                print("nothing left behind")
            } else {
                throw ExitCode.failure
            }
        }

        static func parseJobs(_ text: String) throws -> Set<UInt32> {
            var jobs = Set<UInt32>()
            for word in text.split(separator: ",") {
                let trimmed = word.trimmingCharacters(in: " ")
                guard let job = UInt32(trimmed) else {
                    throw ValidationError("--active: \"\(trimmed)\" is not a job id")
                }
                jobs.insert(job)
            }
            return jobs
        }

        /// The ids of the jobs squeue lists (every state before the end: pending, running,
        /// completing, suspended). A job array's tasks and a heterogeneous job's components count
        /// by their own ids (`%A`).
        static func jobsInQueue() throws -> Set<UInt32> {
            guard let pipe = popen("squeue --noheader --all --format=%A 2>&1", "r") else {
                printError("check: couldn't run squeue: \(String(cString: strerror(errno))); pass --active JOBIDS")
                throw ExitCode.failure
            }
            var output = ""
            var buffer = [CChar](repeating: 0, count: 4096)
            while fgets(&buffer, Int32(buffer.count), pipe) != nil {
                output += String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
            let status = pclose(pipe)
            let lines = output.split(separator: "\n").map { $0.trimmingCharacters(in: " ") }
            guard status == 0 else {
                printError("check: squeue failed: \(lines.last ?? "status \(status)"); pass --active JOBIDS if Slurm cannot be reached")
                throw ExitCode.failure
            }
            var jobs = Set<UInt32>()
            for line in lines where !line.isEmpty {
                guard let job = UInt32(line) else {
                    printError("check: squeue printed \"\(line)\", not a job id; pass --active JOBIDS")
                    throw ExitCode.failure
                }
                jobs.insert(job)
            }
            return jobs
        }
    }
}

extension Substring {
    func trimmingCharacters(in character: Character) -> String {
        String(drop { $0 == character }.reversed().drop { $0 == character }.reversed())
    }
}
