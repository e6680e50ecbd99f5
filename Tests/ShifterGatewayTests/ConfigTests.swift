import Foundation
import ShifterCore
import ShifterImage
import Testing

@testable import ShifterGateway

@Suite struct GatewayConfigTests {
    static func parse(_ text: String) throws(GatewayConfigError) -> GatewayConfig {
        try GatewayConfig.parse(Array(text.utf8), source: "test.conf") { $0 == "alice" ? 1001 : nil }
    }

    @Test func readsTheSignaturePolicy() throws {
        let config = try Self.parse(#"""
            {"systems": {"c": {"imagePath": "/i"}}, "signaturePolicy": {"default": "reject", "archives": "reject",
             "scopes": {"r.example/team": {"signedBy": ["/keys/a.pub", "/keys/b.pub"]}, "r.example/team/open": "accept"}}}
            """#)
        #expect(config.signaturePolicy == SignaturePolicy(
            defaultRequirement: .reject,
            scopes: ["r.example/team": .signedBy(keyFiles: ["/keys/a.pub", "/keys/b.pub"]), "r.example/team/open": .accept],
            archives: .reject))
        #expect(try Self.parse(#"{"systems": {"c": {"imagePath": "/i"}}}"#).signaturePolicy == nil)
    }

    @Test func readsEveryKey() throws {
        let config = try Self.parse(
            """
            {"listen": "0.0.0.0:8080", "database": "/var/lib/gw.sqlite", "workers": 3,
             "systems": {"cori": {"imagePath": "/images/cori"}},
             "registries": {"hub": {"url": "https://registry.example.org:5000", "caBundle": "/ca.pem", "auth": "user"}},
             "defaultRegistry": "registry.example.org:5000", "platform": "linux/arm64",
             "expireAfterSeconds": 100, "autoexpireIntervalSeconds": 600, "jobTimeLimitSeconds": 50, "minPullIntervalSeconds": 5,
             "admins": ["alice", 1005], "importUsers": ["1010"], "maxBodyBytes": 2048, "lookupHistory": 10}
            """)
        #expect(config.listenHost == "0.0.0.0" && config.listenPort == 8080)
        #expect(config.workers == 3)
        #expect(config.systems["cori"]?.imagePath == "/images/cori")
        #expect(config.registries["registry.example.org:5000"]?.caBundle == "/ca.pem")
        #expect(config.registry(for: "other.example.org") == nil)
        #expect(config.adminUIDs == [0, 1001, 1005])
        #expect(config.importUIDs == [1010])
        #expect(config.minPullInterval == 5 && config.expireAfter == 100 && config.jobTimeLimit == 50)
        #expect(config.autoexpireInterval == 600)
    }

    /// The gateway runs autoexpire daily unless told otherwise; 0 turns the timer off.
    @Test(arguments: [
        ("", 86_400.0),
        (", \"autoexpireIntervalSeconds\": null", 86_400),
        (", \"autoexpireIntervalSeconds\": 0", 0),
        (", \"autoexpireIntervalSeconds\": 1", 1),
        (", \"autoexpireIntervalSeconds\": 0.5", 0.5),
        (", \"autoexpireIntervalSeconds\": 3600", 3600),
        (", \"autoexpireIntervalSeconds\": 31536000", 31_536_000),
    ])
    func readsTheAutoexpireInterval(member: String, seconds: Double) throws {
        let config = try Self.parse("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}\(member)}")
        #expect(config.autoexpireInterval == seconds)
    }

    /// The limits of an import: sizes as bytes or with a unit, as udiRoot.conf writes them; the
    /// importers' own defaults where unset.
    @Test(arguments: [
        ("", ImportLimits.standard, ImageArchiveImporter.Limits.standard, 1),
        (
            #", "imageExpandedSizeLimit": "16M", "imageEntryLimit": 100000, "archiveImportSizeLimit": 1048576, "archiveImportEntryLimit": 500, "archiveImportsPerUser": 2"#,
            ImportLimits(maximumExpandedBytes: 16 << 20, maximumEntries: 100_000), ImageArchiveImporter.Limits(maximumBlobBytes: 1 << 20, maximumEntries: 500), 2
        ),
        (
            #", "imageExpandedSizeLimit": 1073741824, "archiveImportSizeLimit": "2g""#,
            ImportLimits(maximumExpandedBytes: 1 << 30, maximumEntries: ImportLimits.standard.maximumEntries),
            ImageArchiveImporter.Limits(maximumBlobBytes: 2 << 30, maximumEntries: ImageArchiveImporter.Limits.standard.maximumEntries), 1
        ),
    ])
    func readsTheImportLimits(members: String, layers: ImportLimits, archive: ImageArchiveImporter.Limits, perUser: Int) throws {
        let config = try Self.parse("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}\(members)}")
        #expect(config.importLimits == layers)
        #expect(config.archiveLimits == archive)
        #expect(config.archiveImportsPerUser == perUser)
    }

    @Test func readsTheExample() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../etc/imagegw.conf.example")
        let data = try Data(contentsOf: url)
        let config = try GatewayConfig.parse(Array(data), source: "imagegw.conf.example") { _ in 0 }
        #expect(!config.systems.isEmpty)
    }

    @Test(arguments: [
        ("{", "not valid JSON"),
        ("[]", "top level"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"colour\": 1}", "key \"colour\": unknown key"),
        ("{}", "key \"systems\""),
        ("{\"systems\": {\"c\": {\"imagePath\": \"i\"}}}", "key \"systems.c.imagePath\""),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\", \"x\": 1}}}", "key \"systems.c.x\": unknown key"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"listen\": \"nocolon\"}", "not HOST:PORT"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"workers\": 0}", "between 1 and 64"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"workers\": \"2\"}", "should be a number"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"workers\": true}", "should be a number"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"allowUnlistedRegistries\": 1}", "true or false"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"admins\": [\"nobody-here\"]}", "not a known user"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"registries\": {\"r\": {\"url\": \"http://r\"}}}", "not an https:// URL"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"registries\": {\"r\": {\"auth\": \"magic\"}}}", "not one of"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"registries\": {\"r\": {\"auth\": \"site\"}}}", "needs username"),
        ("{\"systems\": {\"c d\": {\"imagePath\": \"/i\"}}}", "system name"),
        ("1", "not valid JSON"),
        ("\"text\"", "not valid JSON"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"workers\": 1e400}", "not valid JSON"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"autoexpireIntervalSeconds\": -1}", "autoexpireIntervalSeconds\": must not be negative"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"autoexpireIntervalSeconds\": \"daily\"}", "autoexpireIntervalSeconds\": should be a number"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"autoexpireIntervalSeconds\": \"60\"}", "autoexpireIntervalSeconds\": should be a number"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"autoexpireIntervalSeconds\": true}", "autoexpireIntervalSeconds\": should be a number"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"autoexpireIntervalSeconds\": 31536001}", "autoexpireIntervalSeconds\": must be at most 31536000"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"archiveImportSizeLimit\": \"10GB\"}", "key \"archiveImportSizeLimit\": \"10GB\": unknown unit"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"archiveImportSizeLimit\": 0}", "key \"archiveImportSizeLimit\": must be at least 1 byte"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"imageExpandedSizeLimit\": -1}", "key \"imageExpandedSizeLimit\": must not be negative"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"imageExpandedSizeLimit\": true}", "key \"imageExpandedSizeLimit\": should be a number of bytes"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"imageEntryLimit\": 0}", "key \"imageEntryLimit\": 0 is not between 1 and 1000000000"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"archiveImportEntryLimit\": 1.5}", "key \"archiveImportEntryLimit\": should be a whole number"),
        ("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"archiveImportsPerUser\": 0}", "key \"archiveImportsPerUser\": 0 is not between 1 and 64"),
        (#"{"systems": {"c": {"imagePath": "/i"}}, "signaturePolicy": {"default": "maybe"}}"#, #"key "signaturePolicy.default": should be "accept", "reject" or {"signedBy""#),
        (#"{"systems": {"c": {"imagePath": "/i"}}, "signaturePolicy": {"default": {"signedBy": []}}}"#, #"key "signaturePolicy.default.signedBy": should be a list of one or more"#),
        (#"{"systems": {"c": {"imagePath": "/i"}}, "signaturePolicy": {"default": {"signedBy": ["k.pub"]}}}"#, #""k.pub" is not an absolute path"#),
        (#"{"systems": {"c": {"imagePath": "/i"}}, "signaturePolicy": {"default": {"signedBy": ["/k.pub"], "identity": "any"}}}"#, #"key "signaturePolicy.default.identity": unknown key"#),
        (#"{"systems": {"c": {"imagePath": "/i"}}, "signaturePolicy": {"archives": {"signedBy": ["/k.pub"]}}}"#, "an archive carries no registry signature"),
        (#"{"systems": {"c": {"imagePath": "/i"}}, "signaturePolicy": {"scopes": {"Registry.example/a": "reject"}}}"#, "not in lower case"),
        (#"{"systems": {"c": {"imagePath": "/i"}}, "signaturePolicy": {"scopes": {"r.example/a:1.0": "reject"}}}"#, "names a tag or digest"),
        (#"{"systems": {"c": {"imagePath": "/i"}}, "signaturePolicy": {"scopes": {"r.example//a": "reject"}}}"#, "empty path component"),
        (#"{"systems": {"c": {"imagePath": "/i"}}, "signaturePolicy": {"scope": {}}}"#, #"key "signaturePolicy.scope": unknown key"#),
    ])
    func refusesBadFiles(text: String, reason: String) {
        do {
            _ = try Self.parse(text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.message.hasPrefix("gateway configuration \"test.conf\""))
            #expect(error.message.contains(reason), "\(error.message)")
        }
    }

    /// An entry of `admins` that is no user is named as earlier releases named it.
    @Test(arguments: [
        ("-1", #""-1""#),
        ("4294967296", #""4294967296""#),
        ("1.5", #""1.5""#),
        ("1e20", #""1e+20""#),
        ("-1500.5", #""-1500.5""#),
        ("true", #""1""#),
        ("null", #""<null>""#),
        ("[1, \"b\"]", #""[1, \"b\"]""#),
        ("{}", #""[:]""#),
    ])
    func namesAnAdminThatIsNoUser(entry: String, named: String) {
        do {
            _ = try Self.parse("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"admins\": [\(entry)]}")
            Issue.record("accepted admin \(entry)")
        } catch {
            #expect(error.message == "gateway configuration \"test.conf\": key \"admins\": \(named) is not a known user or uid")
        }
    }

    /// JSONDecoder keeps the first of a repeated key; JSONSerialization, which read the file in
    /// earlier releases, kept the last.
    @Test func theFirstOfARepeatedKeyCounts() throws {
        let config = try Self.parse("{\"systems\": {\"c\": {\"imagePath\": \"/i\"}}, \"workers\": 3, \"workers\": 0}")
        #expect(config.workers == 3)
    }
}
