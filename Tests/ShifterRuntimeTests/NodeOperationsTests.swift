import Foundation
import ShifterCore
import ShifterSystem
import Testing
@testable import ShifterRuntime

/// What an administrator and node_exporter see of a node: the roots on it, what ended jobs left,
/// the epilog's site hook, and the metrics file.
struct NodeNameTests {
    @Test(arguments: [("job-12", UInt32(12)), ("job-12.failed", 12), ("job-12.caches", 12), ("job-0", 0),
                      ("job-", nil), ("job-012", nil), ("job-1x", nil), ("private", nil), ("job-99999999999", nil),
                      ("job-12.other", nil), ("job-12.step-3", 12), ("job-12.step-3.entry", 12), ("job-12.step-0.failed", 12),
                      ("job-12.step-", nil), ("job-12.step-03", nil), ("job-12.step-3x", nil), ("job-.step-3", nil),
                      ("job-12.step-3.step-4", nil), ("job-12.step-4294967296", nil)])
    func rootNames(name: String, job: UInt32?) {
        #expect(NodeInventory.jobID(inName: name) == job)
    }

    @Test(arguments: [("job-12", "12"), ("job-12.caches", "12"), ("job-12.step-3", "12.3"), ("job-12.step-3.entry", "12.3"),
                      ("job-12.step-x", nil), ("private", nil)])
    func rootNamesWithSteps(name: String, root: String?) {
        #expect(NodeInventory.rootName(name).map { r in r.step.map { "\(r.job).\($0)" } ?? "\(r.job)" } == root)
        if let parsed = NodeInventory.rootName(name) {
            // The name a layout is given, read back.
            #expect(NodeInventory.rootName(RootLayout.name(job: parsed.job, step: parsed.step))! == parsed)
        }
    }

    @Test(arguments: [("shifter-job-7-1a2b.xfs", UInt32(7)), ("shifter-job-70-ffff.xfs", 70), ("shifter-job-7.xfs", nil),
                      ("shifter-job--1a.xfs", nil), ("shifter-job-7-1a2b.txt", nil), ("shifter-private-1a.xfs", nil),
                      ("shifter-job-7.step-2-1a2b.xfs", 7), ("shifter-job-7.failed-1a2b.xfs", nil), ("shifter-job-7.step-2.xfs", nil),
                      ("shifter-job-7.step-02-1a2b.xfs", nil), ("shifter-job-7-.xfs", nil)])
    func cacheFileNames(name: String, job: UInt32?) {
        #expect(PerNodeCache.jobID(inFileName: name) == job)
    }
}

@Suite(.enabled(if: geteuid() == 0, "records and metrics must belong to root, as the prolog's do; run as root"))
struct NodeOperationsTests {
    /// A site with empty udiMount, loopMount and cache directories under a new temporary directory.
    func withSite(_ body: (SiteConfig, String) throws -> Void) throws {
        let top = NSTemporaryDirectory() + "/shifter-node-test-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: top) }
        for directory in ["udi", "loop", "cache"] {
            try FileManager.default.createDirectory(atPath: top + "/" + directory, withIntermediateDirectories: true)
        }
        var config = SiteConfig(udiMount: top + "/udi", loopMount: top + "/loop", imagePath: top + "/images")
        config.perNodeCachePath = top + "/cache"
        try body(config, top)
    }

    @Test func leftoversAreTheEndedJobsRootsTheirCacheFilesAndStrangers() throws {
        try withSite { config, top in
            try FileManager.default.createDirectory(atPath: top + "/udi/job-5", withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: top + "/udi/job-8.failed", contents: Data("job 8: no such image\n".utf8))
            try FileManager.default.createDirectory(atPath: top + "/loop/stray", withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: top + "/cache/shifter-job-6-abcd.xfs", contents: Data("x".utf8))

            let roots = NodeInventory.roots(config: config)
            #expect(roots.map(\.jobID) == [5, 8])
            #expect(roots.map(\.status) == ["incomplete", "failed"])
            #expect(roots[1].failure == "job 8: no such image")

            let whileRunning = NodeInventory.leftovers(config: config, activeJobs: [5, 6, 8])
            #expect(whileRunning == ["\(top)/loop/stray is not a job root; Shifter did not make it (remove it by hand once you know what it is)"])
            let ended = NodeInventory.leftovers(config: config, activeJobs: [])
            #expect(ended.count == 4)
            #expect(ended[0] == "job 5 has ended but its root is incomplete here with 0 mount(s); run 'shifter-admin cleanup --job 5'")
            #expect(ended[2].hasPrefix("job 6 has ended but its per-node cache file \(top)/cache/shifter-job-6-abcd.xfs"))

            // The administrator's cleanup removes all of it, the cache file without the node's marker.
            #expect(JobRoot.remove(config: config, jobID: 5, byAdministrator: true).isEmpty)
            #expect(JobRoot.remove(config: config, jobID: 6, byAdministrator: true).isEmpty)
            #expect(JobRoot.remove(config: config, jobID: 8, byAdministrator: true).isEmpty)
            #expect(NodeInventory.leftovers(config: config, activeJobs: []).count == 1)
        }
    }

