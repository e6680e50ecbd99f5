import ShifterCore
import ShifterGatewayClient
import ShifterImage

/// One tag record of the gateway: which image a tag of a system points to, and where its last
/// pull stands. A tag has one public record and at most one private record per owner (`scope`).
struct ImageRow: Sendable, Equatable {
    /// The system.
    var system: String
    /// `docker` or `custom`.
    var itype: String
    /// The canonical reference without its type.
    var tag: String
    /// `""` for the public record, `uid:N` for the private record that user N pulled.
    var scope: String
    /// Who started the last pull or import.
    var ownerUID: UInt32
    /// The image id, once resolved.
    var digest: String?
    /// Where the record stands.
    var status: GatewayImageStatus
    /// Why the last pull failed, or what is happening.
    var statusMessage: String = ""
    /// Users allowed to see and use a private image.
    var userACL: [UInt32] = []
    /// Groups allowed to see and use a private image.
    var groupACL: [UInt32] = []
    /// The image's `.meta.json` record, once READY.
    var metadata: ImageMetadata?
    /// Whether the running pull has registry credentials, which are kept in memory only.
    var needsCredentials = false
    /// When the last pull was requested.
    var lastPull: Double?
    /// When the image was last looked up.
    var lastLookup: Double?
    /// When the pending pull was queued, for queue order.
    var queuedAt: Double?

    /// Whether the record is private: pulled privately, or with an access list (a `custom:`
    /// image has one record whatever its access list, see `CustomImageNames`).
    var isPrivate: Bool { !scope.isEmpty || !userACL.isEmpty || !groupACL.isEmpty }

    /// The scope of a private record pulled by `uid`.
    static func privateScope(_ uid: UInt32) -> String { "uid:\(uid)" }

    /// Whether `caller` may see the record: public, theirs, or in its ACL. Administrators see all.
    func isVisible(to caller: AuthenticatedCaller, admins: Set<UInt32>) -> Bool {
        if !isPrivate || admins.contains(caller.uid) || ownerUID == caller.uid { return true }
        if userACL.contains(caller.uid) { return true }
        return caller.groups.contains { groupACL.contains($0) }
    }

    /// The REST form.
    var record: GatewayImageRecord {
        var record = GatewayImageRecord(
            id: digest, system: system, itype: itype, tag: tag, status: status, userACL: userACL, groupACL: groupACL,
            env: metadata?.env ?? [], entry: metadata?.entrypoint, cmd: metadata?.cmd, workdir: metadata?.workdir, user: metadata?.user,
            labels: metadata?.labels ?? [:], lastPull: lastPull, statusMessage: statusMessage)
        record.signedBy = metadata?.signedBy
        record.signedIdentity = metadata?.signedIdentity
        return record
    }
}

/// One lookup, kept for `/api/metrics/` and for deciding whether a job may still use an image.
struct LookupRow: Sendable, Equatable {
    var time: Double
    var system: String
    var uid: UInt32
    var itype: String
    var tag: String
    var digest: String?
}

/// The gateway's state in SQLite: tag records (which are also the pull queue) and lookups.
/// Everything survives a restart.
final class GatewayStateStore: Sendable {
    private let database: SQLiteDatabase

    /// The schema version this code writes, kept in `PRAGMA user_version`.
    static let schemaVersion: Int64 = 1

    private static let columns =
        "system, itype, tag, scope, owner_uid, digest, status, status_message, user_acl, group_acl, metadata, needs_credentials, last_pull, last_lookup, queued_at"

    /// Opens the state in `database`, creating the tables on first use.
    init(database: SQLiteDatabase) throws(GatewayError) {
        self.database = database
        let version = try database.query("PRAGMA user_version").first?.first?.integer ?? 0
        guard version <= Self.schemaVersion else {
            throw .internal("database \(quoted(database.path)): schema version \(version) is newer than this gateway's \(Self.schemaVersion)")
        }
        try database.execute(
            """
            CREATE TABLE IF NOT EXISTS images (
                system TEXT NOT NULL, itype TEXT NOT NULL, tag TEXT NOT NULL, scope TEXT NOT NULL,
                owner_uid INTEGER NOT NULL, digest TEXT, status TEXT NOT NULL, status_message TEXT NOT NULL DEFAULT '',
                user_acl TEXT NOT NULL DEFAULT '[]', group_acl TEXT NOT NULL DEFAULT '[]', metadata TEXT,
                needs_credentials INTEGER NOT NULL DEFAULT 0, last_pull REAL, last_lookup REAL, queued_at REAL,
                PRIMARY KEY (system, itype, tag, scope))
            """)
        try database.execute("CREATE INDEX IF NOT EXISTS images_by_digest ON images (digest)")
        try database.execute("CREATE INDEX IF NOT EXISTS images_by_status ON images (status)")
        try database.execute(
            "CREATE TABLE IF NOT EXISTS lookups (time REAL NOT NULL, system TEXT NOT NULL, uid INTEGER NOT NULL, itype TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT)"
        )
        try database.execute("CREATE INDEX IF NOT EXISTS lookups_by_system ON lookups (system, time)")
        try database.execute("PRAGMA user_version = \(Self.schemaVersion)")
    }

