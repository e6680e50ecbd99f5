import Foundation
import ShifterGatewayClient
import ShifterImage
import Testing

@testable import ShifterGateway

/// A record of `custom:name` for the rule tables.
private func row(owner: UInt32, _ status: GatewayImageStatus, scope: String = "") -> ImageRow {
    ImageRow(system: "cluster", itype: "custom", tag: "name:1", scope: scope, ownerUID: owner, digest: nil, status: status)
}

struct CustomImageNamesTests {
    /// Who may import a name, given every record it has. The caller is uid 1001.
    @Test(arguments: [
        ("no record", [], "granted"),
        ("the caller's image", [row(owner: 1001, .ready)], "granted"),
        ("the caller's failed import", [row(owner: 1001, .failure)], "granted"),
        ("another user's image", [row(owner: 1002, .ready)], "taken"),
        ("another user's failed import", [row(owner: 1002, .failure)], "taken"),
        ("another user's running import", [row(owner: 1002, .conversion)], "taken"),
        ("root's image", [row(owner: 0, .ready)], "taken"),
        ("another user's expired image", [row(owner: 1002, .expired)], "granted"),
        ("another user's private record of an older gateway", [row(owner: 1002, .ready, scope: "uid:1002")], "taken"),
        ("the caller's running import", [row(owner: 1001, .conversion)], "busy"),
        ("the caller's image beside another user's", [row(owner: 1001, .ready), row(owner: 1002, .ready, scope: "uid:1002")], "taken"),
    ] as [(String, [ImageRow], String)])
    func aNameBelongsToItsFirstImporter(what: String, rows: [ImageRow], expected: String) {
        let claim = CustomImageNames.claim(rows, caller: 1001)
        let got: String
        switch claim {
        case .granted: got = "granted"
        case .taken: got = "taken"
        case .busy: got = "busy"
        }
        #expect(got == expected, "\(what)")
    }

    /// What an import puts back when it fails: the caller's own live record of the name, never
    /// another user's (expired) one.
    @Test func theRecordPutBackIsTheCallersOwn() {
        #expect(CustomImageNames.claim([row(owner: 1002, .expired)], caller: 1001) == .granted(previous: nil))
        let own = row(owner: 1001, .ready)
        #expect(CustomImageNames.claim([own], caller: 1001) == .granted(previous: own))
    }

    /// The tag is written only while the caller's reservation is the running import and no other
    /// user holds the name.
    @Test(arguments: [
        ("the caller's reservation", [row(owner: 1001, .conversion)], true),
        ("no record (an administrator removed it)", [], false),
        ("expired meanwhile", [row(owner: 1001, .expired)], false),
        ("expired and taken by another import", [row(owner: 1002, .conversion)], false),
        ("the caller's, but not an import", [row(owner: 1001, .ready)], false),
        ("another user's older private record beside it", [row(owner: 1001, .conversion), row(owner: 1002, .ready, scope: "uid:1002")], false),
    ] as [(String, [ImageRow], Bool)])
    func theTagIsWrittenOnlyWhileTheReservationHolds(what: String, rows: [ImageRow], held: Bool) {
        #expect(CustomImageNames.isStillHeld(rows, caller: 1001) == held, "\(what)")
    }
}

extension CustomImageNamesTests {
    /// A private import's reservation shows its name and source to those it is for, nobody else.
    @Test func aPrivateImportsReservationIsPrivate() {
        let row = CustomImageNames.reservation(
            previous: nil, system: "cluster", tag: "secret:1", caller: 1001, source: "/a", userACL: [1001], groupACL: [], now: 1)
        #expect(row.isPrivate && row.userACL == [1001] && row.status == .conversion)
        #expect(!row.isVisible(to: TestGateway.bob, admins: [0]))
    }

    /// Names that records of several users hold, as gateways before names had owners left them.
    @Test func namesOfSeveralUsersAreContested() {
        let rows = [
            row(owner: 1001, .ready, scope: "uid:1001"), row(owner: 1002, .ready),
            ImageRow(system: "cluster", itype: "custom", tag: "alone:1", scope: "", ownerUID: 1001, digest: nil, status: .ready),
            ImageRow(system: "cluster", itype: "custom", tag: "gone:1", scope: "", ownerUID: 1001, digest: nil, status: .ready),
            ImageRow(system: "cluster", itype: "custom", tag: "gone:1", scope: "uid:1002", ownerUID: 1002, digest: nil, status: .expired),
        ]
        #expect(CustomImageNames.contested(rows) == ["name:1"])
    }
}

