import Synchronization
import Logging
import ShifterCore
import ShifterGatewayClient
import ShifterImage

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The image gateway's behaviour, without HTTP: each public method serves one endpoint of SPEC
/// section 7 for an authenticated caller and returns its record or throws a `GatewayError` that
/// carries the HTTP status.
public final class GatewayService: Sendable {
    /// The configuration.
    public let config: GatewayConfig
    /// The metrics `/metrics` shows.
    public let metrics: GatewayMetrics
    let state: GatewayStateStore
    let scheduler: PullScheduler
    let logger: Logger
    let clock: @Sendable () -> Double
    /// Archive imports converting now; at most `config.workers` at once, as for pulls.
    let archiveImports = Mutex(0)
    /// Archive imports running now, by the caller's uid; at most `config.archiveImportsPerUser` each.
    let archiveImportsByUser = ArchiveImportsByUser()
    /// The signature policy in force: the configuration's, until a reload replaces it.
    private let policy: Mutex<SignaturePolicy?>

    /// The signature policy in force (`signaturePolicy`, reloaded on SIGHUP).
    public var signaturePolicy: SignaturePolicy? { policy.withLock { $0 } }

    /// Puts `policy` in force for the pulls, imports and reverify runs that start from now.
    public func replaceSignaturePolicy(_ policy: SignaturePolicy?) {
        self.policy.withLock { $0 = policy }
    }

    /// A service over the database at `config.database`.
    public convenience init(config: GatewayConfig, puller: any ImagePulling = RegistryImagePuller(), logger: Logger) throws(GatewayError) {
        try self.init(config: config, database: SQLiteDatabase(path: config.database), puller: puller, logger: logger)
    }

    init(
        config: GatewayConfig, database: SQLiteDatabase, puller: any ImagePulling, logger: Logger,
        clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) throws(GatewayError) {
        self.config = config
        self.policy = Mutex(config.signaturePolicy)
        self.metrics = GatewayMetrics()
        self.state = try GatewayStateStore(database: database)
        self.logger = logger
        self.clock = clock
        self.scheduler = PullScheduler(workers: config.workers, store: state, puller: puller, metrics: metrics, logger: logger)
    }

    // MARK: - Start and stop

    /// Deals with pulls that were queued or running when the gateway last stopped: those without
    /// registry credentials are queued again; those with credentials (which are never stored) fail
    /// with a reason. No record stays PULLING. Returns how many were resumed and failed.
    @discardableResult
    public func resumeInterruptedPulls() throws(GatewayError) -> (resumed: Int, failed: Int) {
        var resumed = 0
        var failed = 0
        for row in try state.rows(statuses: [.pending, .pulling, .conversion]) {
            let key = PullKey(system: row.system, itype: row.itype, tag: row.tag, scope: row.scope)
            if row.itype == ImageType.custom.rawValue {
                // An import reads a file the caller named, with the caller's rights: nothing to
                // resume without them. The record stays the owner's, so the name stays theirs.
                try fail(row, "the gateway stopped during the import; import the file again")
                failed += 1
                continue
            }
            if row.needsCredentials {
                try fail(row, "the gateway stopped during the pull and does not keep registry credentials; pull again")
                failed += 1
                continue
            }
            let job: PullJob
            do throws(GatewayError) {
                guard let system = config.systems[row.system] else {
                    throw .badRequest("system \(quoted(row.system)) is no longer configured")
                }
                let reference = try dockerReference(row.tag)
                job = try pullJob(reference, system: system, userACL: row.userACL, groupACL: row.groupACL, credentials: nil, caller: nil)
            } catch {
                try fail(row, "the pull cannot be resumed after a gateway restart: \(error.message)")
                failed += 1
                continue
            }
            var pending = row
            pending.status = .pending
            pending.statusMessage = "queued again after a gateway restart"
            try state.save(pending)
            scheduler.enqueue(key, job)
            resumed += 1
        }
        if resumed + failed > 0 {
            logger.notice("interrupted pulls", metadata: ["resumed": "\(resumed)", "failed": "\(failed)"])
        }
        return (resumed, failed)
    }

