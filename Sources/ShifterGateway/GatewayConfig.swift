import ShifterCore
import ShifterImage

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// How the gateway authenticates to one registry.
public enum RegistryAuthMethod: String, Sendable, Equatable, CaseIterable {
    /// Pulls are anonymous; credentials a caller sends are refused.
    case anonymous
    /// A pull uses the caller's credentials from the munge payload, else is anonymous.
    case user
    /// Pulls use the site's account (`username`, `passwordFile`), whatever the caller sends.
    case site
}

/// One registry the gateway may pull from.
public struct RegistryConfig: Sendable, Equatable {
    /// The registry host and optional port, as image references name it (`registry.example.org:5000`).
    public var host: String
    /// A PEM bundle of CA certificates for its TLS certificate, or nil for the system's.
    public var caBundle: String?
    /// How pulls authenticate.
    public var auth: RegistryAuthMethod
    /// The site account's user name, for `auth: site`.
    public var username: String?
    /// A root-only file holding the site account's password, for `auth: site`.
    public var passwordFile: String?
}

/// One system (cluster) the gateway serves, with its own image store.
public struct SystemConfig: Sendable, Equatable {
    /// The system name in request paths (`system` in the cluster's udiRoot.conf).
    public var name: String
    /// The cluster's `imagePath`, shared with its nodes.
    public var imagePath: String
}

/// A configuration file that cannot be used: one line naming the file, the key and the reason.
public struct GatewayConfigError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What is wrong.
    public var message: String

    /// Creates an error.
    public init(_ message: String) { self.message = message }

    /// The one-line message.
    public var description: String { message }
}

/// The gateway's configuration, read from a JSON file in which lines starting with `#` are
/// comments (see `etc/imagegw.conf.example`).
///
/// Unknown keys are errors, so a misspelt key is never silently ignored; of a key given twice in
/// one object, the first counts. Users (administrators, import users) may be given as names or
/// numeric uids.
public struct GatewayConfig: Sendable, Equatable {
    /// The address to listen on.
    public var listenHost: String
    /// The port to listen on.
    public var listenPort: Int
    /// The SQLite database file; created if missing.
    public var database: String
    /// Pulls that run at the same time.
    public var workers: Int
    /// The systems served, by name.
    public var systems: [String: SystemConfig]
    /// The registries pulls may use, by host.
    public var registries: [String: RegistryConfig]
    /// The registry of references that name none; Docker Hub unless configured.
    public var defaultRegistry: String
    /// Whether registries missing from `registries` may be used (anonymously, system CA bundle).
    public var allowUnlistedRegistries: Bool
    /// The platform picked from multi-platform images.
    public var platform: String
    /// Seconds without a lookup after which `autoexpire` removes an image.
    public var expireAfter: Double
    /// Seconds between the runs of autoexpire that the gateway starts by itself, for every system;
    /// the first run is one interval after the start. 0: never.
    public var autoexpireInterval: Double
    /// The longest job time limit: an image looked up more recently than this may still be in use.
    public var jobTimeLimit: Double
    /// Seconds after a pull during which a pull of the same tag returns the existing image.
    public var minPullInterval: Double
    /// The largest request body accepted, in bytes.
    public var maxBodyBytes: Int
    /// Administrators' uids; root is always one.
    public var adminUIDs: Set<UInt32>
    /// Users allowed to import squashfs files, besides the administrators.
    public var importUIDs: Set<UInt32>
    /// Lookups kept for `/api/metrics/`.
    public var lookupHistory: Int
    /// How far the layers of an image pulled or converted from an archive may expand
    /// (`imageExpandedSizeLimit`, `imageEntryLimit`).
    public var importLimits: ImportLimits
    /// How much of an image archive one import reads and writes (`archiveImportSizeLimit`,
    /// `archiveImportEntryLimit`).
    public var archiveLimits: ImageArchiveImporter.Limits
    /// Archive imports one user may run at once.
    public var archiveImportsPerUser: Int
    /// Which images may be pulled or imported, by signature (`signaturePolicy`); nil: any.
    public var signaturePolicy: SignaturePolicy?

