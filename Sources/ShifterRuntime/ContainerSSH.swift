#if canImport(Glibc)
import Glibc
#endif
import ShifterCore
import ShifterSystem

/// The key pairs of one job's sshd (`--ccm`), made once at submission so that every node of the
/// job holds the same ones: the user's, which the job's tasks log in with, and the host's, which
/// ssh checks every node's sshd against (a process of another user that took the port first is
/// refused). Ed25519, kept as the base64 text of the OpenSSH files, so the job's environment can
/// carry them to the prolog.
public struct SSHKeys: Sendable, Equatable {
    /// The body of the user's OpenSSH private key file (its base64 lines, joined).
    public var userPrivate: String
    /// The user's public key blob (the base64 word of an `ssh-ed25519` line).
    public var userPublic: String
    /// The body of the host's private key file.
    public var hostPrivate: String
    /// The host's public key blob.
    public var hostPublic: String

    public init(userPrivate: String, userPublic: String, hostPrivate: String, hostPublic: String) {
        self.userPrivate = userPrivate
        self.userPublic = userPublic
        self.hostPrivate = hostPrivate
        self.hostPublic = hostPublic
    }

    /// The four parts, `.`-separated (a character base64 does not use).
    public var encoded: String { [userPrivate, userPublic, hostPrivate, hostPublic].joined(separator: ".") }

    /// The keys from `encoded`, or nil when `text` is not four base64 parts.
    public static func decode(_ text: String) -> SSHKeys? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 4, parts.allSatisfy(isBase64) else { return nil }
        return SSHKeys(userPrivate: parts[0], userPublic: parts[1], hostPrivate: parts[2], hostPublic: parts[3])
    }

    static func isBase64(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 16384 && text.utf8.allSatisfy { byte in
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "=")
        }
    }

    static let privateKeyHeader = "-----BEGIN OPENSSH PRIVATE KEY-----"
    static let privateKeyFooter = "-----END OPENSSH PRIVATE KEY-----"

    /// An OpenSSH private key file with `body`, in lines of 70 characters as ssh-keygen writes them.
    static func privateKeyFile(_ body: String) -> String {
        var lines = [privateKeyHeader]
        var rest = Substring(body)
        while !rest.isEmpty {
            lines.append(String(rest.prefix(70)))
            rest = rest.dropFirst(70)
        }
        lines.append(privateKeyFooter)
        return lines.joined(separator: "\n") + "\n"
    }

    /// The body of an OpenSSH private key file, or nil when `text` is not one.
    static func body(ofPrivateKeyFile text: String) -> String? {
        let lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map(String.init)
        guard lines.count > 2, lines.first == privateKeyHeader, lines.last == privateKeyFooter else { return nil }
        let body = lines.dropFirst().dropLast().joined()
        return isBase64(body) ? body : nil
    }

    /// The key blob of an `ssh-ed25519 BLOB [COMMENT]` line, or nil.
    static func blob(ofPublicKeyLine text: String) -> String? {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        guard words.count >= 2, words[0] == "ssh-ed25519", isBase64(words[1]) else { return nil }
        return words[1]
    }
}

/// How one node's sshd of a job is set up: the site's OpenSSH, where it listens, and the job's keys.
public struct SSHSetup: Sendable, Equatable {
    /// The site's OpenSSH (`sshPath`), bound read-only at the same path in the container.
    public var bundle: String
    /// The port this node's sshd listens on.
    public var port: Int
    /// The site's `sshPort`, where ssh reaches the nodes `nodePorts` does not name.
    public var defaultPort: Int
    /// The site's `sshNodePorts`.
    public var nodePorts: [SSHNodePort]
    /// The job's keys.
    public var keys: SSHKeys
    /// The job, and this node's name, which the sessions find in `SLURM_JOB_ID` and `SLURMD_NODENAME`.
    public var jobID: UInt32
    public var node: String?
    /// The cgroup2 group of the daemon and its sessions, relative to the hierarchy's mount
    /// (`JobControlGroup.name`), from the node's name as Slurm gave it, as the epilog names it.
    public var controlGroup: String

    public init(bundle: String, port: Int, defaultPort: Int, nodePorts: [SSHNodePort], keys: SSHKeys,
                jobID: UInt32, node: String?) {
        self.jobID = jobID
        self.controlGroup = JobControlGroup.name(jobID: jobID, node: node)
        self.node = node?.utf8.allSatisfy({ byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
                || byte == UInt8(ascii: "_")
        }) == true ? node : nil
        self.bundle = bundle
        self.port = port
        self.defaultPort = defaultPort
        self.nodePorts = nodePorts
        self.keys = keys
    }

