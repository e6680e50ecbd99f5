import Logging
import ShifterCore
import ShifterGatewayClient
import ShifterImage
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The record a pull belongs to.
struct PullKey: Hashable, Sendable, CustomStringConvertible {
    var system: String
    var itype: String
    var tag: String
    var scope: String

    var description: String { "\(system)/\(itype):\(tag)" + (scope.isEmpty ? "" : " (\(scope))") }
}

/// Bytes a running pull has downloaded, for the queue endpoint.
struct PullProgressSnapshot: Sendable, Equatable {
    var layerBytes: [Int: Int64] = [:]
    var total: Int64?
    var received: Int64 { layerBytes.values.reduce(0, +) }
    var stage: GatewayImageStatus = .pulling
}

/// Runs queued pulls, at most `workers` at a time, each on its own thread (the import library
/// blocks), and moves each record through PULLING and CONVERSION to READY or FAILURE.
///
/// The database is the queue: a pull is queued by writing its record PENDING, and only then handed
/// to the scheduler. After a restart, `GatewayService` hands the scheduler the records still
/// pending.
final class PullScheduler: Sendable {
    private struct Queued: Sendable {
        var key: PullKey
        var job: PullJob
    }

    private struct State: Sendable {
        var waiting: [Queued] = []
        var running: [PullKey: PullProgressSnapshot] = [:]
        var stopped = false
    }

    private let state = Mutex(State())
    private let workers: Int
    private let store: GatewayStateStore
    private let puller: any ImagePulling
    private let metrics: GatewayMetrics
    private let logger: Logger

    init(workers: Int, store: GatewayStateStore, puller: any ImagePulling, metrics: GatewayMetrics, logger: Logger) {
        self.workers = max(1, workers)
        self.store = store
        self.puller = puller
        self.metrics = metrics
        self.logger = logger
    }

    /// Queues a pull whose record is already PENDING.
    func enqueue(_ key: PullKey, _ job: PullJob) {
        let accepted = state.withLock { state -> Bool in
            guard !state.stopped, state.running[key] == nil, !state.waiting.contains(where: { $0.key == key }) else { return false }
            state.waiting.append(Queued(key: key, job: job))
            return true
        }
        if accepted { dispatch() }
    }

    /// Pulls waiting for a worker.
    var waitingCount: Int { state.withLock { $0.waiting.count } }

    /// Pulls running now.
    var runningCount: Int { state.withLock { $0.running.count } }

    /// The progress of a running pull.
    func progress(_ key: PullKey) -> PullProgressSnapshot? {
        state.withLock { $0.running[key] }
    }

    /// Whether no pull is waiting or running.
    var isIdle: Bool { state.withLock { $0.waiting.isEmpty && $0.running.isEmpty } }

    /// Stops starting pulls and returns the keys of those waiting or running. Their threads are
    /// not interrupted: the process is about to exit, and the import library cleans up what a dead
    /// process left at the next import.
    func stop() -> [PullKey] {
        state.withLock { state in
            state.stopped = true
            let keys = state.waiting.map(\.key) + state.running.keys
            state.waiting.removeAll()
            return keys
        }
    }

    /// Starts waiting pulls while workers are free.
    private func dispatch() {
        while let next = state.withLock({ state -> Queued? in
            guard !state.stopped, state.running.count < workers, !state.waiting.isEmpty else { return nil }
            let next = state.waiting.removeFirst()
            state.running[next.key] = PullProgressSnapshot()
            return next
        }) {
            do throws(ImageImportError) {
                try DetachedThread.start("pull") { [self] in
                    run(next)
                    state.withLock { _ = $0.running.removeValue(forKey: next.key) }
                    dispatch()
                }
            } catch {
                // The rest stay queued until a running pull ends or another is queued.
                state.withLock { _ = $0.running.removeValue(forKey: next.key) }
                setStatus(next.key, .failure, error.message)
                logger.error("pull not started", metadata: ["image": "\(next.key)", "error": "\(error.message)"])
                return
            }
        }
    }

    private func run(_ queued: Queued) {
        let key = queued.key
        let started = Date()
        var logger = logger
        logger[metadataKey: "image"] = "\(key)"
        logger.info("pull started")
        setStatus(key, .pulling, "resolving \(queued.job.reference.canonical)")
        let result: Result<PulledImage, ImageImportError>
        do throws(ImageImportError) {
            result = .success(
                try puller.pull(queued.job) { [self] event in
                    observe(event, key: key)
                })
        } catch {
            result = .failure(error)
        }
        let seconds = Date().timeIntervalSince(started)
        switch result {
        case .success(let image):
            metrics.recordPull(seconds: seconds, bytes: image.bytesDownloaded)
            metrics.countPull(.ready)
            do throws(GatewayError) {
                try store.update(system: key.system, itype: key.itype, tag: key.tag, scope: key.scope) { current in
                    guard var row = current else { return (nil, ()) }
                    row.status = .ready
                    row.digest = image.metadata.digest
                    row.metadata = image.metadata
                    row.statusMessage = image.alreadyPresent ? "already in the image store" : ""
                    row.needsCredentials = false
                    row.queuedAt = nil
                    return (row, ())
                }
                // The image's record is its content's: other names of it now show the signer
                // the nodes see too.
                if let signer = image.metadata.signedBy {
                    for other in try store.readyRows(digest: image.metadata.digest, systems: [key.system])
                    where other.metadata != nil && other.metadata?.signedBy != signer {
                        try store.recordSigner(signer, identity: image.metadata.signedIdentity, on: other)
                    }
                }
                logger.info(
                    "pull finished",
                    metadata: ["id": "\(image.metadata.digest)", "seconds": "\(Int(seconds))", "bytes": "\(image.bytesDownloaded)",
                               "already_present": "\(image.alreadyPresent)"])
            } catch {
                logger.error("pull finished but its record cannot be saved", metadata: ["error": "\(error)"])
            }
        case .failure(let error):
            metrics.recordPull(seconds: seconds, bytes: 0)
            metrics.countPull(.failure)
            setStatus(key, .failure, error.message)
            logger.warning("pull failed", metadata: ["error": "\(error.message)", "code": "\(error.code)"])
        }
    }

    private func observe(_ event: ImportEvent, key: PullKey) {
        var newStage: GatewayImageStatus?
        var message = ""
        state.withLock { state in
            guard var progress = state.running[key] else { return }
            switch event {
            case .resolved(let id, let platform, let layers):
                progress.total = layers.reduce(0) { $0 + $1.size }
                message = "downloading \(layers.count) layers of \(id) for \(platform)"
                newStage = .pulling
            case .downloading(let index, _, let received, _):
                progress.layerBytes[index] = received
            case .downloaded(let index, _, let size):
                progress.layerBytes[index] = size
            case .converting:
                if progress.stage != .conversion {
                    progress.stage = .conversion
                    newStage = .conversion
                    message = "converting to squashfs"
                }
            case .alreadyPresent(let id):
                message = "\(id) is already in the image store"
            case .stored:
                break
            }
            state.running[key] = progress
        }
        if let newStage { setStatus(key, newStage, message) }
    }

    private func setStatus(_ key: PullKey, _ status: GatewayImageStatus, _ message: String) {
        do throws(GatewayError) {
            try store.setStatus(system: key.system, itype: key.itype, tag: key.tag, scope: key.scope, status: status, message: message)
        } catch {
            logger.error("cannot save the status of a pull", metadata: ["image": "\(key)", "error": "\(error)"])
        }
    }
}