    /// A configuration with defaults for everything but the systems.
    public init(
        listenHost: String = "127.0.0.1", listenPort: Int = 7777, database: String = "/var/lib/shifter/imagegw.sqlite",
        workers: Int = 2, systems: [String: SystemConfig] = [:], registries: [String: RegistryConfig] = [:],
        defaultRegistry: String = ImageReference.dockerHubRegistry, allowUnlistedRegistries: Bool = false,
        platform: String = "linux/amd64", expireAfter: Double = 90 * 86_400, autoexpireInterval: Double = 86_400,
        jobTimeLimit: Double = 7 * 86_400, minPullInterval: Double = 60, maxBodyBytes: Int = 64 << 10, adminUIDs: Set<UInt32> = [0],
        importUIDs: Set<UInt32> = [], lookupHistory: Int = 10_000, importLimits: ImportLimits = .standard,
        archiveLimits: ImageArchiveImporter.Limits = .standard, archiveImportsPerUser: Int = 1
    ) {
        self.listenHost = listenHost
        self.listenPort = listenPort
        self.database = database
        self.workers = workers
        self.systems = systems
        self.registries = registries
        self.defaultRegistry = defaultRegistry
        self.allowUnlistedRegistries = allowUnlistedRegistries
        self.platform = platform
        self.expireAfter = expireAfter
        self.autoexpireInterval = autoexpireInterval
        self.jobTimeLimit = jobTimeLimit
        self.minPullInterval = minPullInterval
        self.maxBodyBytes = maxBodyBytes
        self.adminUIDs = adminUIDs.union([0])
        self.importUIDs = importUIDs
        self.lookupHistory = lookupHistory
        self.importLimits = importLimits
        self.archiveLimits = archiveLimits
        self.archiveImportsPerUser = archiveImportsPerUser
    }

