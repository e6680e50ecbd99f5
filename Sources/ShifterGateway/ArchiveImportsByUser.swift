import Synchronization

/// The archive imports each user runs now, so that one user's imports never take every worker
/// (`archiveImportsPerUser`).
final class ArchiveImportsByUser: Sendable {
    private let running = Mutex<[UInt32: Int]>([:])

    /// Counts one more import of `uid`, unless `uid` runs `limit` already; false then.
    func claim(_ uid: UInt32, limit: Int) -> Bool {
        running.withLock { running in
            guard running[uid, default: 0] < limit else { return false }
            running[uid, default: 0] += 1
            return true
        }
    }

    /// Counts one import of `uid` fewer.
    func release(_ uid: UInt32) {
        running.withLock { running in
            running[uid, default: 1] -= 1
            if running[uid] == 0 { running[uid] = nil }
        }
    }
}