/// The reservation through the gateway's own database: another import of the name, by anyone, is
/// refused while one runs and after it, and a failed first import leaves the name free.
struct CustomImageNameReservationTests {
    @Test func aRunningImportHoldsItsName() throws {
        let gateway = try TestGateway(importUIDs: [1001, 1002])
        defer { try? FileManager.default.removeItem(atPath: gateway.directory) }
        let service = gateway.service
        let previous = try service.reserveCustomName(system: "cluster", tag: "race:1", caller: 1001, source: "/a")
        #expect(previous == nil)
        // Another user, and the same user a second time, while it runs.
        #expect(throws: GatewayError.forbidden("import custom:race:1: the name is taken by another user's image; choose another")) {
            _ = try service.reserveCustomName(system: "cluster", tag: "race:1", caller: 1002, source: "/b")
        }
        #expect(throws: GatewayError.conflict("import custom:race:1: an import of this name is running; try again when it has finished")) {
            _ = try service.reserveCustomName(system: "cluster", tag: "race:1", caller: 1001, source: "/a")
        }
        // The store's guard lets the holder's tag through, and nobody else's.
        try service.confirmCustomName(system: "cluster", tag: "race:1", caller: 1001)
        #expect(throws: ImageImportError.self) { try service.confirmCustomName(system: "cluster", tag: "race:1", caller: 1002) }
        // A failed first import frees the name.
        service.releaseCustomName(system: "cluster", tag: "race:1", caller: 1001, previous: nil)
        #expect(try service.state.rows(system: "cluster", itype: "custom", tag: "race:1").isEmpty)
        #expect(try service.reserveCustomName(system: "cluster", tag: "race:1", caller: 1002, source: "/b") == nil)
    }

    /// A name records of two users hold (an earlier gateway's doing) resolves for nobody: the
    /// gateway answers 409 and, once it has started again, the store's tag is gone.
    @Test func aContestedNameResolvesForNobody() throws {
        let gateway = try TestGateway(importUIDs: [1001, 1002])
        defer { try? FileManager.default.removeItem(atPath: gateway.directory) }
        let digest = "sha256:" + String(repeating: "c", count: 64)
        for (owner, scope) in [(UInt32(1001), "uid:1001"), (UInt32(1002), "")] {
            var record = ImageRow(system: "cluster", itype: "custom", tag: "legacy:1", scope: scope, ownerUID: owner, digest: digest, status: .ready)
            record.userACL = scope.isEmpty ? [] : [owner]
            try gateway.service.state.save(record)
        }
        let tags = gateway.directory + "/images/tags"
        try FileManager.default.createDirectory(atPath: tags, withIntermediateDirectories: true)
        let tagFile = tags + "/custom%3Alegacy%3A1"
        #expect(FileManager.default.createFile(atPath: tagFile, contents: Data((digest + "\n").utf8)))
        #expect(throws: GatewayError.self) {
            _ = try gateway.service.lookup(system: "cluster", type: "custom", tag: "legacy:1", caller: TestGateway.alice)
        }
        gateway.service.tidyStores()
        #expect(!FileManager.default.fileExists(atPath: tagFile))
    }

    /// A gateway that stopped during an import fails the record at the next start (there is no
    /// file to read again without the caller), and the name stays its owner's.
    @Test func anImportCutByARestartFailsAndKeepsItsOwner() throws {
        let gateway = try TestGateway(importUIDs: [1001, 1002])
        defer { try? FileManager.default.removeItem(atPath: gateway.directory) }
        _ = try gateway.service.reserveCustomName(system: "cluster", tag: "cut:1", caller: 1001, source: "/a")
        let restarted = try TestGateway(directory: gateway.directory, importUIDs: [1001, 1002])
        let outcome = try restarted.service.resumeInterruptedPulls()
        #expect(outcome.resumed == 0 && outcome.failed == 1)
        let rows = try restarted.service.state.rows(system: "cluster", itype: "custom", tag: "cut:1")
        #expect(rows.map(\.status) == [.failure])
        #expect(rows.first?.statusMessage == "the gateway stopped during the import; import the file again")
        #expect(throws: GatewayError.self) {
            _ = try restarted.service.reserveCustomName(system: "cluster", tag: "cut:1", caller: 1002, source: "/b")
        }
    }
}