    // MARK: - Tag records

    /// The records of one tag, every scope.
    func rows(system: String, itype: String, tag: String) throws(GatewayError) -> [ImageRow] {
        try select("WHERE system = ? AND itype = ? AND tag = ?", [.text(system), .text(itype), .text(tag)])
    }

    /// One record.
    func row(system: String, itype: String, tag: String, scope: String) throws(GatewayError) -> ImageRow? {
        try select("WHERE system = ? AND itype = ? AND tag = ? AND scope = ?", [.text(system), .text(itype), .text(tag), .text(scope)]).first
    }

    /// Every record of a system, newest pull first.
    func rows(system: String) throws(GatewayError) -> [ImageRow] {
        try select("WHERE system = ? ORDER BY last_pull DESC, tag", [.text(system)])
    }

    /// Every record in one of `statuses`, in queue order.
    func rows(statuses: [GatewayImageStatus]) throws(GatewayError) -> [ImageRow] {
        let marks = statuses.map { _ in "?" }.joined(separator: ", ")
        return try select("WHERE status IN (\(marks)) ORDER BY queued_at, tag", statuses.map { .text($0.rawValue) })
    }

    /// The READY records that use image `digest` on any of `systems`.
    func readyRows(digest: String, systems: [String]) throws(GatewayError) -> [ImageRow] {
        let marks = systems.map { _ in "?" }.joined(separator: ", ")
        return try select(
            "WHERE digest = ? AND status = ? AND system IN (\(marks))",
            [.text(digest), .text(GatewayImageStatus.ready.rawValue)] + systems.map { .text($0) })
    }

    /// Puts signer `signedBy` (and the identity it signed) into the record of `row`'s name, where
    /// that name still holds `row`'s image and its record.
    func recordSigner(_ signedBy: String, identity: String?, on row: ImageRow) throws(GatewayError) {
        try update(system: row.system, itype: row.itype, tag: row.tag, scope: row.scope) {
            (current: ImageRow?) throws(GatewayError) -> (ImageRow?, Void) in
            guard var updated = current, updated.digest == row.digest, updated.metadata != nil else { return (nil, ()) }
            updated.metadata?.signedBy = signedBy
            updated.metadata?.signedIdentity = identity
            return (updated, ())
        }
    }

    /// Inserts or replaces a record.
    func save(_ row: ImageRow) throws(GatewayError) {
        try database.execute(
            "INSERT OR REPLACE INTO images (\(Self.columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", Self.bindings(row))
    }

    /// Reads the record of `key`, lets `change` decide its new state, and writes that, in one
    /// transaction, so two requests cannot both decide to start a pull. `change` returns the row to
    /// write (or nil to leave it) and a result for the caller.
    func update<Value>(
        system: String, itype: String, tag: String, scope: String, _ change: (ImageRow?) throws(GatewayError) -> (ImageRow?, Value)
    ) throws(GatewayError) -> Value {
        try database.transaction { (transaction: SQLiteTransaction) throws(GatewayError) -> Value in
            let current = try transaction.query(
                "SELECT \(Self.columns) FROM images WHERE system = ? AND itype = ? AND tag = ? AND scope = ?",
                [.text(system), .text(itype), .text(tag), .text(scope)]
            ).first.flatMap(Self.decode)
            let (next, value) = try change(current)
            if let next {
                try transaction.execute(
                    "INSERT OR REPLACE INTO images (\(Self.columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", Self.bindings(next))
            }
            return value
        }
    }

    /// Reads every record of one tag (all scopes), lets `change` decide, and writes the records it
    /// returns and removes those of the scopes it names, in one transaction: what `change` saw is
    /// what it changes, whatever other requests do meanwhile.
    func updateTag<Value>(
        system: String, itype: String, tag: String,
        _ change: ([ImageRow]) throws(GatewayError) -> (save: [ImageRow], removeScopes: [String], value: Value)
    ) throws(GatewayError) -> Value {
        try database.transaction { (transaction: SQLiteTransaction) throws(GatewayError) -> Value in
            let current = try transaction.query(
                "SELECT \(Self.columns) FROM images WHERE system = ? AND itype = ? AND tag = ?", [.text(system), .text(itype), .text(tag)]
            ).compactMap(Self.decode)
            let (save, removeScopes, value) = try change(current)
            for scope in removeScopes {
                try transaction.execute(
                    "DELETE FROM images WHERE system = ? AND itype = ? AND tag = ? AND scope = ?",
                    [.text(system), .text(itype), .text(tag), .text(scope)])
            }
            for row in save {
                try transaction.execute(
                    "INSERT OR REPLACE INTO images (\(Self.columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", Self.bindings(row))
            }
            return value
        }
    }