    /// Puts each system's store in order before requests come: what imports killed with the last
    /// gateway left in staging goes, and private images of a store written by an older version get
    /// their access list in a file of their own and a record only root reads. A store that cannot
    /// be tidied is logged and served as it is.
    public func tidyStores() {
        var seen: Set<String> = []
        for system in config.systems.values.sorted(by: { $0.name < $1.name }) where seen.insert(system.imagePath).inserted {
            let store = ImageStore(directory: system.imagePath)
            store.removeAbandonedStaging(atStart: true)
            do throws(ImageImportError) {
                let closed = try store.closePrivateRecords()
                if !closed.isEmpty {
                    logger.notice("private image records closed", metadata: ["store": "\(system.imagePath)", "images": "\(closed.count)"])
                }
            } catch {
                logger.error("cannot close private image records", metadata: ["store": "\(system.imagePath)", "error": "\(error)"])
            }
        }
        // Names that records of several users hold (left by earlier versions): neither the
        // gateway nor the store's tag names an image for them until an administrator expires all
        // but one, so no job runs one user's image under a name another user chose.
        for system in config.systems.values.sorted(by: { $0.name < $1.name }) {
            let contested: Set<String>
            do {
                contested = CustomImageNames.contested(try state.rows(system: system.name))
            } catch {
                logger.error("cannot read the image records", metadata: ["system": "\(system.name)", "error": "\(error)"])
                continue
            }
            let store = ImageStore(directory: system.imagePath)
            for tag in contested.sorted() {
                if let reference = try? ImageReference.parse("custom:" + tag), let tagFile = store.layout.tagFile(for: reference) {
                    try? FileManager.default.removeItem(atPath: tagFile)
                }
                logger.error(
                    "custom image name held by several users; expire all but one of its images",
                    metadata: ["image": "\(system.name)/custom:\(tag)"])
            }
        }
    }

    /// Stops starting pulls. Pulls still queued or running stay PENDING in the database and are
    /// resumed (or failed, if they had credentials) at the next start.
    public func stop() {
        let interrupted = scheduler.stop()
        for key in interrupted {
            do throws(GatewayError) {
                try state.setStatus(
                    system: key.system, itype: key.itype, tag: key.tag, scope: key.scope, status: .pending,
                    message: "interrupted by a gateway shutdown; resumes when the gateway starts")
            } catch {
                logger.error("cannot save an interrupted pull", metadata: ["image": "\(key)", "error": "\(error)"])
            }
        }
        if !interrupted.isEmpty {
            logger.notice("stopped with pulls in progress", metadata: ["pulls": "\(interrupted.count)"])
        }
    }

    /// Whether no pull is queued or running.
    public var isIdle: Bool { scheduler.isIdle }

    /// The Prometheus text of `/metrics`.
    public func prometheusText() -> String {
        metrics.render(queueLength: scheduler.waitingCount, running: scheduler.runningCount)
    }

    // MARK: - Endpoints

    /// `GET /api/list/SYSTEM/`: the READY images the caller may use.
    public func list(system: String, caller: AuthenticatedCaller) throws(GatewayError) -> [GatewayImageRecord] {
        _ = try systemConfig(named: system)
        return try state.rows(system: system).filter { $0.status == .ready && $0.isVisible(to: caller, admins: config.adminUIDs) }
            .map(\.record)
    }

    /// `GET /api/queue/SYSTEM/`: the pulls queued or running that the caller may see, with progress.
    public func queue(system: String, caller: AuthenticatedCaller) throws(GatewayError) -> [GatewayImageRecord] {
        _ = try systemConfig(named: system)
        return try state.rows(statuses: [.pending, .pulling, .conversion]).filter {
            $0.system == system && $0.isVisible(to: caller, admins: config.adminUIDs)
        }.map(recordWithProgress)
    }

