import Testing

@testable import ShifterCore

struct EnvironmentAssignmentTests {
    @Test(arguments: [
        ("A=1", "A", "1"),
        ("_=x", "_", "x"),
        ("PATH=/a:/b", "PATH", "/a:/b"),
        ("EMPTY=", "EMPTY", ""),
        ("EQ=a=b=c", "EQ", "a=b=c"),
        ("SPACE= a b ", "SPACE", " a b "),
        ("Q=\"quoted\"", "Q", "\"quoted\""),
        ("lower_case9=ü", "lower_case9", "ü"),
    ])
    func parsesAssignment(text: String, name: String, value: String) throws {
        let assignment = try EnvironmentAssignment.parse(text)
        #expect(assignment == EnvironmentAssignment(name: name, value: value))
        #expect(assignment.entry == text)
    }

    @Test(arguments: [
        ("NOVALUE", "expected NAME=VALUE"),
        ("", "expected NAME=VALUE"),
        ("=x", "\"\" is not a valid variable name"),
        ("1A=x", "\"1A\" is not a valid variable name"),
        ("A-B=x", "\"A-B\" is not a valid variable name"),
        ("A B=x", "\"A B\" is not a valid variable name"),
        ("Ä=x", "is not a valid variable name"),
        ("A=x\u{0}y", "value contains a NUL byte"),
    ])
    func rejectsAssignment(text: String, fragment: String) {
        #expect {
            try EnvironmentAssignment.parse(text)
        } throws: { error in
            (error as? EnvironmentError)?.description.contains(fragment) == true
        }
    }

    @Test func parsesEnvironmentFile() throws {
        let text = "# settings\n\nA=1\n  B=two words\r\n\t# indented comment\nC=\nD=x#not-a-comment\n"
        let assignments = try EnvironmentFile.parse(text, source: "vars.env")
        #expect(assignments.map(\.entry) == ["A=1", "B=two words", "C=", "D=x#not-a-comment"])
        #expect(try EnvironmentFile.parse("", source: "empty").isEmpty)
    }

    @Test(arguments: [
        ("", ""),
        ("\n\n", ""),
        ("# only a comment", ""),
        ("A=1", "A=1"),
        ("A=1\n", "A=1"),
        ("A=1\r\nB=2\r\n", "A=1|B=2"),
        ("  A=1", "A=1"),
        ("\tA=1", "A=1"),
        ("A= spaced ", "A= spaced "),
        ("A=1\nA=2", "A=1|A=2"),
        ("A=#not comment", "A=#not comment"),
        ("  # indented comment\nB=x", "B=x"),
        ("URL=http://x/?a=b&c=d", "URL=http://x/?a=b&c=d"),
        ("E=", "E="),
        ("_UNDER=1", "_UNDER=1"),
        ("A=1\n\n\nB=2", "A=1|B=2"),
        ("Q='single'", "Q='single'"),
        ("A=1\r", "A=1"),
        ("U=ünïcode", "U=ünïcode"),
        ("A=x\\\nB=y", "A=x\\|B=y"),
    ])
    func parsesEnvironmentFileLines(text: String, expected: String) throws {
        let entries = try EnvironmentFile.parse(text, source: "vars.env").map(\.entry)
        #expect(entries.joined(separator: "|") == expected)
    }

    @Test(arguments: [
        ("A=1\n1BAD=2", #"env file "vars.env" line 2: environment setting "1BAD=2": "1BAD" is not a valid variable name"#),
        ("A=1\r\n\r\nexport B=2", #"env file "vars.env" line 3: environment setting "export B=2": "export B" is not a valid variable name"#),
        ("JUSTNAME", #"env file "vars.env" line 1: environment setting "JUSTNAME": expected NAME=VALUE"#),
    ])
    func reportsEnvironmentFileLine(text: String, message: String) {
        #expect {
            try EnvironmentFile.parse(text, source: "vars.env")
        } throws: { error in
            (error as? EnvironmentError)?.description == message
        }
    }
}

struct ContainerEnvironmentTests {
    static let site = SiteEnvironment(
        assign: [EnvironmentAssignment(name: "SHIFTER_RUNTIME", value: "1")],
        append: [EnvironmentAssignment(name: "PATH", value: "/opt/udiImage/bin")],
        prepend: [EnvironmentAssignment(name: "LD_LIBRARY_PATH", value: "/site/lib")],
        unset: ["SECRET"])

    @Test func mergesInSpecOrder() {
        var module = SiteModule(name: "mpich")
        module.environment = SiteEnvironment(
            assign: [EnvironmentAssignment(name: "LAYER", value: "module")],
            append: [EnvironmentAssignment(name: "PATH", value: "/opt/mpich/bin")],
            prepend: [EnvironmentAssignment(name: "LD_LIBRARY_PATH", value: "/opt/mpich/lib")])
        let environment = ContainerEnvironment.merged(
            host: ["HOME=/home/me", "PATH=/host/bin", "LAYER=host", "SECRET=x", "malformed", "=bad", "BASH_FUNC_f%%=() { :; }"],
            shifter: [EnvironmentAssignment(name: "SHIFTER_IMAGE", value: "ubuntu"), EnvironmentAssignment(name: "LAYER", value: "shifter")],
            image: ["PATH=/usr/bin:/bin", "LAYER=image", "IMAGE_ONLY=1"],
            envFile: [EnvironmentAssignment(name: "LAYER", value: "file")],
            commandLine: [EnvironmentAssignment(name: "LAYER", value: "command line")],
            modules: [module],
            site: Self.site)
        #expect(environment.entries == [
            "HOME=/home/me",
            "PATH=/usr/bin:/bin:/opt/mpich/bin:/opt/udiImage/bin",
            "LAYER=module",
            "BASH_FUNC_f%%=() { :; }",
            "SHIFTER_IMAGE=ubuntu",
            "IMAGE_ONLY=1",
            "LD_LIBRARY_PATH=/site/lib:/opt/mpich/lib",
            "SHIFTER_RUNTIME=1",
        ])
    }

    @Test(arguments: [
        (["LAYER=host"], [String](), "host"),
        (["LAYER=host"], ["LAYER=image"], "image"),
    ])
    func laterLayersWin(host: [String], image: [String], expected: String) {
        #expect(ContainerEnvironment.merged(host: host, image: image)["LAYER"] == expected)
    }

    @Test func clearEnvironmentDropsHostOnly() {
        let environment = ContainerEnvironment.merged(
            host: ["HOME=/home/me", "PATH=/host/bin"], clearHost: true,
            shifter: [EnvironmentAssignment(name: "SHIFTER_RUNTIME", value: "1")], image: ["PATH=/bin"])
        #expect(environment.entries == ["SHIFTER_RUNTIME=1", "PATH=/bin"])
    }

    @Test func siteVariablesWinOverCommandLine() {
        let environment = ContainerEnvironment.merged(
            host: ["SECRET=x"], commandLine: [EnvironmentAssignment(name: "SHIFTER_RUNTIME", value: "0")], site: Self.site)
        #expect(environment["SHIFTER_RUNTIME"] == "1")
        #expect(environment["SECRET"] == nil)
        #expect(environment["PATH"] == "/opt/udiImage/bin")
        #expect(environment["LD_LIBRARY_PATH"] == "/site/lib")
    }

    @Test func appendAndPrependSkipEmptyValues() {
        var environment = ContainerEnvironment(entries: ["EMPTY="])
        environment.append("EMPTY", "/a")
        environment.prepend("NEW", "/b")
        environment.append("NEW", "/c")
        #expect(environment.entries == ["EMPTY=/a", "NEW=/b:/c"])
        environment["EMPTY"] = nil
        environment["NEW"] = "x"
        environment.set("LAST", "1")
        environment.unset("MISSING")
        #expect(environment.names == ["NEW", "LAST"])
        #expect(environment.count == 2)
    }

    @Test("what secure mode removed: the executed environment's names missing from environ, first of each, in order", arguments: [
        // glibc's secure mode removes these from a setuid program's environ.
        (["PATH=/bin", "LD_LIBRARY_PATH=/opt/lib", "HOME=/h", "TMPDIR=/scratch"], ["PATH=/bin", "HOME=/h"],
         ["LD_LIBRARY_PATH=/opt/lib", "TMPDIR=/scratch"]),
        // Nothing removed: nothing to give back.
        (["PATH=/bin", "A=1"], ["PATH=/bin", "A=1"], []),
        // A name given twice comes back once, with its first value, as getenv(3) reads it.
        (["LD_PRELOAD=/a.so", "LD_PRELOAD=/b.so"], [], ["LD_PRELOAD=/a.so"]),
        // A name still in environ keeps its value there, whatever the executed one said.
        (["A=old", "B=2"], ["A=new"], ["B=2"]),
        // Entries without a name or "=" are not variables.
        (["=x", "junk", "LD_AUDIT="], [], ["LD_AUDIT="]),
        ([], ["A=1"], []),
    ] as [([String], [String], [String])])
    func removedAtStart(executed: [String], remaining: [String], expected: [String]) {
        // environ at start, by name, as getenv(3) reads it: the first of each name.
        let byName = Dictionary(remaining.map { entry in
            let parts = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
        }, uniquingKeysWith: { first, _ in first })
        #expect(ContainerEnvironment.removedAtStart(executed: executed, remaining: byName) == expected)
    }
}