    @Test func aStepsOwnRootIsListedUnderItsJobAndGoesWithTheJobOrAtTheStepsEnd() throws {
        try withSite { config, top in
            for name in ["udi/job-5", "udi/job-5.step-2", "loop/job-5.step-2", "udi/job-5.step-3", "udi/job-55.step-1"] {
                try FileManager.default.createDirectory(atPath: top + "/" + name, withIntermediateDirectories: true)
            }
            FileManager.default.createFile(atPath: top + "/udi/job-5.step-3.failed", contents: Data("job 5 step 3: no such image\n".utf8))
            FileManager.default.createFile(atPath: top + "/udi/job-5.step-3.caches", contents: Data())
            FileManager.default.createFile(atPath: top + "/cache/shifter-job-5.step-3-abcd.xfs", contents: Data("x".utf8))

            let roots = NodeInventory.roots(config: config)
            #expect(roots.map(\.name) == ["5", "5.2", "5.3", "55.1"])
            #expect(roots.map(\.status) == ["incomplete", "incomplete", "failed", "incomplete"])
            #expect(roots[2].failure == "job 5 step 3: no such image")
            #expect(NodeInventory.strangers(config: config).isEmpty)
            let ended = NodeInventory.leftovers(config: config, activeJobs: [55])
            #expect(ended.contains("step 5.2 has ended but its root is incomplete here with 0 mount(s); run 'shifter-admin cleanup --job 5'"))
            #expect(ended.contains { $0.hasPrefix("job 5 has ended but its per-node cache file \(top)/cache/shifter-job-5.step-3-abcd.xfs") })

            // The step's end removes its own root and leaves the shared cache directory to the job's epilog.
            #expect(JobRoot.removeStep(config: config, jobID: 5, stepID: 2) == [])
            #expect(!FileManager.default.fileExists(atPath: top + "/udi/job-5.step-2"))
            #expect(!FileManager.default.fileExists(atPath: top + "/loop/job-5.step-2"))
            #expect(FileManager.default.fileExists(atPath: top + "/udi/job-5.step-3"))
            // The job's epilog removes its steps' roots, their notes and their caches' files; job 55's stay.
            #expect(JobRoot.remove(config: config, jobID: 5).isEmpty)
            for name in ["udi/job-5", "udi/job-5.step-3", "udi/job-5.step-3.failed", "udi/job-5.step-3.caches",
                         "cache/shifter-job-5.step-3-abcd.xfs"] {
                #expect(!FileManager.default.fileExists(atPath: top + "/" + name), "\(name) is left")
            }
            #expect(NodeInventory.roots(config: config).map(\.name) == ["55.1"])
        }
    }

    @Test func theEpilogRunsTheSiteHookBeforeRemovingTheRootAndGoesOnWhenItFails() throws {
        try withSite { config, top in
            var config = config
            let hook = top + "/epilog.sh"
            // The hook sees the root's directory still there, and the job in its environment; then it fails.
            try "test -d \"${1%/root}\" && echo \"$SHIFTER_JOB_ID $1\" > \(top)/hook.out\necho 'flush failed' >&2\nexit 3\n"
                .write(toFile: hook, atomically: true, encoding: .utf8)
            config.siteEpilogHook = hook
            try FileManager.default.createDirectory(atPath: top + "/udi/job-4", withIntermediateDirectories: true)
            var warnings: [String] = []
            let left = JobRoot.remove(config: config, jobID: 4, warn: { warnings.append($0) })
            #expect(left.isEmpty)
            #expect(!FileManager.default.fileExists(atPath: top + "/udi/job-4"))
            #expect(try String(contentsOfFile: top + "/hook.out", encoding: .utf8) == "4 \(top)/udi/job-4/root\n")
            #expect(warnings == ["siteEpilogHook \(hook) failed with status 3: flush failed"])

            // A job without a root on this node does not run the hook.
            try FileManager.default.removeItem(atPath: top + "/hook.out")
            #expect(JobRoot.remove(config: config, jobID: 5, warn: { warnings.append($0) }).isEmpty)
            #expect(!FileManager.default.fileExists(atPath: top + "/hook.out"))
        }
    }