    /// `GET /api/lookup/SYSTEM/TYPE/TAG/`: the record the caller sees for a tag. An image the caller
    /// may not see answers exactly as a missing one does.
    public func lookup(system: String, type: String, tag: String, caller: AuthenticatedCaller) throws(GatewayError) -> GatewayImageRecord {
        _ = try systemConfig(named: system)
        let (itype, canonical) = try normalise(type: type, tag: tag)
        if itype == ImageType.custom.rawValue,
            !CustomImageNames.contested(try state.rows(system: system, itype: itype, tag: canonical)).isEmpty
        {
            throw .conflict("image custom:\(canonical): the name is held by images of several users, from an earlier version of the gateway; an administrator must expire all but one")
        }
        let found = try visibleRow(system: system, itype: itype, tag: canonical, caller: caller)
        metrics.countLookup(found: found != nil)
        guard let row = found else {
            throw .notFound("image \(itype):\(canonical): not found on system \(quoted(system))")
        }
        let now = clock()
        try state.recordLookup(
            LookupRow(time: now, system: system, uid: caller.uid, itype: itype, tag: canonical, digest: row.digest), scope: row.scope,
            history: config.lookupHistory)
        return recordWithProgress(row)
    }

    /// `POST /api/pull/SYSTEM/TYPE/TAG/`: queues a pull unless one of the same record is queued or
    /// running (the caller joins it) or the tag was pulled within the minimum interval.
    public func pull(
        system: String, type: String, tag: String, request: GatewayPullRequest, caller: AuthenticatedCaller
    ) throws(GatewayError) -> GatewayImageRecord {
        let systemConfig = try systemConfig(named: system)
        guard type == ImageType.docker.rawValue else {
            if type == ImageType.custom.rawValue {
                throw .badRequest("image custom:\(tag): custom images are imported with /api/doimport/, not pulled")
            }
            throw .badRequest("image type \(quoted(type)): only docker images can be pulled")
        }
        let reference = try dockerReference(tag)
        let canonical = Self.tagText(reference)
        let credentials = (caller.payload.credentials ?? request.credentials).map {
            RegistryCredentials(username: $0.username, password: $0.password)
        }
        var userACL = request.allowedUIDs ?? []
        var groupACL = request.allowedGIDs ?? []
        if credentials != nil && userACL.isEmpty && groupACL.isEmpty {
            // An image pulled with someone's registry credentials is theirs unless they share it.
            userACL = [caller.uid]
        }
        let isPrivate = !userACL.isEmpty || !groupACL.isEmpty
        if isPrivate && !userACL.contains(caller.uid) && caller.uid != 0 { userACL.append(caller.uid) }
        userACL = Array(Set(userACL)).sorted()
        groupACL = Array(Set(groupACL)).sorted()
        let job = try pullJob(reference, system: systemConfig, userACL: userACL, groupACL: groupACL, credentials: credentials, caller: caller)
        let scope = isPrivate ? ImageRow.privateScope(caller.uid) : ""
        let key = PullKey(system: system, itype: "docker", tag: canonical, scope: scope)
        let now = clock()
        let minimumInterval = config.minPullInterval
        enum Decision { case joined, skipped, queued }
        let (row, decision) = try state.update(system: system, itype: "docker", tag: canonical, scope: scope) {
            (current: ImageRow?) throws(GatewayError) -> (ImageRow?, (ImageRow, Decision)) in
            if let current, current.status.isInProgress {
                return (nil, (current, .joined))
            }
            if let current, current.status == .ready, let last = current.lastPull, now - last < minimumInterval,
                current.userACL == userACL, current.groupACL == groupACL
            {
                return (nil, (current, .skipped))
            }
            var next =
                current
                ?? ImageRow(system: system, itype: "docker", tag: canonical, scope: scope, ownerUID: caller.uid, digest: nil, status: .pending)
            next.ownerUID = caller.uid
            next.status = .pending
            next.statusMessage = "queued"
            next.userACL = userACL
            next.groupACL = groupACL
            next.needsCredentials = credentials != nil
            next.lastPull = now
            next.queuedAt = now
            return (next, (next, .queued))
        }
        switch decision {
        case .joined:
            metrics.countPull(.joined)
        case .skipped:
            metrics.countPull(.skipped)
        case .queued:
            logger.info("pull queued", metadata: ["image": "\(key)", "uid": "\(caller.uid)", "private": "\(isPrivate)"])
            scheduler.enqueue(key, job)
        }
        return recordWithProgress(row)
    }

