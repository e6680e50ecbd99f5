#if canImport(Glibc)
import Glibc
#endif
import ShifterCore
import ShifterSystem

/// What a job asked for, checked and resolved at submission.
public struct ValidatedRequest: Sendable, Equatable {
    /// `id:sha256:HEX`, or `local:/path`.
    public var image: String
    /// The volumes in canonical form, `;`-separated (empty for none).
    public var volumes: String
    /// The modules asked for (`none`, a comma list) or empty for the site default.
    public var modules: String
}

/// Per-job container roots: checked at submission, built by the prolog on every node, entered by
/// `shifter` in the job's steps, removed by the epilog.
public enum JobRoot {
    /// Checks a job's `--image`, `--volume` and `--module` for the submitting user and resolves the
    /// image to its id, so the whole job runs the image that existed at submission.
    /// Where the site has an image gateway, the tag is resolved by the gateway (`shifterimg
    /// lookup`), which also records that a job uses the image, so autoexpiry keeps it.
    public static func validate(config: SiteConfig, configPath: String, image: String, volumes: String?,
                                modules: String?, uid: UInt32, groups: [UInt32]) throws(RuntimeError) -> ValidatedRequest {
        var reference: ImageReference
        do { reference = try ImageReference.parse(image, defaultType: config.defaultImageType) } catch {
            throw RuntimeError(error.description, kind: .invalidRequest)
        }
        if let id = try lookupAtGateway(reference, config: config, configPath: configPath) {
            reference = ImageReference(type: .id, registry: nil, repository: "", tag: nil, digest: id, path: nil)
        }
        let resolved = try ImageResolver.resolve(reference, config: config, uid: uid, groups: groups)
        let volumeList = try parseVolumes(volumes, config: config)
        _ = try selectModules(modules, config: config)
        let imageText = resolved.localDirectory.map { "local:" + $0 } ?? "id:" + resolved.id
        return ValidatedRequest(image: imageText, volumes: volumeList.map(\.canonical).joined(separator: ";"),
                                modules: modules ?? "")
    }

    /// The image id the site's gateway gives for `reference`, or nil where the site has none (or
    /// for an image given by id or path). Runs `shifterimg lookup`, the site's gateway client,
    /// because the node library links nothing but the C library.
    static func lookupAtGateway(_ reference: ImageReference, config: SiteConfig,
                                configPath: String) throws(RuntimeError) -> String? {
        guard reference.type == .docker || reference.type == .custom,
              !config.imageGateway.isEmpty, !config.imageGateway.contains("local") else { return nil }
        let tool = config.shifterimgPath
        let outcome: ProgramRunner.Outcome
        // shifterimg tries each gateway in turn, each for up to gatewayTimeout seconds.
        let timeLimit = Duration.seconds(config.gatewayTimeout * max(1, config.imageGateway.count) + 30)
        do {
            outcome = try ProgramRunner.run(tool, ["--config", configPath, "lookup", reference.canonical],
                                            timeLimit: timeLimit)
        } catch {
            throw RuntimeError("image \"\(reference.canonical)\": couldn't ask the image gateway: \(error.description) (udiRootPath names where shifterimg is installed)")
        }
        if outcome.timedOut {
            throw RuntimeError("image \"\(reference.canonical)\": the image gateway did not answer within \(timeLimit.components.seconds) s; try again later, or check imageGateway and gatewayTimeout")
        }
        let lines = outcome.output.split(separator: "\n").map(String.init)
        guard outcome.status == 0 else {
            // shifterimg lookup exits with 2 where the gateway has no such image for the user.
            throw RuntimeError(lines.last.map { $0.hasPrefix("shifterimg: ") ? String($0.dropFirst(12)) : $0 }
                ?? "image \"\(reference.canonical)\": the image gateway could not resolve it",
                kind: outcome.status == 2 ? .notFound : .system)
        }
        for line in lines.reversed() {
            for word in line.split(separator: " ") where word.hasPrefix("sha256:") {
                if let hex = ImageStoreLayout.hexDigits(of: String(word)) { return "sha256:" + hex }
            }
        }
        throw RuntimeError("image \"\(reference.canonical)\": the image gateway gave no image id")
    }

