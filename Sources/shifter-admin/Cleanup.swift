import ArgumentParser
import ShifterCore
import ShifterRuntime

extension ShifterAdmin {
    struct Cleanup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a job's root on this node, as its epilog would have.",
            discussion: """
                Kills what still runs inside the root, unmounts it, releases its loop devices, \
                removes its directories and records, and deletes the job's per-node cache files \
                left in perNodeCachePath. Run it after an epilog was killed or failed (Slurm drains \
                the node then), and resume the node when it reports the job clean. Safe to run \
                twice. Do not run it for a job that still runs: its tasks are killed.
                """
        )

        @OptionGroup var site: SiteOptions

        @Option(name: .customLong("job"), help: ArgumentHelp("The job whose root to remove (repeat for several).", valueName: "JOBID"))
        var jobs: [UInt32] = []

        @Flag(name: .customLong("private-caches"), help: "Remove the per-node cache files that shifter runs outside any job left when they were killed (older than ten minutes).")
        var privateCaches = false

        func validate() throws {
            guard !jobs.isEmpty || privateCaches else {
                throw ValidationError("name the job with --job JOBID ('shifter-admin list' shows the roots on this node), or give --private-caches")
            }
        }

        func run() throws {
            try requireRoot("cleanup")
            let config = try site.load()
            var failed = false
            for job in jobs {
                let left = JobRoot.remove(config: config, jobID: job, byAdministrator: true,
                                          warn: { printError("cleanup: job \(job): \($0)") })
                if left.isEmpty {
                    print("job \(job): clean")
                } else {
                    failed = true
                    printError("cleanup: job \(job): " + left.joined(separator: "; "))
                }
            }
            if privateCaches {
                let (removed, left) = NodeInventory.removeAbandonedPrivateCaches(config: config)
                for path in removed { print("removed \(path)") }
                for problem in left { printError("cleanup: \(problem)") }
                if !left.isEmpty { failed = true }
            }
            if failed { throw ExitCode.failure }
        }
    }
}