    /// `GET /api/expire/SYSTEM/TYPE/TAG/`: removes one image, for an administrator or the owner of a
    /// private image. An image looked up within the job time limit may still be in use: 409.
    public func expire(system: String, type: String, tag: String, caller: AuthenticatedCaller) throws(GatewayError) -> GatewayExpiryResult {
        _ = try systemConfig(named: system)
        let (itype, canonical) = try normalise(type: type, tag: tag)
        let isAdmin = config.adminUIDs.contains(caller.uid)
        // The caller's own private record first: that is what an owner means to remove.
        let rows = try state.rows(system: system, itype: itype, tag: canonical).filter { $0.isVisible(to: caller, admins: config.adminUIDs) }
        guard let row = rows.first(where: { $0.scope == ImageRow.privateScope(caller.uid) }) ?? rows.first(where: { !$0.isPrivate }) ?? rows.first
        else {
            throw .notFound("image \(itype):\(canonical): not found on system \(quoted(system))")
        }
        guard isAdmin || (row.isPrivate && row.ownerUID == caller.uid) else {
            throw .forbidden("expire \(itype):\(canonical): only administrators, or the owner of a private image, may expire it")
        }
        guard !row.status.isInProgress else {
            throw .conflict("expire \(itype):\(canonical): a pull of it is \(row.status.rawValue); try again when it has finished")
        }
        guard row.status != .expired else { return GatewayExpiryResult(expired: [], kept: ["\(canonical): already expired"]) }
        if let reason = try inUseReason(row) {
            throw .conflict("expire \(itype):\(canonical): \(reason)")
        }
        guard let expired = try expireRow(row, reason: "expired by uid \(caller.uid)") else {
            throw .conflict("expire \(itype):\(canonical): it was pulled or looked up meanwhile; try again")
        }
        return GatewayExpiryResult(expired: [expired])
    }

    /// `GET /api/autoexpire/SYSTEM/`, also run by `AutoexpireTimer`: removes images not used for
    /// `expireAfterSeconds`, except those a job may still use. Administrators only.
    public func autoexpire(system: String, caller: AuthenticatedCaller) throws(GatewayError) -> GatewayExpiryResult {
        _ = try systemConfig(named: system)
        guard config.adminUIDs.contains(caller.uid) else {
            throw .forbidden("autoexpire \(quoted(system)): administrators only")
        }
        let now = clock()
        var result = GatewayExpiryResult(expired: [])
        for row in try state.rows(system: system) where row.status == .ready {
            let lastUsed = max(row.lastLookup ?? 0, row.lastPull ?? 0)
            guard now - lastUsed >= config.expireAfter else { continue }
            if let reason = try inUseReason(row) {
                result.kept.append("\(row.tag): \(reason)")
                continue
            }
            guard let expired = try expireRow(row, reason: "not used for \(Int(now - lastUsed)) seconds") else {
                result.kept.append("\(row.tag): pulled or looked up meanwhile")
                continue
            }
            result.expired.append(expired)
        }
        logger.info("autoexpire", metadata: ["system": "\(system)", "expired": "\(result.expired.count)", "kept": "\(result.kept.count)"])
        return result
    }

    /// `GET /api/metrics/SYSTEM/`: the newest lookups. Administrators only.
    public func lookupMetrics(system: String, caller: AuthenticatedCaller, limit: Int = 1000) throws(GatewayError) -> [GatewayLookupEvent] {
        _ = try systemConfig(named: system)
        guard config.adminUIDs.contains(caller.uid) else {
            throw .forbidden("metrics \(quoted(system)): administrators only")
        }
        return try state.lookups(system: system, limit: limit).map {
            GatewayLookupEvent(time: $0.time, uid: $0.uid, itype: $0.itype, tag: $0.tag, id: $0.digest)
        }
    }