    /// Builds the root of job `jobID` for user `uid`. A root left by an earlier attempt is removed
    /// first. On failure nothing is left but a record of the reason (see `failureReason`). The
    /// outcome and the time of each phase go to the node's metrics (`nodeMetricsPath`); a problem
    /// with those goes to `warn` and never fails the build.
    /// With `ssh` (the job's keys, made at submission for `--ccm`), the root gets the job's sshd,
    /// listening on the port `sshPort`/`sshNodePorts` give node `node`.
    ///
    /// With `stepID`, the root is that step's own (`RootLayout.step`), for a step that asked for
    /// another image or other volumes where tasks enter through namespaces (`entryMode=userns`):
    /// the caller gives it no sshd and no devices (those are the job's), and it counts in no
    /// prolog metrics.
    public static func prepare(config: SiteConfig, jobID: UInt32, stepID: UInt32? = nil, uid: UInt32, gid: UInt32,
                               image: String, volumes: String?, modules: String?, ssh: SSHKeys? = nil, node: String? = nil,
                               devices: () throws(RuntimeError) -> CDIResolution? = { nil },
                               warn: (String) -> Void = { _ in }) throws(RuntimeError) {
        let layout = stepID.map { RootLayout.step($0, of: jobID, config: config) } ?? RootLayout.job(jobID, config: config)
        var timer = PhaseTimer()
        RootTeardown.teardown(layout, killProcesses: true,
                              controlGroups: stepID != nil ? [] : JobControlGroup.existing(jobID: jobID, node: node, anyNode: false))
        do {
            if let stepID { try reserveStepRoot(layout, jobID: jobID, stepID: stepID, config: config) }
            try build(config: config, layout: layout, jobID: jobID, uid: uid, gid: gid, image: image,
                      volumes: volumes, modules: modules, ssh: ssh, node: node, devices: devices, timer: &timer, warn: warn)
        } catch {
            let reason = (stepID.map { "job \(jobID) step \($0)" } ?? "job \(jobID)") + ": \(error.message)"
            _ = try? FileSystem.makeDirectories(config.udiMount, mode: 0o700)
            _ = try? FileSystem.writeFile(layout.failureFile, Array((reason + "\n").utf8), mode: 0o600)
            if stepID == nil { recordProlog(config: config, succeeded: false, timer: timer, warn: warn) }
            throw RuntimeError(reason, kind: error.kind)
        }
        if stepID == nil { recordProlog(config: config, succeeded: true, timer: timer, warn: warn) }
    }

    private static func recordProlog(config: SiteConfig, succeeded: Bool, timer: PhaseTimer, warn: (String) -> Void) {
        let problem = NodeMetricsFile.update(config: config) {
            $0.addProlog(succeeded: succeeded, phases: timer.seconds, total: timer.elapsed)
        }
        if let problem { warn(problem) }
    }

    private static func build(config: SiteConfig, layout: RootLayout, jobID: UInt32, uid: UInt32, gid: UInt32,
                              image: String, volumes: String?, modules: String?, ssh: SSHKeys?, node: String?,
                              devices resolveDevices: () throws(RuntimeError) -> CDIResolution?, timer: inout PhaseTimer,
                              warn: (String) -> Void) throws(RuntimeError) {
        let (plan, state) = try timer.measure("resolve") { () throws(RuntimeError) -> (ContainerPlan, PreparedRootState) in
            let user = try jobUser(uid: uid, gid: gid, config: config)
            let reference: ImageReference
            do throws(ImageReferenceError) {
                reference = try ImageReference.parse(image, defaultType: config.defaultImageType)
            } catch {
                throw RuntimeError(error.description, kind: .invalidRequest)
            }
            let resolved = try ImageResolver.resolve(reference, config: config, uid: uid, groups: [gid] + user.groups)
            let volumeList = try parseVolumes(volumes, config: config)
            let moduleList = try selectModules(modules, config: config)
            var sshSetup: SSHSetup?
            if let ssh {
                guard let bundle = config.sshPath else {
                    throw RuntimeError("the job asked for sshd (--ccm), but this node has no sshPath in udiRoot.conf")
                }
                sshSetup = SSHSetup(bundle: bundle, port: config.sshPort(onNode: node), defaultPort: config.sshPort,
                                    nodePorts: config.sshNodePorts, keys: ssh, jobID: jobID, node: node)
            }
            var request = try ContainerRequest.onThisNode(config: config, image: resolved, user: user, volumes: volumeList,
                                                          modules: moduleList, gpuEnvironment: gpuEnvironment(), ssh: sshSetup)
            let devices = try resolveDevices()
            request.devices = devices
            request.entersThroughNamespaces = config.entryMode == .userns
            if request.entersThroughNamespaces, let groups = devices?.edits.additionalGroups, !groups.isEmpty {
                warn("the job's CDI specs add groups \(groups.map(String.init).joined(separator: ",")) to the user's, which entryMode=userns does not give (a namespace that mapped them would give them on the whole node); device nodes that need them stay closed")
            }
            var state = PreparedRootState(jobID: jobID, uid: uid, gid: gid, image: resolved.id,
                                          volumes: volumeList.map(\.canonical), modules: moduleList.map(\.name),
                                          sshPath: sshSetup?.bundle)
            if request.entersThroughNamespaces {
                var settings = ImageMetadata(digest: "", manifestDigest: "", source: "")
                settings.env = resolved.metadata.env
                settings.entrypoint = resolved.metadata.entrypoint
                settings.cmd = resolved.metadata.cmd
                settings.workdir = resolved.metadata.workdir
                state.imageSettings = settings
            }
            if let devices {
                state.devices = devices.devices.map(\.description)
                state.deviceEnvironment = devices.edits.environment.map { $0.name + "=" + $0.value }
                state.additionalGroups = devices.edits.additionalGroups
                state.stopHooks = devices.edits.hooks.filter { $0.stage == .stop }
            }
            return (ContainerPlanner.plan(request, layout: layout), state)
        }
        try RootBuilder(plan: plan).build(timer: &timer, warn: warn)
        try timer.measure("record") { () throws(RuntimeError) in
            do throws(SystemError) {
                try FileSystem.writeFile(layout.stateFile, state.encoded(), mode: 0o600)
                if state.imageSettings != nil { try JobNamespaces.writeRecordAndHandOver(layout: layout, state: state) }
            } catch {
                RootTeardown.teardown(layout, killProcesses: true,
                                      controlGroups: JobControlGroup.existing(jobID: jobID, node: node, anyNode: false))
                throw RuntimeError("couldn't record the root: \(error.description)")
            }
        }
    }

