import ShifterCore
import ShifterGatewayClient
import ShifterImage

/// Who a `custom:` name belongs to, and the records an import of it goes through.
///
/// The store's tag of `custom:NAME` is one for every user, and both the runtime (through the tag)
/// and the gateway (through its record) resolve the name to one image, so a name has one owner:
/// the user whose import took it first, for as long as any record of the name is not EXPIRED
/// (expiring the image frees it). Every import, whatever its kind and whoever makes it, an
/// administrator's included, follows the same steps:
///
/// 1. `claim`: in one transaction over every record of the name, the name is refused if another
///    user's record holds it, or if an import of it is running; otherwise the importer's record
///    becomes a reservation (CONVERSION), so no other import can take the name meanwhile;
/// 2. just before the store's tag is written, under the image's conversion lock, `isStillHeld`
///    checks the reservation again (an administrator may have expired it, and another user taken
///    the name since); the tag is written only if it holds;
/// 3. the record is made READY with the image, or, when the import failed, put back as it was.
///
/// A `custom:` name has one record (scope `""`) whatever its access list; records of older
/// gateways under a private scope still hold their names, and are folded into that one record
/// when their owner imports the name again.
enum CustomImageNames {
    /// What an import of a name may do.
    enum Claim: Equatable {
        /// The name is free or the caller's: `previous` is the caller's record, to put back if the
        /// import fails.
        case granted(previous: ImageRow?)
        /// Another user's image holds the name.
        case taken
        /// An import of the name is running.
        case busy
    }

    /// The decision for `caller` importing a name whose records are `rows`.
    static func claim(_ rows: [ImageRow], caller: UInt32) -> Claim {
        let live = rows.filter { $0.status != .expired }
        if live.contains(where: { $0.ownerUID != caller }) { return .taken }
        if live.contains(where: { $0.status.isInProgress }) { return .busy }
        return .granted(previous: live.first { $0.scope.isEmpty && $0.ownerUID == caller })
    }

    /// Whether the reservation of `caller` still holds the name: the caller's record is the running
    /// import, and no other user's record is live.
    static func isStillHeld(_ rows: [ImageRow], caller: UInt32) -> Bool {
        let live = rows.filter { $0.status != .expired }
        guard let reservation = live.first(where: { $0.scope.isEmpty }) else { return false }
        return reservation.ownerUID == caller && reservation.status == .conversion && live.allSatisfy { $0.ownerUID == caller }
    }

    /// The names on which records of more than one user are live: left by gateways before names
    /// had owners. Nobody may use such a name until an administrator expires all but one.
    static func contested(_ rows: [ImageRow]) -> Set<String> {
        var owners: [String: Set<UInt32>] = [:]
        for row in rows where row.itype == ImageType.custom.rawValue && row.status != .expired {
            owners[row.tag, default: []].insert(row.ownerUID)
        }
        return Set(owners.filter { $0.value.count > 1 }.keys)
    }

    /// The reservation `caller` writes for an import of `tag` from `source`, visible to the users
    /// and groups the import is for. It keeps the image the record had, so a lookup during the
    /// import still finds what the store's tag names.
    static func reservation(
        previous: ImageRow?, system: String, tag: String, caller: UInt32, source: String, userACL: [UInt32], groupACL: [UInt32], now: Double
    ) -> ImageRow {
        var row = previous ?? ImageRow(system: system, itype: ImageType.custom.rawValue, tag: tag, scope: "", ownerUID: caller, digest: nil, status: .conversion)
        row.ownerUID = caller
        // The narrower of the old and the new access lists while the import runs: a private
        // import's name and source are never shown to others, and a public image made private
        // stays visible to its users until the import ends.
        if !(userACL.isEmpty && groupACL.isEmpty) || previous == nil {
            row.userACL = userACL
            row.groupACL = groupACL
        }
        row.status = .conversion
        row.statusMessage = "importing from \(source)"
        row.needsCredentials = false
        row.lastPull = now
        row.queuedAt = now
        return row
    }
}

