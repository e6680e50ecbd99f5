#if canImport(Glibc)
import Glibc
#endif
import ShifterCore
import ShifterSystem

/// The `shifter` command: parse, check, find or build the container root, enter it as the user,
/// and exec the command. Synchronous and single-threaded, as a setuid program must be.
public enum ContainerLauncher {
    /// Exit statuses, as a shell would give them.
    public static let commandNotFound: Int32 = 127
    public static let commandNotExecutable: Int32 = 126

    public static let usage = """
        usage: shifter [OPTIONS] [--] [COMMAND [ARG...]]
          -i, --image=REF          image to run (else SHIFTER_IMAGE)
          -V, --volume=FROM:TO[:FLAGS]  mount a directory (repeatable; ';' separates several)
              --entrypoint[=CMD]   run the image ENTRYPOINT (or CMD) before the arguments
          -w, --workdir[=PATH]     working directory (without a value: the image WORKDIR)
          -e, --env=NAME=VALUE     set a variable (repeatable)
              --env-file=FILE      read NAME=VALUE lines
          -E, --clearenv           start from an empty environment
          -m, --module=LIST        site modules (comma-separated, or none)
          -v, --verbose            say what is done
          -h, --help               this text
              --version            the version
        """

    /// Runs `shifter` with `arguments` (without the program name). Returns an exit status only
    /// when it could not exec the command.
    /// `started` is the wall-clock time of the first line of `main` (`shifter -v` shows it, so the
    /// time from exec to `main` can be measured from outside).
    public static func run(arguments: [String], environment: [String], started: timespec? = nil) -> Int32 {
        let started = started ?? wallClock()
        ProcessControl.resetInheritedState()
        var environmentMap: [String: String] = [:]
        for entry in environment {
            // By bytes: a job's environment has a hundred variables, and grapheme breaking costs.
            guard let equals = entry.utf8.firstIndex(of: UInt8(ascii: "=")) else { continue }
            environmentMap[String(entry[..<equals])] = String(entry[entry.utf8.index(after: equals)...])
        }
        do {
            return try launch(arguments: arguments, environment: environment, environmentMap: environmentMap,
                              started: started)
        } catch {
            report(error.message)
            return 1
        }
    }

    /// `CLOCK_REALTIME`, the clock a shell's `$EPOCHREALTIME` reads.
    public static func wallClock() -> timespec { WallClock.now }

    /// `time` as seconds since the epoch with six decimals, as `$EPOCHREALTIME` prints it.
    static func epochSeconds(_ time: timespec) -> String {
        let microseconds = String(time.tv_nsec / 1000)
        return "\(time.tv_sec).\(String(repeating: "0", count: 6 - microseconds.count))\(microseconds)"
    }

    static func milliseconds(from start: timespec, to end: timespec) -> Double {
        Double(end.tv_sec - start.tv_sec) * 1000 + Double(end.tv_nsec - start.tv_nsec) / 1_000_000
    }

    static func report(_ message: String) {
        var line = "shifter: " + message
        if !line.hasSuffix("\n") { line += "\n" }
        ProcessControl.writeToStandardError(line)
    }

    /// `shifter -v`'s lines, each with the milliseconds since `main` began. The message is built
    /// only when it is shown: entering a root should not pay for the text.
    struct VerboseLog {
        let enabled: Bool
        let started: timespec

        func callAsFunction(_ message: @autoclosure () -> String) {
            guard enabled else { return }
            let elapsed = milliseconds(from: started, to: wallClock())
            let whole = Int(elapsed), thousandths = Int((elapsed - Double(whole)) * 1000)
            report("[\(whole).\(thousandths < 10 ? "00" : thousandths < 100 ? "0" : "")\(thousandths) ms] \(message())")
        }
    }

    /// What the user asked for, checked against the site's configuration and read with the
    /// user's rights: everything the root and the command are made from.
    struct CheckedRequest {
        var options: ShifterOptions
        var config: SiteConfig
        /// The kernel's ids only (see `callingUser`).
        var user: ContainerUser
        var image: ResolvedImage
        var modules: [SiteModule]
        var environmentFileAssignments: [EnvironmentAssignment]
        /// Where the user was, for a working directory the image does not name.
        var currentDirectory: String?
    }