    /// Removes the root of job `jobID` on this node, and the per-node cache files a killed prolog
    /// of the job left behind; returns what could not be removed. The job's sshd and its sessions
    /// end first, with the cgroup of node `node` (`JobControlGroup`), whatever they forked; a loop
    /// device of the root still bound after the unmounts counts as left. The shared cache directory is
    /// read only where this node's prolog began to create a cache (`cacheMarkerFile`). Where the
    /// job has a root here, the site's `siteEpilogHook` runs first; its failure goes to `warn` and
    /// the removal goes on. An epilog that found something of the job here adds its outcome to the
    /// node's epilog counters. An administrator's cleanup (`byAdministrator`) leaves the metrics
    /// alone, and looks in the cache directory even without the marker, since the administrator
    /// says the job has ended everywhere.
    public static func remove(config: SiteConfig, jobID: UInt32, node: String? = nil, byAdministrator: Bool = false,
                              warn: (String) -> Void = { _ in }) -> [String] {
        let layout = RootLayout.job(jobID, config: config)
        // An administrator says the job has ended everywhere: the groups of all its nodes go.
        let groups = JobControlGroup.existing(jobID: jobID, node: node, anyNode: byAdministrator)
        // Slurm runs the epilog for every job; most have no container on this node.
        let hadRoot = !groups.isEmpty || hasRoot(layout) || FileSystem.exists(layout.cacheMarkerFile)
        var left: [String] = []
        let prepared = state(config: config, jobID: jobID)
        if let hook = config.siteEpilogHook, FileSystem.exists(layout.base) || FileSystem.exists(layout.imageMount) {
            // Nothing of the job's may still run, and change what the hook looks at, while it runs.
            for group in groups { left += JobControlGroup.end(group) }
            RootTeardown.killProcessesInside(layout.root)
            JobNamespaces.endProcesses(layout, warn: warn)
            if let problem = runEpilogHook(hook, jobID: jobID, state: prepared, layout: layout) { warn(problem) }
        }
        if let hooks = prepared?.stopHooks, !hooks.isEmpty {
            // The devices' poststop hooks, once nothing of the job's runs, before the root goes.
            for group in groups { left += JobControlGroup.end(group) }
            RootTeardown.killProcessesInside(layout.root)
            JobNamespaces.endProcesses(layout, warn: warn)
            for (index, hook) in hooks.enumerated() {
                try? CDIHooks.runInStage(hook, index: index, layout: layout, warn: warn)
            }
        }
        left += RootTeardown.teardown(layout, killProcesses: true, controlGroups: groups, warn: warn)
        left += removeAbandonedCaches(of: layout, config: config, byAdministrator: byAdministrator)
        // The roots of its steps that a killed slurmstepd did not remove (see `removeStep`).
        for stepID in stepIDs(config: config, jobID: jobID) {
            let stepLayout = RootLayout.step(stepID, of: jobID, config: config)
            left += RootTeardown.teardown(stepLayout, killProcesses: true, warn: warn)
            left += removeAbandonedCaches(of: stepLayout, config: config, byAdministrator: byAdministrator)
        }
        let clean = left.isEmpty
        // An administrator's shell has no SLURMD_NODENAME to name the node's file by: the next
        // prolog or epilog refreshes the gauges.
        if hadRoot, !byAdministrator, let problem = NodeMetricsFile.update(config: config, { $0.addEpilog(clean: clean) }) {
            warn(problem)
        }
        return left
    }