    // MARK: - Helpers

    func systemConfig(named name: String) throws(GatewayError) -> SystemConfig {
        guard let system = config.systems[name] else {
            throw .badRequest("system \(quoted(name)): not served by this gateway")
        }
        return system
    }

    /// The systems whose image store is `imagePath`, which share its files.
    private func systems(sharing imagePath: String) -> [String] {
        config.systems.values.filter { $0.imagePath == imagePath }.map(\.name)
    }

    /// Parses a docker tag from a path, giving it the default registry when it names none.
    func dockerReference(_ tag: String) throws(GatewayError) -> ImageReference {
        let firstPart = tag.split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        let namesRegistry = tag.contains("/") && (firstPart.contains(".") || firstPart.contains(":") || firstPart == "localhost")
        let text = namesRegistry ? tag : config.defaultRegistry + "/" + tag
        do throws(ImageReferenceError) {
            let reference = try ImageReference.parse(text, defaultType: .docker)
            guard reference.type == .docker else { throw ImageReferenceError(input: tag, reason: "not a docker image") }
            return reference
        } catch {
            throw .badRequest("image docker:\(tag): \(error.reason)")
        }
    }

    /// The TYPE and canonical TAG of a lookup or expiry path.
    private func normalise(type: String, tag: String) throws(GatewayError) -> (String, String) {
        switch type {
        case ImageType.docker.rawValue:
            return ("docker", Self.tagText(try dockerReference(tag)))
        case ImageType.custom.rawValue:
            do {
                return ("custom", Self.tagText(try ImageReference.parse("custom:" + tag)))
            } catch {
                throw .badRequest("image custom:\(tag): \(error.reason)")
            }
        default:
            throw .badRequest("image type \(quoted(type)): the gateway knows docker and custom images")
        }
    }

    /// The reference without its type prefix, as records store it.
    static func tagText(_ reference: ImageReference) -> String {
        GatewayClient.imageParts(of: reference).tag
    }

    /// The record the caller sees for a tag: READY before others, then their own, then private.
    private func visibleRow(system: String, itype: String, tag: String, caller: AuthenticatedCaller) throws(GatewayError) -> ImageRow? {
        let rows = try state.rows(system: system, itype: itype, tag: tag).filter {
            $0.status != .expired && $0.isVisible(to: caller, admins: config.adminUIDs)
        }
        return rows.max { left, right in
            func rank(_ row: ImageRow) -> (Int, Int, Int, Double) {
                (row.status == .ready ? 1 : 0, row.ownerUID == caller.uid && row.isPrivate ? 1 : 0, row.isPrivate ? 1 : 0, row.lastPull ?? 0)
            }
            return rank(left) < rank(right)
        }
    }

    private func recordWithProgress(_ row: ImageRow) -> GatewayImageRecord {
        var record = row.record
        if row.status.isInProgress, let progress = scheduler.progress(PullKey(system: row.system, itype: row.itype, tag: row.tag, scope: row.scope)) {
            record.bytesReceived = progress.received
            record.bytesTotal = progress.total
        }
        return record
    }

    private func pullJob(
        _ reference: ImageReference, system: SystemConfig, userACL: [UInt32], groupACL: [UInt32], credentials: RegistryCredentials?,
        caller: AuthenticatedCaller?
    ) throws(GatewayError) -> PullJob {
        let host = reference.registry ?? ImageReference.dockerHubRegistry
        guard let registry = config.registry(for: host) else {
            throw .badRequest("image \(reference.canonical): registry \(quoted(host)) is not configured at this gateway")
        }
        var effective = credentials
        switch registry.auth {
        case .anonymous:
            if credentials != nil {
                throw .badRequest("image \(reference.canonical): registry \(quoted(host)) is configured for anonymous pulls only")
            }
        case .user:
            break
        case .site:
            effective = try siteCredentials(registry)
        }
        let platform: ImagePlatform
        do {
            platform = try ImagePlatform.parse(config.platform)
        } catch {
            throw .internal("configuration: platform \(quoted(config.platform)): \(error.message)")
        }
        let metrics = self.metrics
        return PullJob(
            reference: reference, imagePath: system.imagePath, userACL: userACL, groupACL: groupACL, credentials: effective,
            transport: TransportOptions(caBundle: registry.caBundle), platform: platform, importLimits: config.importLimits,
            signaturePolicy: signaturePolicy, onSignatureRefusal: { metrics.countSignatureRefusal($0) })
    }