    /// Reads and checks the configuration file at `path`.
    public static func load(path: String) throws(GatewayConfigError) -> GatewayConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw GatewayConfigError("gateway configuration \(quoted(path)): cannot be read: \(String(cString: strerror(errno)))")
        }
        let config = try parse(Array(data), source: path)
        // The policy's keys are read now, so a missing or wrong one stops the start, not a pull.
        for file in config.signaturePolicy?.keyFiles ?? [] {
            do throws(ImageImportError) {
                _ = try SignerKey.load(file)
            } catch {
                throw GatewayConfigError("gateway configuration \(quoted(path)): signaturePolicy: \(error.message)")
            }
        }
        return config
    }

    /// Parses configuration JSON; `source` names it in errors. `userID` resolves user names.
    public static func parse(
        _ bytes: [UInt8], source: String, userID: (String) -> UInt32? = GatewayConfig.systemUserID
    ) throws(GatewayConfigError) -> GatewayConfig {
        // Whole-line `#` comments are allowed, so the file can explain itself; JSON has none.
        let text = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.drop { $0 == " " || $0 == "\t" }.hasPrefix("#") ? "" : String($0) }.joined(separator: "\n")
        let document: ConfigValue
        do {
            document = try JSONDecoder().decode(ConfigValue.self, from: Data(text.utf8))
        } catch {
            throw GatewayConfigError("gateway configuration \(quoted(source)): not valid JSON")
        }
        let top: ConfigObject
        switch document {
        case .object(let members):
            top = ConfigObject(values: members, path: "", source: source)
        case .list:
            throw GatewayConfigError("gateway configuration \(quoted(source)): the top level is not a JSON object")
        case .null, .bool, .number, .string:
            // A lone value is refused as invalid, as JSONSerialization, which read the file before, refused it.
            throw GatewayConfigError("gateway configuration \(quoted(source)): not valid JSON")
        }
        try top.allowOnly([
            "listen", "database", "workers", "systems", "registries", "defaultRegistry", "allowUnlistedRegistries", "platform",
            "expireAfterSeconds", "autoexpireIntervalSeconds", "jobTimeLimitSeconds", "minPullIntervalSeconds", "maxBodyBytes", "admins",
            "importUsers", "lookupHistory", "imageExpandedSizeLimit", "imageEntryLimit", "archiveImportSizeLimit", "archiveImportEntryLimit",
            "archiveImportsPerUser", "signaturePolicy",
        ])
        var config = GatewayConfig()
        if let listen = try top.string("listen") {
            guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port),
                colon != listen.startIndex
            else {
                throw top.failure("listen", "\(quoted(listen)) is not HOST:PORT")
            }
            config.listenHost = listen[..<colon].trimmingScalars { $0 == "[" || $0 == "]" }
            config.listenPort = port
        }
        if let database = try top.string("database") {
            guard database.hasPrefix("/") else { throw top.failure("database", "\(quoted(database)) is not an absolute path") }
            config.database = database
        }
        if let workers = try top.integer("workers") {
            guard (1...64).contains(workers) else { throw top.failure("workers", "\(workers) is not between 1 and 64") }
            config.workers = workers
        }
        guard let systems = try top.object("systems"), !systems.values.isEmpty else {
            throw top.failure("systems", "at least one system with its imagePath is required")
        }
        for name in systems.values.keys.sorted() {
            guard let system = try systems.object(name) else { continue }
            try system.allowOnly(["imagePath"])
            guard let imagePath = try system.string("imagePath"), imagePath.hasPrefix("/") else {
                throw system.failure("imagePath", "an absolute directory is required")
            }
            guard GatewayConfig.isValidName(name) else {
                throw systems.failure(name, "a system name uses letters, digits, '-', '_' and '.' only")
            }
            config.systems[name] = SystemConfig(name: name, imagePath: imagePath)
        }
        if let registries = try top.object("registries") {
            for host in registries.values.keys.sorted() {
                guard let registry = try registries.object(host) else { continue }
                try registry.allowOnly(["url", "caBundle", "auth", "username", "passwordFile"])
                var name = host.lowercased()
                if let url = try registry.string("url") {
                    guard url.hasPrefix("https://") else { throw registry.failure("url", "\(quoted(url)) is not an https:// URL") }
                    let rest = url.dropFirst("https://".count)
                    name = String(rest.prefix { $0 != "/" }).lowercased()
                    guard !name.isEmpty else { throw registry.failure("url", "\(quoted(url)) names no host") }
                }
                let authText = try registry.string("auth") ?? RegistryAuthMethod.user.rawValue
                guard let auth = RegistryAuthMethod(rawValue: authText) else {
                    throw registry.failure("auth", "\(quoted(authText)) is not one of anonymous, user, site")
                }
                let entry = RegistryConfig(
                    host: name, caBundle: try registry.string("caBundle"), auth: auth, username: try registry.string("username"),
                    passwordFile: try registry.string("passwordFile"))
                if auth == .site && (entry.username == nil || entry.passwordFile == nil) {
                    throw registry.failure("auth", "\"site\" needs username and passwordFile")
                }
                config.registries[name] = entry
            }
        }
        if let registry = try top.string("defaultRegistry") {
            guard !registry.isEmpty, !registry.contains("/") else { throw top.failure("defaultRegistry", "\(quoted(registry)) is not a registry host") }
            config.defaultRegistry = registry.lowercased()
        }
        if let allow = try top.bool("allowUnlistedRegistries") { config.allowUnlistedRegistries = allow }
        if let platform = try top.string("platform") { config.platform = platform }
        if let seconds = try top.number("expireAfterSeconds") {
            guard seconds > 0 else { throw top.failure("expireAfterSeconds", "must be positive") }
            config.expireAfter = seconds
        }
        if let seconds = try top.number("autoexpireIntervalSeconds") {
            // A year bounds it so that the timer's Duration cannot overflow; 0 is the way to say never.
            guard seconds >= 0 else { throw top.failure("autoexpireIntervalSeconds", "must not be negative (0 turns the timer off)") }
            guard seconds <= maximumAutoexpireInterval else {
                throw top.failure("autoexpireIntervalSeconds", "must be at most \(Int(maximumAutoexpireInterval)) (a year)")
            }
            config.autoexpireInterval = seconds
        }
        if let seconds = try top.number("jobTimeLimitSeconds") {
            guard seconds >= 0 else { throw top.failure("jobTimeLimitSeconds", "must not be negative") }
            config.jobTimeLimit = seconds
        }
        if let seconds = try top.number("minPullIntervalSeconds") {
            guard seconds >= 0 else { throw top.failure("minPullIntervalSeconds", "must not be negative") }
            config.minPullInterval = seconds
        }
        if let bytes = try top.integer("maxBodyBytes") {
            guard (1024...(16 << 20)).contains(bytes) else { throw top.failure("maxBodyBytes", "\(bytes) is not between 1024 and 16777216") }
            config.maxBodyBytes = bytes
        }
        if let count = try top.integer("lookupHistory") {
            guard count >= 0 else { throw top.failure("lookupHistory", "must not be negative") }
            config.lookupHistory = count
        }
        if let bytes = try top.size("imageExpandedSizeLimit") { config.importLimits.maximumExpandedBytes = bytes }
        if let count = try top.integer("imageEntryLimit") {
            guard (1...1_000_000_000).contains(count) else { throw top.failure("imageEntryLimit", "\(count) is not between 1 and 1000000000") }
            config.importLimits.maximumEntries = count
        }
        if let bytes = try top.size("archiveImportSizeLimit") { config.archiveLimits.maximumBlobBytes = bytes }
        if let count = try top.integer("archiveImportEntryLimit") {
            guard (1...1_000_000_000).contains(count) else { throw top.failure("archiveImportEntryLimit", "\(count) is not between 1 and 1000000000") }
            config.archiveLimits.maximumEntries = count
        }
        if let count = try top.integer("archiveImportsPerUser") {
            guard (1...64).contains(count) else { throw top.failure("archiveImportsPerUser", "\(count) is not between 1 and 64") }
            config.archiveImportsPerUser = count
        }
        if let policy = try top.object("signaturePolicy") {
            try policy.allowOnly(["default", "scopes", "archives"])
            var parsed = SignaturePolicy(defaultRequirement: try policy.requirement("default") ?? .accept,
                                         archives: try policy.requirement("archives") ?? .accept)
            if case .signedBy = parsed.archives {
                throw policy.failure("archives", "an archive carries no registry signature: \"accept\" or \"reject\"")
            }
            if let scopes = try policy.object("scopes") {
                for scope in scopes.values.keys.sorted() {
                    if let problem = SignaturePolicy.problem(withScope: scope) { throw scopes.failure(scope, "not a scope: \(problem)") }
                    guard let canonical = SignaturePolicy.canonicalScope(scope) else { throw scopes.failure(scope, "not a scope") }
                    if parsed.scopes[canonical] != nil {
                        throw scopes.failure(scope, "the same scope as another (\(canonical)), written another way")
                    }
                    parsed.scopes[canonical] = try scopes.requirement(scope)
                }
            }
            config.signaturePolicy = parsed
        }
        config.adminUIDs = Set(try top.users("admins", userID: userID)).union([0])
        config.importUIDs = Set(try top.users("importUsers", userID: userID))
        return config
    }

    /// The longest `autoexpireIntervalSeconds`: a year.
    static let maximumAutoexpireInterval: Double = 365 * 86_400

    /// Whether `name` may name a system: letters, digits, `-`, `_` and `.`.
    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || "-_.".unicodeScalars.contains($0) }
    }

    /// Resolves a user name with `getpwnam(3)`.
    public static func systemUserID(_ name: String) -> UInt32? {
        getpwnam(name).map { $0.pointee.pw_uid }
    }

    /// The registry settings for `host`: the configured entry, or anonymous defaults where unlisted
    /// registries are allowed; nil when the registry may not be used.
    public func registry(for host: String) -> RegistryConfig? {
        if let entry = registries[host.lowercased()] { return entry }
        guard allowUnlistedRegistries else { return nil }
        return RegistryConfig(host: host, caBundle: nil, auth: .user, username: nil, passwordFile: nil)
    }
}