    /// Whether anything of `layout`'s root is on this node: its directories, its entry, or the
    /// note of a failed build.
    static func hasRoot(_ layout: RootLayout) -> Bool {
        [layout.base, layout.imageMount, layout.entryDirectory, layout.failureFile].contains(where: FileSystem.exists)
    }

    /// Removes the root of step `stepID` of job `jobID` on this node (see `prepare`), at the end of
    /// the step; nil where the step had none, else what could not be removed. The per-node caches'
    /// files a killed build left are the job epilog's to remove: until the job ends, another node's
    /// build of the same step may be creating one under the same prefix in the shared directory.
    public static func removeStep(config: SiteConfig, jobID: UInt32, stepID: UInt32,
                                  warn: (String) -> Void = { _ in }) -> [String]? {
        let layout = RootLayout.step(stepID, of: jobID, config: config)
        guard hasRoot(layout) else { return nil }
        return RootTeardown.teardown(layout, killProcesses: true, warn: warn)
    }

    /// Makes the directory of step `stepID`'s root where the job has fewer than `stepRootLimit`
    /// other steps with roots of their own on this node; under a lock on `udiMount`, so that steps
    /// that start together cannot all pass the limit. Each root costs a loop device and its mounts
    /// in the node's mount table, which every other job's prolog then works through.
    static func reserveStepRoot(_ layout: RootLayout, jobID: UInt32, stepID: UInt32, config: SiteConfig) throws(RuntimeError) {
        let lock: Int32
        do throws(SystemError) {
            try FileSystem.makeDirectories(config.udiMount, mode: 0o700)
            lock = try FileSystem.lockDirectoryExclusively(config.udiMount)
        } catch {
            throw RuntimeError("couldn't make the step's root: \(error.description)")
        }
        defer { close(lock) }
        let others = stepIDs(config: config, jobID: jobID).filter {
            $0 != stepID && FileSystem.exists(RootLayout.step($0, of: jobID, config: config).base)
        }
        guard others.count < config.stepRootLimit else {
            throw RuntimeError("\(others.count) other steps of the job already run containers of their own on this node, the site's limit (stepRootLimit=\(config.stepRootLimit)); run this step once one of them has ended, or in the job's own container (the image and volumes the job was submitted with)", kind: .invalidRequest)
        }
        do throws(SystemError) { try FileSystem.makeDirectories(layout.base) } catch {
            throw RuntimeError("couldn't make the step's root: \(error.description)")
        }
    }

    /// The steps of job `jobID` that have something of a root of their own on this node, by the
    /// names under `udiMount` and `loopMount`.
    static func stepIDs(config: SiteConfig, jobID: UInt32) -> [UInt32] {
        var steps = Set<UInt32>()
        for directory in [config.udiMount, config.loopMount] {
            for name in (try? FileSystem.directoryEntries(directory)) ?? [] {
                guard let root = NodeInventory.rootName(name), root.job == jobID, let step = root.step else { continue }
                steps.insert(step)
            }
        }
        return steps.sorted()
    }

    /// Removes the backing files of `layout`'s per-node caches that a killed build left in the
    /// shared directory, where the build had begun one (its marker) or an administrator asks, and
    /// the marker; returns what could not be removed.
    private static func removeAbandonedCaches(of layout: RootLayout, config: SiteConfig, byAdministrator: Bool) -> [String] {
        guard let directory = config.perNodeCachePath, byAdministrator || FileSystem.exists(layout.cacheMarkerFile) else {
            return []
        }
        let left = PerNodeCache.removeAbandonedFiles(of: layout, in: directory)
        guard left.isEmpty, FileSystem.exists(layout.cacheMarkerFile) else { return left }
        do throws(SystemError) {
            try FileSystem.removeFile(layout.cacheMarkerFile)
            return []
        } catch {
            return ["couldn't \(error.description)"]
        }
    }

