#if canImport(Glibc)
import Glibc
#endif
import ShifterCore
import ShifterSystem

/// `shifter` where the site enters jobs through their namespaces (`entryMode=userns`): it runs as
/// the user, with no privilege (a setuid install gives its privilege up first), and joins the user
/// and mount namespaces the job's prolog made, whose `/` is the job's root.
extension ContainerLauncher {
    static func launchInJobNamespaces(_ options: ShifterOptions, config: SiteConfig, environment: [String],
                                      environmentMap: [String: String], restoring userLimits: ResourceLimits?,
                                      say: VerboseLog) throws(RuntimeError) -> Int32 {
        let user = try callingUser(config: config)
        if Credentials.effectiveUser.uid == 0 {
            // Nothing here needs root: a setuid install becomes the user before it reads anything.
            do {
                try Credentials.become(uid: user.uid, gid: user.gid, groups: user.groups, name: "uid \(user.uid)")
                try userLimits?.restore()
            } catch {
                throw RuntimeError("couldn't give up the setuid install's privilege: \(error.description)")
            }
        }
        guard let jobText = environmentMap["SLURM_JOB_ID"] ?? environmentMap["SLURM_JOBID"], let jobID = UInt32(jobText) else {
            throw RuntimeError("this site runs containers only in jobs (entryMode=userns), and this is not a job step (no SLURM_JOB_ID): ask for the image when you submit (sbatch, salloc or srun --image=IMAGE)")
        }
        let (layout, stepID) = entryLayout(jobID: jobID, environment: environmentMap, config: config)
        let whose = stepID.map { "job \(jobID) step \($0)" } ?? "job \(jobID)"
        guard let record = JobNamespaces.record(layout: layout, uid: user.uid), let settings = record.imageSettings else {
            throw RuntimeError("job \(jobID) has no container of uid \(user.uid) on this node: ask for the image when you submit (--image=IMAGE); where the job did, its prolog failed here, and the step's output says why")
        }
        if let reference = try imageReference(options, config: config) {
            try checkImage(reference, record: record, config: config, user: user)
        }
        let modules: [SiteModule]
        do { modules = try config.selectModules(options.modules) } catch { throw RuntimeError(error.description) }
        if let mismatch = record.mismatch(uid: user.uid, image: record.image, volumes: options.volumes.map(\.canonical),
                                          modules: modules.map(\.name)) {
            throw RuntimeError("the container of job \(jobID) cannot run this step: \(mismatch); this site prepares each step's container before its tasks start (entryMode=userns): give a step's --image, --volume and --module to srun, not to shifter")
        }
        say("entering the namespaces of \(whose)")
        let request = CheckedRequest(
            options: options, config: config, user: user,
            image: ResolvedImage(id: record.image, imageFile: nil, localDirectory: nil, metadata: settings),
            modules: modules, environmentFileAssignments: try readEnvironmentFiles(options.environmentFiles, user: user),
            currentDirectory: ProcessControl.currentDirectory())
        let containerEnvironment = commandEnvironment(request, host: environment, hostMap: environmentMap, prepared: record)
        let command = try commandArguments(request)
        do {
            try Namespaces.enter(userPin: layout.userNamespacePin, mountPin: layout.mountNamespacePin)
            // The namespace gave every capability in it; the ids and groups stay the ones the
            // kernel gave the user (the namespace denies setgroups).
            try Credentials.dropNamespaceCapabilities(name: "uid \(user.uid)")
        } catch {
            throw RuntimeError("couldn't enter the container of job \(jobID): \(error.description)")
        }
        say("in the namespaces of \(whose)")
        return try execute(command, request: request, environment: containerEnvironment, say: say)
    }

    /// The root whose namespaces a task joins: its step's own, where the step asked for another
    /// image or other volumes and one was built on this node (`JobRoot.prepare` with a step), else
    /// the job's. Either is entered only where its entry is the user's (`JobNamespaces.record`).
    /// The step is named where the root is its own.
    static func entryLayout(jobID: UInt32, environment: [String: String],
                            config: SiteConfig) -> (layout: RootLayout, step: UInt32?) {
        if let text = environment["SLURM_STEP_ID"] ?? environment["SLURM_STEPID"], let stepID = UInt32(text) {
            let step = RootLayout.step(stepID, of: jobID, config: config)
            if FileSystem.exists(step.entryDirectory) { return (step, stepID) }
        }
        return (RootLayout.job(jobID, config: config), nil)
    }

    /// Refuses an image other than the job's: by id or `local:` path as given, by name as the
    /// image store resolves it for the user.
    static func checkImage(_ reference: ImageReference, record: PreparedRootState, config: SiteConfig,
                           user: ContainerUser) throws(RuntimeError) {
        let given: String
        switch reference.type {
        case .id:
            given = reference.digest ?? ""
        case .local:
            given = reference.path ?? ""
        default:
            given = try ImageResolver.resolve(reference, config: config, uid: user.uid, groups: [user.gid] + user.groups).id
        }
        guard given == record.image else {
            throw RuntimeError("image \"\(reference.canonical)\" is not the image of the step's container (\(record.image)); this site prepares each step's container before its tasks start (entryMode=userns): give a step's --image, --volume and --module to srun, not to shifter")
        }
    }
}