extension GatewayService {
    /// Reserves `custom:tag` on `system` for `caller` (step 1 of `CustomImageNames`); returns the
    /// caller's record as it was.
    func reserveCustomName(
        system: String, tag: String, caller: UInt32, source: String, userACL: [UInt32] = [], groupACL: [UInt32] = []
    ) throws(GatewayError) -> ImageRow? {
        let now = clock()
        return try state.updateTag(system: system, itype: ImageType.custom.rawValue, tag: tag) {
            (rows: [ImageRow]) throws(GatewayError) -> (save: [ImageRow], removeScopes: [String], value: ImageRow?) in
            switch CustomImageNames.claim(rows, caller: caller) {
            case .taken:
                throw .forbidden("import custom:\(tag): the name is taken by another user's image; choose another")
            case .busy:
                throw .conflict("import custom:\(tag): an import of this name is running; try again when it has finished")
            case .granted(let previous):
                let reservation = CustomImageNames.reservation(
                    previous: previous, system: system, tag: tag, caller: caller, source: source, userACL: userACL, groupACL: groupACL,
                    now: now)
                return ([reservation], [], previous)
            }
        }
    }

    /// Step 2 of `CustomImageNames`, as the store's `nameGuard`: refuses the tag unless the
    /// caller's reservation of the name still holds.
    func confirmCustomName(system: String, tag: String, caller: UInt32) throws(ImageImportError) {
        let held: Bool
        do {
            held = CustomImageNames.isStillHeld(try state.rows(system: system, itype: ImageType.custom.rawValue, tag: tag), caller: caller)
        } catch {
            throw ImageImportError(.store, "import custom:\(tag): the gateway's records cannot be read: \(error.message)")
        }
        guard held else {
            throw ImageImportError(.nameTaken, "import custom:\(tag): the name was expired and taken by another import meanwhile; choose another")
        }
    }

    /// Step 3 of `CustomImageNames` after a successful import: the one record of the name, READY,
    /// with the image and its access list; the caller's records under older scopes are folded in.
    func finishCustomImport(
        system: String, tag: String, caller: UInt32, metadata: ImageMetadata, userACL: [UInt32], groupACL: [UInt32], source: String
    ) throws(GatewayError) -> ImageRow {
        let now = clock()
        return try state.updateTag(system: system, itype: ImageType.custom.rawValue, tag: tag) {
            (rows: [ImageRow]) throws(GatewayError) -> (save: [ImageRow], removeScopes: [String], value: ImageRow) in
            // The tag was written while the reservation held; should it have been lost since (an
            // administrator expired it after a restart of another gateway sharing the database),
            // the record that holds the name now is not overwritten.
            guard CustomImageNames.isStillHeld(rows, caller: caller) else {
                throw .conflict("import custom:\(tag): the name was expired and taken by another import meanwhile; choose another")
            }
            var row = ImageRow(
                system: system, itype: ImageType.custom.rawValue, tag: tag, scope: "", ownerUID: caller, digest: metadata.digest,
                status: .ready)
            row.userACL = userACL
            row.groupACL = groupACL
            row.metadata = metadata
            row.lastPull = now
            row.lastLookup = rows.first { $0.scope.isEmpty }?.lastLookup
            row.statusMessage = "imported from \(source)"
            let older = rows.filter { !$0.scope.isEmpty && $0.ownerUID == caller }.map(\.scope)
            return ([row], older, row)
        }
    }

    /// Step 3 of `CustomImageNames` after a failed import: the caller's record as it was before,
    /// or none, so a name that was never imported is free again.
    func releaseCustomName(system: String, tag: String, caller: UInt32, previous: ImageRow?) {
        do throws(GatewayError) {
            try state.updateTag(system: system, itype: ImageType.custom.rawValue, tag: tag) {
                (rows: [ImageRow]) throws(GatewayError) -> (save: [ImageRow], removeScopes: [String], value: Void) in
                guard let current = rows.first(where: { $0.scope.isEmpty }), current.ownerUID == caller, current.status == .conversion
                else { return ([], [], ()) }
                if let previous { return ([previous], [], ()) }
                return ([], [""], ())
            }
        } catch {
            logger.error("cannot release an import's reservation", metadata: ["image": "\(system)/custom:\(tag)", "error": "\(error)"])
        }
    }
}
