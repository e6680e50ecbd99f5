import ShifterCore
import Testing
@testable import ShifterRuntime

private let body = String(repeating: "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW", count: 3) + "Q="
private let keys = SSHKeys(userPrivate: body, userPublic: "AAAAC3NzaC1lZDI1NTE5AAAAIUser", hostPrivate: body + "AA",
                           hostPublic: "AAAAC3NzaC1lZDI1NTE5AAAAIHost")

@Suite struct SSHKeysTests {
    @Test func encodedKeysDecodeToTheSame() {
        #expect(SSHKeys.decode(keys.encoded) == keys)
    }

    @Test func refusesWhatIsNotFourBase64Parts() {
        for text in ["", "a.b.c", "a.b.c.d.e", "a.b..d", "a.b.c.d e", "a.b.c.d\n", "a.b.c.d;rm"] {
            #expect(SSHKeys.decode(text) == nil, "\(text)")
        }
    }

    @Test func privateKeyFileRoundTripsInLinesOf70() throws {
        let file = SSHKeys.privateKeyFile(body)
        let lines = file.split(separator: "\n")
        #expect(lines.first == "-----BEGIN OPENSSH PRIVATE KEY-----")
        #expect(lines.last == "-----END OPENSSH PRIVATE KEY-----")
        #expect(lines.dropFirst().dropLast().allSatisfy { $0.count <= 70 })
        #expect(lines[1].count == 70)
        #expect(SSHKeys.body(ofPrivateKeyFile: file) == body)
        #expect(SSHKeys.body(ofPrivateKeyFile: "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n") == nil)
    }

    @Test func publicKeyBlobOfEd25519LinesOnly() {
        #expect(SSHKeys.blob(ofPublicKeyLine: "ssh-ed25519 AAAAC3Nz shifter-job\n") == "AAAAC3Nz")
        #expect(SSHKeys.blob(ofPublicKeyLine: "ssh-rsa AAAAB3Nz x") == nil)
        #expect(SSHKeys.blob(ofPublicKeyLine: "ssh-ed25519") == nil)
    }
}

@Suite struct SSHSetupTests {
    private func setup(node: String? = "n2") -> SSHSetup {
        SSHSetup(bundle: "/opt/shifter/ssh", port: 2202, defaultPort: 1204,
                 nodePorts: [SSHNodePort(node: "n1", address: "127.0.0.1", port: 2201), SSHNodePort(node: "n2", port: 2202)],
                 keys: keys, jobID: 77, node: node)
    }

    @Test func sshdTakesOnlyTheJobsKeyOnOneAddressFamily() {
        let config = setup().sshdConfig()
        let lines = Set(config.split(separator: "\n").map(String.init))
        for expected in ["Port 2202", "AddressFamily inet", "HostKey /etc/ssh/shifter/ssh_host_ed25519_key",
                         "AuthorizedKeysFile /etc/ssh/shifter/authorized_keys", "UsePAM no",
                         "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PidFile none",
                         "SetEnv SLURM_JOB_ID=77 SLURMD_NODENAME=n2"] {
            #expect(lines.contains(expected), "\(expected)")
        }
        // A node name that is not a plain name is left out rather than written into the file.
        #expect(setup(node: "n2\nAllowUsers *").sshdConfig().contains("SetEnv SLURM_JOB_ID=77\n"))
        // A bundle without OpenSSH 9.8's helper programs names none.
        #expect(!config.contains("SshdSessionPath"))
    }

    /// Anyone who reaches the port may connect: few unauthenticated connections at once, each for
    /// a short time, and penalties for a source that keeps failing where OpenSSH has them (9.8,
    /// whose bundle has sshd-session).
    @Test func connectionsBeforeLoginAreBounded() {
        let lines = setup().sshdConfig().split(separator: "\n").map(String.init)
        #expect(lines.contains("MaxStartups 10:30:60"))
        #expect(lines.contains("LoginGraceTime 20"))
        #expect(!lines.contains { $0.hasPrefix("PerSourcePenalties") })
        let newer = setup().sshdConfig(helperPrograms: [("SshdSessionPath", "/opt/shifter/ssh/libexec/sshd-session")])
            .split(separator: "\n").map(String.init)
        #expect(newer.contains("SshdSessionPath /opt/shifter/ssh/libexec/sshd-session"))
        #expect(newer.contains("PerSourcePenalties crash:90 authfail:5 noauth:1 grace-exceeded:20 max:600 min:15"))
        #expect(newer.contains("MaxStartups 10:30:60"))
    }