    /// A start, step by step: options, privileges, the checked request, the root (entered or
    /// built with termination signals held), the command's environment and arguments, then into
    /// the root as the user and exec.
    private static func launch(arguments: [String], environment: [String],
                               environmentMap: [String: String], started: timespec) throws(RuntimeError) -> Int32 {
        let options: ShifterOptions
        do {
            options = try ShifterOptions.parse(arguments: arguments, environment: environmentMap)
        } catch {
            throw RuntimeError(error.description)
        }
        if options.help {
            print(usage)
            return 0
        }
        if options.version {
            print("shifter \(ShifterVersion.string)")
            return 0
        }
        let userLimits = try takePrivilegedControl()
        let say = VerboseLog(enabled: options.verbose, started: started)
        say("main began at \(epochSeconds(started)) (seconds since the epoch)")
        let config = try loadConfiguration(options, environment: environmentMap, say: say)
        if config.entryMode == .userns {
            return try launchInJobNamespaces(options, config: config, environment: environment,
                                             environmentMap: environmentMap, restoring: userLimits, say: say)
        }
        let request = try checkRequest(options, config: config, environment: environmentMap, say: say)
        let (layout, prepared) = try withTerminationSignalsBlocked { () throws(RuntimeError) -> (RootLayout, PreparedRootState?) in
            try enterOrBuildRoot(request, environment: environmentMap, say: say)
        }
        // The variables the C library removed from the setuid shifter's environment are the
        // user's, for the user's command (shifter itself, static, never reads them).
        let removed = ProcessControl.environmentBeforeSecureMode().map {
            ContainerEnvironment.removedAtStart(executed: $0, remaining: environmentMap)
        } ?? []
        var commandHostMap = environmentMap
        let removedVariables = ContainerEnvironment(entries: removed)
        for name in removedVariables.names { commandHostMap[name] = removedVariables[name] }
        let containerEnvironment = commandEnvironment(request, host: environment + removed, hostMap: commandHostMap,
                                                      prepared: prepared)
        say("environment ready")
        let command = try commandArguments(request)
        try enterRoot(layout, as: userWithDeviceGroups(request, prepared: prepared), restoring: userLimits)
        return try execute(command, request: request, environment: containerEnvironment, say: say)
    }

    /// Working as root for a user: nothing of it may be dumped or traced by the user, and the
    /// user's resource limits, returned, wait for the user's command.
    private static func takePrivilegedControl() throws(RuntimeError) -> ResourceLimits? {
        guard Credentials.effectiveUser.uid == 0 else { return nil }
        do { try ProcessControl.setNotDumpable() } catch { throw RuntimeError("couldn't \(error.description)") }
        return ResourceLimits.liftForPrivilegedWork()
    }

    /// The site's configuration: the compiled-in file, or the one root names.
    private static func loadConfiguration(_ options: ShifterOptions, environment: [String: String],
                                          say: VerboseLog) throws(RuntimeError) -> SiteConfig {
        // Only root may point a setuid program at another configuration.
        let requestedConfig = options.configPath ?? environment["SHIFTER_CONFIG"]
        if requestedConfig != nil && Credentials.realUser.uid != 0 {
            throw RuntimeError("only root may choose the configuration file (--config or SHIFTER_CONFIG)")
        }
        let configPath = requestedConfig ?? SiteConfigLoader.defaultPath
        let config = try SiteConfigLoader.load(configPath, warn: { report("warning: \($0)") })
        say("configuration \(configPath)")
        return config
    }

    /// Checks the request against the configuration: the user, the image and the user's right to
    /// it, volumes and modules; then reads the user's `--env-file`s with the user's rights, before
    /// anything else is done as root.
    private static func checkRequest(_ options: ShifterOptions, config: SiteConfig, environment: [String: String],
                                     say: VerboseLog) throws(RuntimeError) -> CheckedRequest {
        // The kernel's ids only: the account's entries (name, home, shell, group names), which
        // may take the site's user database, are looked up only for a private root's /etc.
        let user = try callingUser(config: config)
        say("user \(user.uid), groups \(([user.gid] + user.groups).map(String.init).joined(separator: ","))")
        guard let reference = try imageReference(options, config: config) else {
            throw RuntimeError("no image given: use --image=REF or set SHIFTER_IMAGE")
        }
        let image = try ImageResolver.resolve(reference, config: config, uid: user.uid, groups: [user.gid] + user.groups)
        say("image \(reference.canonical) is \(image.id)")

        do { try VolumeSpec.validate(options.volumes, against: config) } catch { throw RuntimeError(error.description) }
        let modules: [SiteModule]
        do { modules = try config.selectModules(options.modules) } catch { throw RuntimeError(error.description) }

        let assignments = try readEnvironmentFiles(options.environmentFiles, user: user)
        say("request checked")
        return CheckedRequest(options: options, config: config, user: user, image: image, modules: modules,
                              environmentFileAssignments: assignments,
                              currentDirectory: ProcessControl.currentDirectory())
    }