    /// The job's sshd and ssh files in the container.
    public static let directory = "/etc/ssh/shifter"
    /// What sshd says once it listens (LogLevel INFO, on its standard error with `-e`).
    static let listeningLine = "Server listening on "
    /// The size of the tmpfs that holds sshd's log: each connection, a stranger's included, adds
    /// a few hundred bytes, and a full log must fill nothing else.
    public static let logSizeLimit: UInt64 = 1 << 20

    /// The sshd of the site's OpenSSH.
    public var sshd: String { bundle + "/bin/sshd" }

    /// The programs OpenSSH 9.8 and later runs for each connection (`sshd-session`, and from 10.0
    /// `sshd-auth`), where the site's bundle has them: sshd looks for them at the path it was built
    /// with, which the container does not have.
    var helperPrograms: [(option: String, path: String)] {
        [("SshdSessionPath", bundle + "/libexec/sshd-session"), ("SshdAuthPath", bundle + "/libexec/sshd-auth")]
            .filter { FileSystem.exists($0.path) }
    }

    /// sshd's configuration: the user's own sshd (it runs as the user, so it can log in no one
    /// else), the job's key only, no PAM, no passwords, IPv4 (a port half taken on one address
    /// family fails the start rather than leave the other family to whoever took it). Anyone who
    /// reaches the port can open connections before authenticating, so those are bounded: few at
    /// once (`MaxStartups`), each for a short time (`LoginGraceTime`), and from OpenSSH 9.8 (the
    /// bundle has `sshd-session`) a source that keeps failing is refused for a while
    /// (`PerSourcePenalties`, spelled out because the site's own sshd_config never applies here).
    /// `programs` stands for the bundle's helper programs (`helperPrograms`) where a test gives it.
    func sshdConfig(helperPrograms programs: [(option: String, path: String)]? = nil) -> String {
        let directory = Self.directory
        let programs = programs ?? helperPrograms
        return """
            # The sshd of a Shifter job (--ccm): it runs as the job's user, in the job's container.
            Port \(port)
            AddressFamily inet
            HostKey \(directory)/ssh_host_ed25519_key
            AuthorizedKeysFile \(directory)/authorized_keys
            StrictModes no
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PermitRootLogin no
            UsePAM no
            UseDNS no
            PidFile none
            PrintMotd no
            PrintLastLog no
            LogLevel INFO
            MaxStartups 10:30:60
            LoginGraceTime 20
            SetEnv SLURM_JOB_ID=\(jobID)\(node.map { " SLURMD_NODENAME=" + $0 } ?? "")

            """ + programs.map { "\($0.option) \($0.path)\n" }.joined()
            + (programs.contains { $0.option == "SshdSessionPath" } ? Self.perSourcePenalties + "\n" : "")
    }

    /// OpenSSH 9.8's own defaults for penalties: a source whose connections crash sshd, fail to
    /// log in, close before authenticating or exceed `LoginGraceTime` is refused for a while.
    static let perSourcePenalties = "PerSourcePenalties crash:90 authfail:5 noauth:1 grace-exceeded:20 max:600 min:15"

    /// The container's `/etc/ssh/ssh_config`: the job's key and host key, and each node's port.
    func sshConfig() -> String {
        let directory = Self.directory
        var text = "# Written by Shifter for a job with sshd (--ccm): ssh reaches the job's other nodes.\n"
        var seen: Set<String> = []
        for entry in nodePorts.reversed() where seen.insert(entry.node).inserted {
            text += "Host \(entry.node)\n"
            if let address = entry.address { text += "    HostName \(address)\n" }
            text += "    Port \(entry.port)\n"
        }
        text += """
            Host *
                Port \(defaultPort)
                IdentityFile \(directory)/id_ed25519
                UserKnownHostsFile \(directory)/known_hosts
                GlobalKnownHostsFile \(directory)/known_hosts
                StrictHostKeyChecking yes
                CheckHostIP no
                PasswordAuthentication no
                BatchMode yes
                LogLevel ERROR

            """
        return text
    }
}

/// The per-job sshd of `--ccm`: keys at submission, the daemon in each node's prolog.
public enum ContainerSSH {
    /// How long sshd may take to listen.
    static let startLimit: Duration = .seconds(10)