struct CommandCase: Sendable, CustomTestStringConvertible {
    var arguments: [String]
    var entrypoint: EntrypointRequest?
    var imageEntrypoint: [String]?
    var imageCmd: [String]?
    var expected: [String]

    var testDescription: String { "\(arguments) \(String(describing: entrypoint)) -> \(expected)" }
}

private let commandCases: [CommandCase] = [
    CommandCase(arguments: [], entrypoint: nil, imageEntrypoint: ["/entry"], imageCmd: ["cmd"], expected: ["/bin/sh"]),
    CommandCase(arguments: ["ls", "-l"], entrypoint: nil, imageEntrypoint: ["/entry"], imageCmd: ["cmd"], expected: ["ls", "-l"]),
    CommandCase(arguments: [], entrypoint: .image, imageEntrypoint: ["/entry", "-x"], imageCmd: ["a", "b"], expected: ["/entry", "-x", "a", "b"]),
    CommandCase(arguments: ["c"], entrypoint: .image, imageEntrypoint: ["/entry"], imageCmd: ["a", "b"], expected: ["/entry", "c"]),
    CommandCase(arguments: [], entrypoint: .image, imageEntrypoint: nil, imageCmd: ["a", "b"], expected: ["a", "b"]),
    CommandCase(arguments: ["c"], entrypoint: .image, imageEntrypoint: nil, imageCmd: ["a"], expected: ["c"]),
    CommandCase(arguments: [], entrypoint: .image, imageEntrypoint: ["/entry"], imageCmd: nil, expected: ["/entry"]),
    CommandCase(arguments: [], entrypoint: .command("/bin/other"), imageEntrypoint: ["/entry"], imageCmd: ["a"], expected: ["/bin/other"]),
    CommandCase(arguments: ["x", "y"], entrypoint: .command("/bin/other"), imageEntrypoint: ["/entry"], imageCmd: ["a"], expected: ["/bin/other", "x", "y"]),
]