    /// Sets the status and message of a record, if it still exists.
    func setStatus(
        system: String, itype: String, tag: String, scope: String, status: GatewayImageStatus, message: String
    ) throws(GatewayError) {
        try database.execute(
            "UPDATE images SET status = ?, status_message = ? WHERE system = ? AND itype = ? AND tag = ? AND scope = ?",
            [.text(status.rawValue), .text(message), .text(system), .text(itype), .text(tag), .text(scope)])
    }

    // MARK: - Lookups

    /// Records a lookup and stamps the record's `last_lookup`; keeps the newest `history` lookups.
    func recordLookup(_ lookup: LookupRow, scope: String?, history: Int) throws(GatewayError) {
        try database.execute(
            "INSERT INTO lookups (time, system, uid, itype, tag, digest) VALUES (?, ?, ?, ?, ?, ?)",
            [.real(lookup.time), .text(lookup.system), .integer(Int64(lookup.uid)), .text(lookup.itype), .text(lookup.tag),
             lookup.digest.map { .text($0) } ?? .null])
        if let scope {
            try database.execute(
                "UPDATE images SET last_lookup = ? WHERE system = ? AND itype = ? AND tag = ? AND scope = ?",
                [.real(lookup.time), .text(lookup.system), .text(lookup.itype), .text(lookup.tag), .text(scope)])
        }
        try database.execute(
            "DELETE FROM lookups WHERE rowid <= (SELECT MAX(rowid) FROM lookups) - ?", [.integer(Int64(max(0, history)))])
    }

    /// The newest lookups of a system, newest first.
    func lookups(system: String, limit: Int) throws(GatewayError) -> [LookupRow] {
        try database.query(
            "SELECT time, system, uid, itype, tag, digest FROM lookups WHERE system = ? ORDER BY time DESC, rowid DESC LIMIT ?",
            [.text(system), .integer(Int64(limit))]
        ).compactMap { row in
            guard row.count == 6, let time = row[0].real, let system = row[1].text, let uid = row[2].integer.flatMap(UInt32.init(exactly:)),
                let itype = row[3].text, let tag = row[4].text
            else { return nil }
            return LookupRow(time: time, system: system, uid: uid, itype: itype, tag: tag, digest: row[5].text)
        }
    }

    /// The newest lookup of image `digest` on any of `systems`, if any.
    func lastLookup(digest: String, systems: [String]) throws(GatewayError) -> Double? {
        let marks = systems.map { _ in "?" }.joined(separator: ", ")
        return try database.query(
            "SELECT MAX(last_lookup) FROM images WHERE digest = ? AND system IN (\(marks))", [.text(digest)] + systems.map { .text($0) }
        ).first?.first?.real
    }

    // MARK: - Rows

    private func select(_ clause: String, _ bindings: [SQLiteValue]) throws(GatewayError) -> [ImageRow] {
        try database.query("SELECT \(Self.columns) FROM images \(clause)", bindings).compactMap(Self.decode)
    }

    private static func bindings(_ row: ImageRow) -> [SQLiteValue] {
        let metadata = row.metadata.flatMap { try? $0.encoded() }.map { SQLiteValue.text(String(decoding: $0, as: UTF8.self)) } ?? .null
        return [
            .text(row.system), .text(row.itype), .text(row.tag), .text(row.scope), .integer(Int64(row.ownerUID)),
            row.digest.map { .text($0) } ?? .null, .text(row.status.rawValue), .text(row.statusMessage),
            .text(encodeIDs(row.userACL)), .text(encodeIDs(row.groupACL)), metadata, .integer(row.needsCredentials ? 1 : 0),
            row.lastPull.map { .real($0) } ?? .null, row.lastLookup.map { .real($0) } ?? .null, row.queuedAt.map { .real($0) } ?? .null,
        ]
    }

    /// A row of `columns`, or nil for a row this version cannot read (it is skipped, not fatal).
    private static func decode(_ values: [SQLiteValue]) -> ImageRow? {
        guard values.count == 15, let system = values[0].text, let itype = values[1].text, let tag = values[2].text,
            let scope = values[3].text, let owner = values[4].integer.flatMap(UInt32.init(exactly:)),
            let status = values[6].text.flatMap(GatewayImageStatus.init(rawValue:))
        else { return nil }
        return ImageRow(
            system: system, itype: itype, tag: tag, scope: scope, ownerUID: owner, digest: values[5].text, status: status,
            statusMessage: values[7].text ?? "", userACL: decodeIDs(values[8].text), groupACL: decodeIDs(values[9].text),
            metadata: values[10].text.flatMap { try? ImageMetadata.decode(Array($0.utf8)) }, needsCredentials: values[11].integer == 1,
            lastPull: values[12].real, lastLookup: values[13].real, queuedAt: values[14].real)
    }

    private static func encodeIDs(_ ids: [UInt32]) -> String {
        "[" + ids.map(String.init).joined(separator: ",") + "]"
    }

    private static func decodeIDs(_ text: String?) -> [UInt32] {
        guard let text else { return [] }
        return text.trimmingScalars { $0 == "[" || $0 == "]" }.split(separator: ",").compactMap {
            UInt32($0.trimmingWhitespace())
        }
    }
}