    @Test func metricsAccumulateAcrossWritesAndTheFileIsReplacedWhole() throws {
        try withSite { config, top in
            var config = config
            config.nodeMetricsPath = top + "/metrics"
            // Slurm runs the epilog for every job: one with nothing on this node writes nothing.
            #expect(JobRoot.remove(config: config, jobID: 99).isEmpty)
            #expect(!FileManager.default.fileExists(atPath: top + "/metrics"))
            #expect(NodeMetricsFile.path(config: config, node: "n7") == top + "/metrics/shifter-n7.prom")
            #expect(NodeMetricsFile.update(config: config, node: "n7") { $0.addProlog(succeeded: true, phases: ["resolve": 0.5], total: 1) } == nil)
            #expect(NodeMetricsFile.update(config: config, node: "n7") { $0.addProlog(succeeded: false, phases: ["resolve": 0.25], total: 0.25) } == nil)
            #expect(NodeMetricsFile.update(config: config, node: "n7") { $0.addEpilog(clean: true) } == nil)
            let text = try String(contentsOfFile: top + "/metrics/shifter-n7.prom", encoding: .utf8)
            let metrics = NodeMetrics.parse(text)
            #expect(metrics.prologSuccesses == 1)
            #expect(metrics.prologFailures == 1)
            #expect(metrics.epilogsClean == 1)
            #expect(metrics.prologPhaseSecondsTotal["resolve"] == 0.75)
            let names = try FileManager.default.contentsOfDirectory(atPath: top + "/metrics").sorted()
            #expect(names == [".shifter-n7.lock", "shifter-n7.prom"])
            let mode = try FileSystem.linkStatus(top + "/metrics/shifter-n7.prom").mode & 0o777
            #expect(mode == 0o644)
        }
    }

    @Test func udiMountAndLoopMountAreMadeRootOnly() throws {
        try withSite { config, top in
            let layout = RootLayout.job(1, config: config)
            let user = ContainerUser(uid: 1000, gid: 100, groups: [100], name: "alice", home: "/home/alice", shell: "/bin/sh")
            chmod(config.udiMount, 0o755)
            let created = top + "/new/loop"
            let builder = RootBuilder(plan: ContainerPlan(layout: layout, user: user,
                                                          steps: [.privateDirectories([config.udiMount, created])]))
            try builder.build()
            #expect(try FileSystem.linkStatus(config.udiMount).mode == 0o700)
            #expect(try FileSystem.linkStatus(created).mode == 0o700)
            // One that root does not own is refused: its owner could let others in again.
            chown(created, 1000, 100)
            let error = #expect(throws: RuntimeError.self) { try builder.build() }
            #expect(error?.message == "\(created) (udiMount or loopMount in udiRoot.conf) must be a directory owned by root")
        }
    }

    @Test func aKilledPrivateRunsCacheFileIsLeftoverOnceItIsOld() throws {
        try withSite { config, top in
            let old = top + "/cache/shifter-private-0a0a.xfs", fresh = top + "/cache/shifter-private-0b0b.xfs"
            FileManager.default.createFile(atPath: old, contents: Data("x".utf8))
            FileManager.default.createFile(atPath: fresh, contents: Data("x".utf8))
            var times = [timeval(tv_sec: time(nil) - 3600, tv_usec: 0), timeval(tv_sec: time(nil) - 3600, tv_usec: 0)]
            #expect(utimes(old, &times) == 0)
            let found = NodeInventory.leftovers(config: config, activeJobs: [])
            #expect(found == ["\(old) (1) is the per-node cache file of a shifter run outside any job that was killed while it formatted it; run 'shifter-admin cleanup --private-caches'"])
            let (removed, left) = NodeInventory.removeAbandonedPrivateCaches(config: config)
            #expect(removed == [old])
            #expect(left.isEmpty)
            // One that may still be formatted by a running shifter is left alone.
            #expect(FileManager.default.fileExists(atPath: fresh))
        }
    }

    @Test func aMetricsDirectoryOthersCanWriteIsRefused() throws {
        try withSite { config, top in
            var config = config
            config.nodeMetricsPath = top + "/metrics"
            try FileManager.default.createDirectory(atPath: top + "/metrics", withIntermediateDirectories: true)
            chmod(top + "/metrics", 0o1777)
            let problem = NodeMetricsFile.update(config: config, node: "n7") { $0.addEpilog(clean: true) }
            #expect(problem == "nodeMetricsPath \(top)/metrics must be a directory owned by root and writable by root only")
            #expect(try FileManager.default.contentsOfDirectory(atPath: top + "/metrics").isEmpty)
        }
    }
}