    /// Runs the site's epilog hook for a job's root, as root, with the root's path as its argument
    /// and the job in its environment; returns why it failed, or nil.
    static func runEpilogHook(_ script: String, jobID: UInt32, state: PreparedRootState?, layout: RootLayout) -> String? {
        var environment = ["SHIFTER_JOB_ID=\(jobID)", "SHIFTER_ROOT=\(layout.root)"]
        if let state {
            environment += ["SHIFTER_UID=\(state.uid)", "SHIFTER_GID=\(state.gid)"]
        }
        do throws(RuntimeError) {
            try RootBuilder.runScript(script, name: "siteEpilogHook", root: layout.root, environment: environment)
            return nil
        } catch {
            return error.message
        }
    }

    /// Why the prolog of job `jobID` failed on this node, or nil when it did not.
    public static func failureReason(config: SiteConfig, jobID: UInt32) -> String? {
        failureReason(layout: RootLayout.job(jobID, config: config))
    }

    /// Why the build of `layout`'s root failed on this node, or nil when it did not.
    static func failureReason(layout: RootLayout) -> String? {
        guard let status = try? FileSystem.linkStatus(layout.failureFile), status.uid == 0, status.kind == .regular,
              let bytes = try? FileSystem.readFile(layout.failureFile, limit: 65536) else { return nil }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "unknown failure"
    }

    /// The record of the prepared root of job `jobID`, when there is a trustworthy one.
    public static func state(config: SiteConfig, jobID: UInt32) -> PreparedRootState? {
        state(layout: RootLayout.job(jobID, config: config))
    }

    /// The record of `layout`'s root, when there is a trustworthy one.
    static func state(layout: RootLayout) -> PreparedRootState? {
        guard let status = try? FileSystem.linkStatus(layout.stateFile), status.kind == .regular, status.uid == 0,
              status.mode & 0o022 == 0, let bytes = try? FileSystem.readFile(layout.stateFile, limit: 1 << 20) else {
            return nil
        }
        return PreparedRootState.decode(bytes)
    }

    /// The prolog's view of the job's GPU binding, as Slurm passes it to prolog programs.
    static func gpuEnvironment() -> [String: String] {
        var environment: [String: String] = [:]
        for name in ["SLURM_JOB_GPUS", "SLURM_STEP_GPUS"] {
            if let value = getenv(name) { environment[name] = String(cString: value) }
        }
        return environment
    }

    static func parseVolumes(_ text: String?, config: SiteConfig) throws(RuntimeError) -> [VolumeSpec] {
        guard let text, !text.isEmpty else { return [] }
        do {
            let volumes = try VolumeSpec.parseList(text)
            try VolumeSpec.validate(volumes, against: config)
            return volumes
        } catch {
            throw RuntimeError(error.description, kind: .invalidRequest)
        }
    }

    static func selectModules(_ text: String?, config: SiteConfig) throws(RuntimeError) -> [SiteModule] {
        do {
            let request = try (text.flatMap { $0.isEmpty ? nil : $0 }).map(ModuleRequest.parse) ?? .siteDefault
            return try config.selectModules(request)
        } catch {
            throw RuntimeError(error.description, kind: .invalidRequest)
        }
    }

    /// The job's user, with the groups the system databases give it.
    static func jobUser(uid: UInt32, gid: UInt32, config: SiteConfig) throws(RuntimeError) -> ContainerUser {
        guard uid != 0, gid != 0 else { throw RuntimeError("refusing to build a container for root", kind: .permission) }
        do {
            let entry = try Credentials.passwdEntry(uid: uid)
            let groups = try Credentials.groupList(user: entry.name, gid: gid, limit: config.maxGroupCount)
                .filter { $0 != 0 }
            return .withAccountEntries(uid: uid, gid: gid, groups: groups, entry: entry)
        } catch {
            throw RuntimeError("couldn't look up the job's user: \(error.description)")
        }
    }
}

/// Group lookups for a uid, for checks made on a user's behalf at submission.
public enum JobRootGroups {
    /// The uid's primary and supplementary groups according to the system databases.
    public static func of(uid: UInt32, config: SiteConfig) throws(RuntimeError) -> [UInt32] {
        do {
            let entry = try Credentials.passwdEntry(uid: uid)
            return try Credentials.groupList(user: entry.name, gid: entry.gid, limit: config.maxGroupCount)
        } catch {
            throw RuntimeError("couldn't look up the groups of uid \(uid): \(error.description)")
        }
    }
}