    /// Makes a job's keys with the site's `ssh-keygen`, as the submitting user, in a private
    /// temporary directory that is removed again.
    public static func makeKeys(config: SiteConfig) throws(RuntimeError) -> SSHKeys {
        guard let bundle = config.sshPath else {
            throw RuntimeError("--ccm: this site has no sshd for containers (sshPath is not set in udiRoot.conf)")
        }
        let keygen = bundle + "/bin/ssh-keygen"
        guard FileSystem.exists(keygen) else {
            throw RuntimeError("--ccm: the site's ssh-keygen \(keygen) is not on this host (sshPath in udiRoot.conf)")
        }
        var template = Array(((getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/tmp")
            + "/shifter-ssh.XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw RuntimeError("--ccm: couldn't make a temporary directory for the job's keys: \(String(cString: strerror(errno)))")
        }
        let directory = String(cString: made)
        defer { _ = try? FileSystem.removeTree(directory) }
        var parts: [String] = []
        for name in ["user", "host"] {
            let file = directory + "/" + name
            let outcome: ProgramRunner.Outcome
            do {
                outcome = try ProgramRunner.run(keygen, ["-q", "-t", "ed25519", "-N", "", "-C", "shifter-job", "-f", file],
                                                timeLimit: .seconds(30))
            } catch {
                throw RuntimeError("--ccm: couldn't run \(keygen): \(error.description)")
            }
            guard outcome.status == 0 else {
                let said = outcome.output.split(separator: "\n").last.map(String.init) ?? "exit status \(outcome.status)"
                throw RuntimeError("--ccm: \(keygen) failed: \(said)")
            }
            guard let privateText = try? FileSystem.readFile(file, limit: 65536),
                  let publicText = try? FileSystem.readFile(file + ".pub", limit: 65536),
                  let body = SSHKeys.body(ofPrivateKeyFile: String(decoding: privateText, as: UTF8.self)),
                  let blob = SSHKeys.blob(ofPublicKeyLine: String(decoding: publicText, as: UTF8.self)) else {
                throw RuntimeError("--ccm: \(keygen) did not write an ed25519 key pair")
            }
            parts += [body, blob]
        }
        return SSHKeys(userPrivate: parts[0], userPublic: parts[1], hostPrivate: parts[2], hostPublic: parts[3])
    }

    /// Writes the job's ssh files into the container: sshd's configuration and host key, the
    /// user's key (the private ones 0600 and the user's), `known_hosts` and `/etc/ssh/ssh_config`.
    /// Run with the other `/etc` files, before any host path is bound into the root, so every
    /// path resolves inside the image's own files.
    static func writeFiles(_ setup: SSHSetup, layout: RootLayout, user: ContainerUser) throws(RuntimeError) {
        let directory = SSHSetup.directory
        let owner = (uid: uid_t(user.uid), gid: gid_t(user.gid))
        let publicKey = Array("ssh-ed25519 \(setup.keys.userPublic) shifter-job\n".utf8)
        do throws(SystemError) {
            _ = try ContainedPath.makingDirectories(root: layout.root, path: directory, strict: true)
            try ContainedPath.writeFile(root: layout.root, path: directory + "/sshd_config", Array(setup.sshdConfig().utf8),
                                        mode: 0o644)
            try ContainedPath.writeFile(root: layout.root, path: directory + "/ssh_host_ed25519_key",
                                        Array(SSHKeys.privateKeyFile(setup.keys.hostPrivate).utf8), mode: 0o600, owner: owner)
            try ContainedPath.writeFile(root: layout.root, path: directory + "/id_ed25519",
                                        Array(SSHKeys.privateKeyFile(setup.keys.userPrivate).utf8), mode: 0o600, owner: owner)
            try ContainedPath.writeFile(root: layout.root, path: directory + "/id_ed25519.pub", publicKey, mode: 0o644)
            try ContainedPath.writeFile(root: layout.root, path: directory + "/authorized_keys", publicKey, mode: 0o600,
                                        owner: owner)
            try ContainedPath.writeFile(root: layout.root, path: directory + "/known_hosts",
                                        Array("* ssh-ed25519 \(setup.keys.hostPublic)\n".utf8), mode: 0o644)
            try ContainedPath.writeFile(root: layout.root, path: "/etc/ssh/ssh_config", Array(setup.sshConfig().utf8), mode: 0o644)
        } catch {
            throw RuntimeError("sshd: couldn't write its files: \(error.description)")
        }
    }

    /// Mounts the small tmpfs of sshd's log beside the root (root's only, `.sshdLog`): a flood of
    /// connections fills it and nothing else, neither the container's writable layer on the
    /// scratch filesystem nor the node's memory. The root's teardown detaches it with the scratch.
    static func mountLog(layout: RootLayout, sizeLimit: UInt64) throws(SystemError) {
        try FileSystem.makeDirectory(layout.sshdLogDirectory, mode: 0o700)
        try Mounts.mount(source: "shifter-sshd-log", target: layout.sshdLogDirectory, type: "tmpfs",
                         flags: [.noSetuid, .noDevices, .noExec], data: "mode=0700,size=\(sizeLimit),nr_inodes=16")
    }

    /// Makes the job's cgroup for sshd and its sessions on this node (`.sshdControlGroup`), below
    /// the cgroup2 hierarchy's mount. Without one (a host with cgroup v1 only) the job goes on as
    /// before, with a line to `warn`: its sessions are then found by their root alone.
    static func makeControlGroup(_ name: String, warn: (String) -> Void) throws(RuntimeError) {
        guard let mount = ControlGroup.unifiedMountPoint() else {
            warn("sshd: no cgroup2 hierarchy is mounted on this node, so the job's ssh sessions are in no group of the job; the epilog finds them by their root only")
            return
        }
        let group = ControlGroup(path: mount + "/" + name)
        // A group left by an earlier attempt of this job holds nothing of this one's.
        if group.exists, let problem = JobControlGroup.end(group).first { throw RuntimeError("sshd: " + problem) }
        do throws(SystemError) {
            try group.create()
        } catch {
            throw RuntimeError("sshd: couldn't make the job's cgroup: \(error.description)")
        }
    }

    /// Starts sshd in the container as the user and waits until it listens. Its messages go to
    /// `sshd.log` on the log's own tmpfs beside the root (`mountLog`). Where the job's cgroup was
    /// made (`makeControlGroup`), the daemon joins it before it drops root. A start that fails
    /// leaves the daemon to the caller's teardown, which stops everything in the root and the
    /// group; so does the epilog.
    /// `inNamespaces`: the daemon joins the job's namespaces (`RootLayout.userNamespacePin`) rather
    /// than chrooting to the root, as the job's tasks do.
    static func start(_ setup: SSHSetup, layout: RootLayout, user: ContainerUser, inNamespaces: Bool = false) throws(RuntimeError) {
        let logPath = layout.sshdLogDirectory + "/sshd.log"
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard log >= 0 else { throw RuntimeError("sshd: couldn't create \(logPath): \(String(cString: strerror(errno)))") }
        defer { close(log) }
        var procs: Int32 = -1
        if let mount = ControlGroup.unifiedMountPoint() {
            let group = ControlGroup(path: mount + "/" + setup.controlGroup)
            if group.exists {
                do throws(SystemError) {
                    procs = try group.openProcesses()
                } catch {
                    throw RuntimeError("sshd: couldn't join the job's cgroup: \(error.description)")
                }
            }
        }
        defer { if procs >= 0 { close(procs) } }
        var namespaces: (user: Int32, mount: Int32)?
        if inNamespaces {
            do throws(SystemError) {
                namespaces = try Namespaces.open(userPin: layout.userNamespacePin, mountPin: layout.mountNamespacePin)
            } catch {
                throw RuntimeError("sshd: couldn't \(error.description)")
            }
        }
        defer { if let namespaces { close(namespaces.user); close(namespaces.mount) } }
        let pid: pid_t
        do throws(SystemError) {
            pid = try UserDaemon.start(setup.sshd, arguments: ["-D", "-e", "-f", SSHSetup.directory + "/sshd_config"],
                                       environment: ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C"], root: layout.root,
                                       uid: user.uid, gid: user.gid, groups: [user.gid] + user.groups, log: log,
                                       controlGroupProcesses: procs >= 0 ? procs : nil, namespaces: namespaces)
        } catch {
            throw RuntimeError("sshd: couldn't start \(setup.sshd) in the container: \(error.reason)")
        }
        // Held by a pidfd, which becomes readable when the daemon exits, whoever reaps it (on a
        // kernel without pidfds, only the log tells).
        let watch: ProcessDescriptor?
        do throws(SystemError) {
            watch = try ProcessDescriptor(pid: pid)
        } catch {
            if error.errno == ESRCH { throw RuntimeError("sshd did not start on port \(setup.port): it exited at once") }
            watch = nil
        }
        // sshd says when it listens, and why it cannot (a port in use, a bad key).
        let deadline = MonotonicClock.seconds + MonotonicClock.seconds(startLimit)
        while true {
            let said = (try? FileSystem.readFile(logPath, limit: 65536)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let lines = said.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
            let failed = lines.contains { $0.hasPrefix("Bind to port") || $0.hasPrefix("Cannot bind") }
            if !failed, lines.contains(where: { $0.hasPrefix(SSHSetup.listeningLine) }) { return }
            let gone = watch?.hasExited() ?? false
            if failed || gone || MonotonicClock.seconds >= deadline {
                let why = lines.filter { !$0.hasPrefix(SSHSetup.listeningLine) }.suffix(2).joined(separator: "; ")
                throw RuntimeError("sshd did not start on port \(setup.port): " + (why.isEmpty
                    ? (gone ? "it exited" : "it did not listen within \(startLimit.components.seconds) s") : why))
            }
            usleep(10_000)
        }
    }
}