    /// The command's environment: the host's (unless `--clearenv`), `SHIFTER_RUNTIME`, the
    /// image's, the `--env-file`s', `SHIFTER_KEEP_ENV` and `--env`, the modules' (the CCM ssh's
    /// `PATH` among them) and the site's, in `ContainerEnvironment.merged`'s order.
    static func commandEnvironment(_ request: CheckedRequest, host: [String], hostMap: [String: String],
                                           prepared: PreparedRootState?) -> ContainerEnvironment {
        let shifterVariables = [EnvironmentAssignment(name: "SHIFTER_RUNTIME", value: "1")]
        // SHIFTER_KEEP_ENV=NAME,...: these keep the host's value over the image's, as if given
        // with --env (Pyxis' --container-env; values never go on the command line, which every
        // user of the node may read).
        let kept = (hostMap["SHIFTER_KEEP_ENV"] ?? "").split(separator: ",").compactMap { name -> EnvironmentAssignment? in
            guard EnvironmentAssignment.isValidName(name), let value = hostMap[String(name)] else { return nil }
            return EnvironmentAssignment(name: String(name), value: value)
        }
        return ContainerEnvironment.merged(
            host: host, clearHost: request.options.clearEnvironment, shifter: shifterVariables,
            image: request.image.metadata.env, envFile: request.environmentFileAssignments,
            commandLine: kept + request.options.environment,
            modules: ContainerPlanner.moduleEnvironments(request.modules) + sshEnvironment(prepared) + deviceEnvironment(prepared),
            site: request.config.environment)
    }

    /// The command and its arguments: the user's, after the image's ENTRYPOINT (or CMD) where
    /// `--entrypoint` asks, behind the modules' user hooks.
    static func commandArguments(_ request: CheckedRequest) throws(RuntimeError) -> [String] {
        let options = request.options, metadata = request.image.metadata
        do {
            return ContainerPlanner.commandWithUserHooks(
                try ContainerCommand.arguments(options.command, entrypoint: options.entrypoint,
                                               imageEntrypoint: metadata.entrypoint, imageCmd: metadata.cmd),
                modules: request.modules)
        } catch {
            throw RuntimeError(error.description)
        }
    }

    /// Into `layout`'s root, with the user's resource limits back, as the user for good.
    private static func enterRoot(_ layout: RootLayout, as user: ContainerUser,
                                  restoring userLimits: ResourceLimits?) throws(RuntimeError) {
        do {
            try ProcessControl.changeRoot(layout.root)
            try userLimits?.restore()
            try Credentials.become(uid: user.uid, gid: user.gid, groups: user.groups, name: user.name)
        } catch {
            throw RuntimeError("couldn't enter the container: \(error.description)")
        }
    }

    /// Changes to the working directory and execs `command` found on the container's `PATH`.
    /// Returns only on failure, with the status a shell would give.
    static func execute(_ command: [String], request: CheckedRequest, environment: ContainerEnvironment,
                                say: VerboseLog) throws(RuntimeError) -> Int32 {
        let workdir = ContainerCommand.workingDirectory(
            requested: request.options.workdir, imageWorkdir: request.image.metadata.workdir,
            currentDirectory: request.currentDirectory,
            existsInContainer: { (try? FileSystem.status($0))?.kind == .directory })
        do {
            try ProcessControl.changeDirectory(workdir)
        } catch {
            throw RuntimeError("couldn't \(error.description)")
        }
        guard let program = command.first else { throw RuntimeError("no command to run") }
        guard let path = ContainerCommand.executablePath(for: program, path: environment["PATH"],
                                                         isExecutable: ProcessControl.isExecutable) else {
            report("\(program): command not found")
            return commandNotFound
        }
        say("exec \(path) in \(workdir)")
        let failure = ProcessControl.execute(path, arguments: command, environment: environment.entries)
        report("\(program): \(failure.reason)")
        return failure.errno == ENOENT ? commandNotFound : commandNotExecutable
    }