/// A value of the configuration file as `JSONDecoder` reads it. `true` and `false` are `bool`,
/// never numbers, so a flag and a count cannot stand in for each other.
private enum ConfigValue: Decodable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case list([ConfigValue])
    case object([String: ConfigValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let flag = try? container.decode(Bool.self) {
            self = .bool(flag)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let text = try? container.decode(String.self) {
            self = .string(text)
        } else if let items = try? container.decode([ConfigValue].self) {
            self = .list(items)
        } else {
            self = .object(try container.decode([String: ConfigValue].self))
        }
    }

    /// The value in messages, written as earlier releases wrote it: they read the file with
    /// `JSONSerialization`, whose values print as `NSNumber`, `NSNull` and Swift collections. The
    /// one difference: a whole number written with a fraction or an exponent (`-1.0`) prints as
    /// an integer, since the number's spelling is not kept.
    var text: String {
        switch self {
        case .null: "<null>"
        case .bool(let flag): flag ? "1" : "0"
        case .number(let number) where number.rounded() == number && abs(number) < 1e15: "\(Int64(number))"
        case .number(let number): "\(number)"
        case .string(let text): text
        case .list(let items): "[" + items.map(\.nestedText).joined(separator: ", ") + "]"
        case .object(let members) where members.isEmpty: "[:]"
        case .object(let members): "[" + members.map { "\(String(reflecting: $0.key)): \($0.value.nestedText)" }.joined(separator: ", ") + "]"
        }
    }

    /// The value inside a list or object, where strings are quoted.
    private var nestedText: String {
        if case .string(let text) = self { return String(reflecting: text) }
        return text
    }
}

/// A JSON object of the configuration with typed, checked reads that name the key in errors.
private struct ConfigObject {
    var values: [String: ConfigValue]
    var path: String
    var source: String

    func failure(_ key: String, _ reason: String) -> GatewayConfigError {
        GatewayConfigError("gateway configuration \(quoted(source)): key \(quoted(path + key)): \(reason)")
    }

    func allowOnly(_ keys: [String]) throws(GatewayConfigError) {
        for key in values.keys.sorted() where !keys.contains(key) {
            throw failure(key, "unknown key")
        }
    }

    func string(_ key: String) throws(GatewayConfigError) -> String? {
        switch values[key] {
        case nil, .null?: return nil
        case .string(let text)?: return text
        default: throw failure(key, "should be a string")
        }
    }

    func number(_ key: String) throws(GatewayConfigError) -> Double? {
        switch values[key] {
        case nil, .null?: return nil
        case .number(let number)? where number.isFinite: return number
        default: throw failure(key, "should be a number")
        }
    }

    func integer(_ key: String) throws(GatewayConfigError) -> Int? {
        guard let number = try number(key) else { return nil }
        guard number.rounded() == number, abs(number) < 1e15 else { throw failure(key, "should be a whole number") }
        return Int(number)
    }

    /// A byte count: a whole number, or a size such as `"64G"` (powers of 1024, as udiRoot.conf
    /// writes them); at least 1.
    func size(_ key: String) throws(GatewayConfigError) -> UInt64? {
        let bytes: UInt64
        switch values[key] {
        case nil, .null?: return nil
        case .string(let text)?:
            do {
                bytes = try ByteSize.parse(text)
            } catch {
                throw failure(key, "\(quoted(text)): \(error.reason)")
            }
        case .number?:
            guard let number = try integer(key), number >= 0 else { throw failure(key, "must not be negative") }
            bytes = UInt64(number)
        default:
            throw failure(key, "should be a number of bytes or a size such as \"64G\"")
        }
        guard bytes > 0 else { throw failure(key, "must be at least 1 byte") }
        return bytes
    }

    func bool(_ key: String) throws(GatewayConfigError) -> Bool? {
        switch values[key] {
        case nil, .null?: return nil
        case .bool(let flag)?: return flag
        default: throw failure(key, "should be true or false")
        }
    }

    /// A signature requirement: `"accept"`, `"reject"`, or `{"signedBy": [KEY.pem, ...]}` (absolute paths).
    func requirement(_ key: String) throws(GatewayConfigError) -> SignatureRequirement? {
        switch values[key] {
        case nil, .null?: return nil
        case .string("accept")?: return .accept
        case .string("reject")?: return .reject
        case .object?:
            guard let rule = try object(key) else { return nil }
            try rule.allowOnly(["signedBy"])
            guard case .list(let items)? = rule.values["signedBy"], !items.isEmpty else {
                throw rule.failure("signedBy", "should be a list of one or more public key files")
            }
            var files: [String] = []
            for item in items {
                guard case .string(let file) = item, file.hasPrefix("/") else {
                    let shown = if case .string(let text) = item { quoted(text) } else { item.text }
                    throw rule.failure("signedBy", "\(shown) is not an absolute path to a PEM public key")
                }
                files.append(file)
            }
            return .signedBy(keyFiles: files)
        default:
            throw failure(key, "should be \"accept\", \"reject\" or {\"signedBy\": [public key files]}")
        }
    }

    func object(_ key: String) throws(GatewayConfigError) -> ConfigObject? {
        switch values[key] {
        case nil, .null?: return nil
        case .object(let members)?: return ConfigObject(values: members, path: path + key + ".", source: source)
        default: throw failure(key, "should be an object")
        }
    }

    func users(_ key: String, userID: (String) -> UInt32?) throws(GatewayConfigError) -> [UInt32] {
        let items: [ConfigValue]
        switch values[key] {
        case nil, .null?: return []
        case .list(let list)?: items = list
        default: throw failure(key, "should be a list of user names or uids")
        }
        var result: [UInt32] = []
        for item in items {
            let uid: UInt32? =
                switch item {
                case .number(let number): UInt32(exactly: number)
                case .string(let name): UInt32(name) ?? userID(name)
                default: nil
                }
            guard let uid else { throw failure(key, "\(quoted(item.text)) is not a known user or uid") }
            result.append(uid)
        }
        return result
    }
}