    func siteCredentials(_ registry: RegistryConfig) throws(GatewayError) -> RegistryCredentials {
        guard let username = registry.username, let file = registry.passwordFile,
            let data = FileManager.default.contents(atPath: file)
        else {
            throw .internal("registry \(quoted(registry.host)): the site password file cannot be read")
        }
        let password = String(decoding: data, as: UTF8.self).trimmingNewlines()
        return RegistryCredentials(username: username, password: password)
    }

    /// Why an image may still be in use by a job, or nil: it (its digest, under any tag of the
    /// systems sharing its store) was looked up within the job time limit.
    private func inUseReason(_ row: ImageRow) throws(GatewayError) -> String? {
        guard let digest = row.digest, let system = config.systems[row.system] else { return nil }
        let now = clock()
        let looked = max(row.lastLookup ?? 0, try state.lastLookup(digest: digest, systems: systems(sharing: system.imagePath)) ?? 0)
        guard looked > 0, now - looked < config.jobTimeLimit else { return nil }
        return "looked up \(Int(now - looked)) seconds ago, within the job time limit of \(Int(config.jobTimeLimit)) seconds; a job may still use it"
    }

    /// Marks a record EXPIRED and removes the image from the store unless another READY record of
    /// a system sharing the store still uses it. Returns nil, and changes nothing, when the record
    /// was pulled or looked up since `row` was read: autoexpire runs beside requests, and a request
    /// that wants the image wins.
    func expireRow(_ row: ImageRow, reason: String) throws(GatewayError) -> GatewayImageRecord? {
        let marked = try state.update(system: row.system, itype: row.itype, tag: row.tag, scope: row.scope) {
            (current: ImageRow?) throws(GatewayError) -> (ImageRow?, ImageRow?) in
            guard var expired = current, expired.status == row.status, expired.digest == row.digest, expired.lastPull == row.lastPull,
                expired.lastLookup == row.lastLookup
            else { return (nil, nil) }
            expired.status = .expired
            expired.statusMessage = reason
            return (expired, expired)
        }
        guard let expired = marked else { return nil }
        guard let digest = row.digest, let id = ImageID(digest), let system = config.systems[row.system] else { return expired.record }
        let sharing = systems(sharing: system.imagePath)
        let store = ImageStore(directory: system.imagePath)
        let others = try state.readyRows(digest: digest, systems: sharing)
        do throws(ImageImportError) {
            if others.isEmpty {
                if store.contains(id) { try store.remove(id) }
            } else if !others.contains(where: { $0.itype == row.itype && $0.tag == row.tag }),
                let reference = try? ImageReference.parse(row.itype + ":" + row.tag), let tagFile = store.layout.tagFile(for: reference),
                let text = FileManager.default.contents(atPath: tagFile).map({ String(decoding: $0, as: UTF8.self) }),
                ImageStoreLayout.digest(fromTagFile: text) == digest
            {
                try? FileManager.default.removeItem(atPath: tagFile)
            }
        } catch {
            throw .internal("expire \(row.itype):\(row.tag): \(error.message)")
        }
        logger.info("image expired", metadata: ["image": "\(row.system)/\(row.itype):\(row.tag)", "id": "\(digest)", "reason": "\(reason)"])
        return expired.record
    }

    private func fail(_ row: ImageRow, _ message: String) throws(GatewayError) {
        var failed = row
        failed.status = .failure
        failed.statusMessage = message
        failed.needsCredentials = false
        try state.save(failed)
    }
}