    static func imageReference(_ options: ShifterOptions, config: SiteConfig) throws(RuntimeError) -> ImageReference? {
        do {
            return try options.imageReference(defaultType: config.defaultImageType)
        } catch {
            throw RuntimeError(error.description)
        }
    }

    /// The real user, with the groups the session gave it, capped at `maxGroupCount`: the
    /// kernel's ids, without the account's entries (see `withAccountEntries`).
    static func callingUser(config: SiteConfig) throws(RuntimeError) -> ContainerUser {
        let real = Credentials.realUser
        guard real.uid != 0, real.gid != 0 else {
            throw RuntimeError("refusing to run a container as root (uid \(real.uid), gid \(real.gid)); run shifter as a regular user")
        }
        do {
            var groups = try Credentials.currentGroups().filter { $0 != 0 }
            if groups.count > config.maxGroupCount { groups = Array(groups.prefix(config.maxGroupCount)) }
            return ContainerUser(uid: real.uid, gid: real.gid, groups: groups, name: "uid \(real.uid)", home: "", shell: "")
        } catch {
            throw RuntimeError("couldn't identify the calling user: \(error.description)")
        }
    }

    /// `user` with its passwd entry and its groups' names, from the system's user database: what
    /// a private root's /etc/passwd and /etc/group need. A prepared root's were written by the
    /// prolog, so entering one never waits on the user database.
    static func withAccountEntries(_ user: ContainerUser) throws(RuntimeError) -> ContainerUser {
        do {
            return .withAccountEntries(uid: user.uid, gid: user.gid, groups: user.groups,
                                       entry: try Credentials.passwdEntry(uid: user.uid))
        } catch {
            throw RuntimeError("couldn't identify the calling user: \(error.description)")
        }
    }

    /// Reads `--env-file` files with the user's filesystem rights.
    static func readEnvironmentFiles(_ paths: [String], user: ContainerUser) throws(RuntimeError) -> [EnvironmentAssignment] {
        guard !paths.isEmpty else { return [] }
        // Each change of ids resets dumpability to fs.suid_dumpable: set it again every time.
        do { try Credentials.setFilesystemIDs(uid: user.uid, gid: user.gid) } catch {
            throw RuntimeError("couldn't take the user's rights to read --env-file")
        }
        defer {
            let root = Credentials.effectiveUser
            try? Credentials.setFilesystemIDs(uid: root.uid, gid: root.gid)
            try? ProcessControl.setNotDumpable()
        }
        do { try ProcessControl.setNotDumpable() } catch { throw RuntimeError("couldn't make shifter not dumpable") }
        var assignments: [EnvironmentAssignment] = []
        for path in paths {
            do {
                let text = String(decoding: try FileSystem.readFile(path, limit: 1 << 20), as: UTF8.self)
                assignments += try EnvironmentFile.parse(text, source: path)
            } catch let error as SystemError {
                throw RuntimeError("--env-file: couldn't \(error.description)")
            } catch {
                throw RuntimeError("--env-file: \(error)")
            }
        }
        return assignments
    }

    /// Runs `body`, which builds a root, with SIGINT, SIGQUIT, SIGHUP and SIGTERM blocked. One of
    /// them arriving mid-build would end `shifter` between a step and its undo, and leave a
    /// per-node cache's backing file behind under its name on the shared filesystem; blocked, it
    /// waits until the root is complete or undone. The caller's mask is back before `body`'s
    /// result or error is returned, so the command exec'd later starts with it (and with the
    /// dispositions it inherited: none is changed here), and a signal that came in the meantime is
    /// delivered then. A helper the build runs (mkfs.xfs, a hook) is stopped when one arrives
    /// (see `ProgramRunner`), so the build fails and is undone without waiting for it.
    static func withTerminationSignalsBlocked<Result>(
        _ body: () throws(RuntimeError) -> Result
    ) throws(RuntimeError) -> Result {
        let saved: SignalMask
        do {
            saved = try ProcessControl.blockSignals(ProcessControl.terminationSignals)
        } catch {
            throw RuntimeError("couldn't \(error.description)")
        }
        defer { ProcessControl.restoreSignalMask(saved) }
        return try body()
    }