private let workdirCases: [(WorkdirRequest?, String?, String?, Bool, String)] = [
    (.path("/data"), "/img", "/home/me", true, "/data"),
    (.image, "/img", "/home/me", true, "/img"),
    (.image, nil, "/home/me", true, "/home/me"),
    (nil, "/img", "/home/me", true, "/home/me"),
    (nil, "/img", "/home/me", false, "/"),
    (nil, nil, nil, true, "/"),
    (nil, nil, "relative", true, "/"),
]

struct ContainerCommandTests {
    @Test(arguments: commandCases)
    func choosesCommand(_ example: CommandCase) throws {
        let chosen = try ContainerCommand.arguments(
            example.arguments, entrypoint: example.entrypoint, imageEntrypoint: example.imageEntrypoint, imageCmd: example.imageCmd)
        #expect(chosen == example.expected)
    }

    @Test func entrypointWithoutAnythingToRunIsAnError() {
        #expect(throws: ContainerCommandError.self) {
            try ContainerCommand.arguments([], entrypoint: .image, imageEntrypoint: nil, imageCmd: nil)
        }
        #expect(throws: ContainerCommandError.self) {
            try ContainerCommand.arguments([], entrypoint: .image, imageEntrypoint: [""], imageCmd: nil)
        }
    }

    @Test(arguments: [
        ("ls", "/usr/bin:/bin", "/bin/ls"),
        ("tool", "/opt/x/:/usr/bin", "/opt/x/tool"),
        ("ls", "relative/bin::/bin", "/bin/ls"),
        ("ls", nil, "/bin/ls"),
        ("./run.sh", "/bin", "./run.sh"),
        ("/abs/prog", "/bin", "/abs/prog"),
        ("missing", "/usr/bin:/bin", nil),
        ("", "/bin", nil),
        ("ls", "", nil),
    ] as [(String, String?, String?)])
    func findsExecutableOnPath(command: String, path: String?, expected: String?) {
        let present: Set<String> = ["/bin/ls", "/opt/x/tool", "relative/bin/ls", "/usr/bin/tool"]
        #expect(ContainerCommand.executablePath(for: command, path: path, isExecutable: { present.contains($0) }) == expected)
    }

    @Test(arguments: workdirCases)
    func choosesWorkingDirectory(requested: WorkdirRequest?, image: String?, current: String?, exists: Bool, expected: String) {
        #expect(
            ContainerCommand.workingDirectory(
                requested: requested, imageWorkdir: image, currentDirectory: current, existsInContainer: { _ in exists })
                == expected)
    }
}