    @Test func sshReachesEachNodeAtItsPortAndTrustsOnlyTheJobsHostKey() {
        let config = setup().sshConfig()
        #expect(config.contains("Host n1\n    HostName 127.0.0.1\n    Port 2201\n"))
        #expect(config.contains("Host n2\n    Port 2202\n"))
        // ssh takes the first value it finds: the nodes' blocks come before the default.
        let star = config.range(of: "Host *")!.lowerBound
        #expect(config.range(of: "Host n1")!.lowerBound < star)
        for expected in ["Port 1204", "StrictHostKeyChecking yes", "UserKnownHostsFile /etc/ssh/shifter/known_hosts",
                         "IdentityFile /etc/ssh/shifter/id_ed25519", "BatchMode yes"] {
            #expect(config[star...].contains(expected), "\(expected)")
        }
    }
}

@Suite struct SSHPlanTests {
    @Test func theFilesComeBeforeAnyHostBindAndSshdStartsLast() throws {
        let config = try SiteConfig.parse("udiMount=/var/udiMount\nloopMount=/var/udiLoopMount\nimagePath=/images\n",
                                          source: "test").config
        let setup = SSHSetup(bundle: "/opt/shifter/ssh", port: 1204, defaultPort: 1204, nodePorts: [], keys: keys,
                             jobID: 1, node: nil)
        let user = ContainerUser(uid: 1000, gid: 100, groups: [], name: "alice", home: "/home/alice", shell: "/bin/bash")
        let request = ContainerRequest(config: config, image: .squashfs("/images/a.squashfs"),
                                       metadata: ImageMetadata(digest: "sha256:" + String(repeating: "a", count: 64)),
                                       user: user, volumes: [try VolumeSpec.parse("/data:/data")], modules: [], ssh: setup)
        let steps = ContainerPlanner.plan(request, layout: RootLayout.job(1, config: config)).steps
        let bind = steps.firstIndex(of: .hostBind(source: "/opt/shifter/ssh", containerPath: "/opt/shifter/ssh",
                                                  recursive: false, readOnly: true, propagation: .private, allowDevices: false))
        let firstHostBind = steps.firstIndex { if case .hostBind = $0 { true } else { false } }
        let files = steps.firstIndex(of: .sshFiles(setup))
        #expect(bind != nil && files != nil && firstHostBind != nil)
        // Written while every path in the root is the image's own; started once all is in place.
        #expect(files! < firstHostBind!)
        // The log's tmpfs and the job's cgroup are in place before the daemon, which comes last.
        #expect(Array(steps.suffix(3)) == [.sshdLog(sizeLimit: 1 << 20), .sshdControlGroup("shifter/job-1"), .sshd(setup)])
        var without = request
        without.ssh = nil
        #expect(!ContainerPlanner.plan(without, layout: RootLayout.job(1, config: config)).steps.contains { step in
            switch step {
            case .sshd, .sshFiles, .sshdLog, .sshdControlGroup: true
            default: false
            }
        })
    }
}


/// The cgroup of a job's sshd is named by job and node, so the groups of one job's nodes on one
/// host (one cgroup tree) are apart, and the epilog finds its own by the same name.
@Suite struct JobControlGroupTests {
    @Test(arguments: [
        (5, "n1", "shifter/job-5-n1"),
        (5, "n2", "shifter/job-5-n2"),
        (123456, "node-0017.cluster", "shifter/job-123456-node-0017.cluster"),
        (5, nil, "shifter/job-5"),
        (5, "", "shifter/job-5"),
        (5, "../../x", "shifter/job-5-.._.._x"),
        (5, "n1\nx y", "shifter/job-5-n1_x_y"),
        (5, String(repeating: "a", count: 100), "shifter/job-5-" + String(repeating: "a", count: 64)),
    ] as [(UInt32, String?, String)])
    func nameIsOnePathComponentPerJobAndNode(jobID: UInt32, node: String?, expected: String) {
        let name = JobControlGroup.name(jobID: jobID, node: node)
        #expect(name == expected)
        #expect(name.split(separator: "/").count == 2)
    }

    @Test func theSetupCarriesTheNameFromTheNodeAsSlurmGaveIt() {
        let setup = SSHSetup(bundle: "/b", port: 1, defaultPort: 1, nodePorts: [], keys: keys, jobID: 9, node: "n 3")
        #expect(setup.node == nil)
        #expect(setup.controlGroup == JobControlGroup.name(jobID: 9, node: "n 3"))
    }

    @Test func anAdministratorsCleanupTakesEveryNodesGroupOfTheJobAndNoOther() {
        #expect(JobControlGroup.isGroup("job-5", ofJob: 5))
        #expect(JobControlGroup.isGroup("job-5-n1", ofJob: 5))
        #expect(!JobControlGroup.isGroup("job-55-n1", ofJob: 5))
        #expect(!JobControlGroup.isGroup("job-50", ofJob: 5))
    }
}