    /// The site's ssh at the end of `PATH` in a job's root with an sshd (`--ccm`): the image's own
    /// ssh, where it has one, comes first.
    static func sshEnvironment(_ prepared: PreparedRootState?) -> [SiteModule] {
        guard let bundle = prepared?.sshPath else { return [] }
        var module = SiteModule(name: "ccm")
        module.environment.append = [EnvironmentAssignment(name: "PATH", value: bundle + "/bin")]
        return [module]
    }

    /// The variables of the job's CDI devices (`--device`), over the image's.
    static func deviceEnvironment(_ prepared: PreparedRootState?) -> [SiteModule] {
        guard let prepared, !prepared.deviceEnvironment.isEmpty else { return [] }
        var module = SiteModule(name: "devices")
        module.environment.assign = prepared.deviceEnvironment.compactMap { try? EnvironmentAssignment.parse($0) }
        return [module]
    }

    /// The user with the groups the job's CDI specs add (`additionalGids`, a video or render group
    /// for the devices' nodes), within `maxGroupCount`.
    static func userWithDeviceGroups(_ request: CheckedRequest, prepared: PreparedRootState?) -> ContainerUser {
        var user = request.user
        for group in prepared?.additionalGroups ?? [] where group != 0 && group != user.gid && !user.groups.contains(group)
            && user.groups.count < request.config.maxGroupCount {
            user.groups.append(group)
        }
        return user
    }

    /// Finds the job's prepared root when it matches (with its record), or builds a private one
    /// in a new mount namespace that disappears with the command.
    static func enterOrBuildRoot(_ request: CheckedRequest, environment: [String: String],
                                 say: VerboseLog) throws(RuntimeError) -> (RootLayout, PreparedRootState?) {
        let config = request.config
        if let jobText = environment["SLURM_JOB_ID"] ?? environment["SLURM_JOBID"], let jobID = UInt32(jobText) {
            if let record = JobRoot.state(config: config, jobID: jobID) {
                let mismatch = record.mismatch(uid: request.user.uid, image: request.image.id,
                                               volumes: request.options.volumes.map(\.canonical),
                                               modules: request.modules.map(\.name))
                if let mismatch {
                    say("not using the prepared root of job \(jobID): \(mismatch)")
                } else {
                    say("entering the prepared root of job \(jobID)")
                    return (RootLayout.job(jobID, config: config), record)
                }
            }
        }
        let container = try ContainerRequest.onThisNode(
            config: config, image: request.image, user: try withAccountEntries(request.user),
            volumes: request.options.volumes, modules: request.modules, gpuEnvironment: environment)
        return (try buildPrivateRoot(container, say: say), nil)
    }

    static func buildPrivateRoot(_ request: ContainerRequest, say: VerboseLog) throws(RuntimeError) -> RootLayout {
        let config = request.config
        say("building a private root")
        do {
            // Site hooks run while the root is built must run as root in full, not with the
            // caller's real uid that a setuid start leaves; the caller's ids were read already.
            try Credentials.becomeRoot()
            try FileSystem.makeDirectories(config.udiMount, mode: 0o700)
            try FileSystem.makeDirectories(config.loopMount, mode: 0o700)
            try Mounts.unshareMountNamespace()
            // Nothing mounted from here on may reach the host's namespace.
            try Mounts.setPropagation("/", config.mountPropagationStyle == .slave ? .slavePropagation : .privatePropagation)
            // Scratch space private to this namespace: whatever happens, nothing is left on the host.
            for directory in [config.udiMount, config.loopMount] {
                try Mounts.mount(source: "shifter", target: directory, type: "tmpfs",
                                 flags: [.noSetuid, .noDevices], data: "mode=0755,size=1m")
            }
        } catch {
            throw RuntimeError("couldn't prepare a private mount namespace: \(error.description)")
        }
        let layout = RootLayout(name: "private", udiMount: config.udiMount, loopMount: config.loopMount)
        try RootBuilder(plan: ContainerPlanner.plan(request, layout: layout)).build()
        return layout
    }
}
