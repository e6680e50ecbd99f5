import CSQLite
import Synchronization

/// A value read from or bound to an SQLite statement.
enum SQLiteValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)

    /// The value as text, or nil.
    var text: String? {
        if case .text(let value) = self { return value }
        return nil
    }

    /// The value as a whole number, or nil.
    var integer: Int64? {
        switch self {
        case .integer(let value): return value
        case .real(let value): return Int64(exactly: value.rounded())
        default: return nil
        }
    }

    /// The value as a number, or nil.
    var real: Double? {
        switch self {
        case .real(let value): return value
        case .integer(let value): return Double(value)
        default: return nil
        }
    }
}

/// One SQLite connection, used by one caller at a time.
///
/// Every call takes the connection's lock, so the database can be shared by request handlers and
/// pull workers. The database is in WAL mode with `synchronous=FULL`: a committed state change (a
/// pull queued, an image READY) survives a crash of the process or the machine.
final class SQLiteDatabase: Sendable {
    private struct Handle: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    private let connection: Mutex<Handle>
    /// The database file.
    let path: String

    /// Opens (creating if needed) the database at `path`. The corresponding C function is `sqlite3_open_v2(3)`.
    init(path: String) throws(GatewayError) {
        var pointer: OpaquePointer? = nil
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
        let status = sqlite3_open_v2(path, &pointer, flags, nil)
        guard status == SQLITE_OK, let pointer else {
            let reason = pointer.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(status))
            sqlite3_close(pointer)
            throw .internal("database \(quoted(path)): cannot be opened: \(reason)")
        }
        sqlite3_busy_timeout(pointer, 10_000)
        self.path = path
        self.connection = Mutex(Handle(pointer: pointer))
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=FULL")
        try execute("PRAGMA foreign_keys=ON")
    }

    deinit {
        connection.withLock { _ = sqlite3_close_v2($0.pointer) }
    }

    /// Runs one statement that returns no rows.
    func execute(_ sql: String, _ bindings: [SQLiteValue] = []) throws(GatewayError) {
        _ = try query(sql, bindings)
    }

    /// Runs one statement and returns its rows. The corresponding C functions are
    /// `sqlite3_prepare_v2(3)`, `sqlite3_bind_*(3)` and `sqlite3_step(3)`.
    func query(_ sql: String, _ bindings: [SQLiteValue] = []) throws(GatewayError) -> [[SQLiteValue]] {
        let result: Result<[[SQLiteValue]], GatewayError> = connection.withLock { handle in
            Self.run(handle.pointer, sql, bindings, path: path)
        }
        return try result.get()
    }

    /// Runs `body` inside one transaction, committed if it returns and rolled back if it throws.
    func transaction<Value>(_ body: (SQLiteTransaction) throws(GatewayError) -> Value) throws(GatewayError) -> Value {
        let result: Result<Value, GatewayError> = connection.withLock { handle in
            let transaction = SQLiteTransaction(pointer: handle.pointer, path: path)
            if case .failure(let error) = Self.run(handle.pointer, "BEGIN IMMEDIATE", [], path: path) { return .failure(error) }
            do throws(GatewayError) {
                let value = try body(transaction)
                if case .failure(let error) = Self.run(handle.pointer, "COMMIT", [], path: path) {
                    _ = Self.run(handle.pointer, "ROLLBACK", [], path: path)
                    return .failure(error)
                }
                return .success(value)
            } catch {
                _ = Self.run(handle.pointer, "ROLLBACK", [], path: path)
                return .failure(error)
            }
        }
        return try result.get()
    }

    fileprivate static func run(_ db: OpaquePointer, _ sql: String, _ bindings: [SQLiteValue], path: String) -> Result<[[SQLiteValue]], GatewayError> {
        func failure(_ what: String) -> Result<[[SQLiteValue]], GatewayError> {
            .failure(.internal("database \(quoted(path)): \(what): \(String(cString: sqlite3_errmsg(db)))"))
        }
        var statement: OpaquePointer? = nil
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            return failure("cannot prepare \(quoted(sql, limit: 60))")
        }
        defer { sqlite3_finalize(statement) }
        for (offset, value) in bindings.enumerated() {
            let index = Int32(offset + 1)
            let status: Int32
            switch value {
            case .null: status = sqlite3_bind_null(statement, index)
            case .integer(let number): status = sqlite3_bind_int64(statement, index, number)
            case .real(let number): status = sqlite3_bind_double(statement, index, number)
            case .text(let text):
                status = text.withCString { shifter_sqlite3_bind_text_copy(statement, index, $0, Int32(clamping: text.utf8.count)) }
            }
            guard status == SQLITE_OK else { return failure("cannot bind parameter \(index)") }
        }
        var rows: [[SQLiteValue]] = []
        while true {
            let step = sqlite3_step(statement)
            if step == SQLITE_DONE { break }
            guard step == SQLITE_ROW else { return failure("\(quoted(sql, limit: 60)) failed") }
            var row: [SQLiteValue] = []
            for column in 0..<sqlite3_column_count(statement) {
                switch sqlite3_column_type(statement, column) {
                case SQLITE_INTEGER: row.append(.integer(sqlite3_column_int64(statement, column)))
                case SQLITE_FLOAT: row.append(.real(sqlite3_column_double(statement, column)))
                case SQLITE_NULL: row.append(.null)
                default:
                    if let text = sqlite3_column_text(statement, column) {
                        let count = Int(sqlite3_column_bytes(statement, column))
                        row.append(.text(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)))
                    } else {
                        row.append(.null)
                    }
                }
            }
            rows.append(row)
        }
        return .success(rows)
    }
}

/// Statements run inside `SQLiteDatabase.transaction`, on the connection the transaction holds.
struct SQLiteTransaction {
    fileprivate let pointer: OpaquePointer
    fileprivate let path: String

    /// Runs one statement and returns its rows.
    func query(_ sql: String, _ bindings: [SQLiteValue] = []) throws(GatewayError) -> [[SQLiteValue]] {
        try SQLiteDatabase.run(pointer, sql, bindings, path: path).get()
    }

    /// Runs one statement that returns no rows.
    func execute(_ sql: String, _ bindings: [SQLiteValue] = []) throws(GatewayError) {
        _ = try query(sql, bindings)
    }
}
