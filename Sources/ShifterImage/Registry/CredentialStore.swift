#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// Registry credentials saved by `shifterimg login`, one file per user, readable only by them.
///
/// The file is `$XDG_CONFIG_HOME/shifter/auth.json` (by default `~/.config/shifter/auth.json`), in
/// the `{"auths": {"REGISTRY": {"auth": "BASE64(user:password)"}}}` shape Docker and Podman use,
/// written with mode 0600 in a directory with mode 0700, replaced atomically.
public struct CredentialStore: Sendable {
    /// The credentials file.
    public let path: String

    /// A store at `path`.
    public init(path: String) {
        self.path = path
    }

    /// The calling user's store, from `XDG_CONFIG_HOME` or `HOME` in `environment`.
    public static func forCurrentUser(environment: [String: String] = ProcessInfo.processInfo.environment) -> CredentialStore {
        if let config = environment["XDG_CONFIG_HOME"], config.hasPrefix("/") {
            return CredentialStore(path: config + "/shifter/auth.json")
        }
        let home = environment["HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? FileManager.default.homeDirectoryForCurrentUser.path
        return CredentialStore(path: home + "/.config/shifter/auth.json")
    }

    private struct File: Codable {
        struct Entry: Codable {
            var auth: String
        }

        var auths: [String: Entry]
    }

    /// The saved credentials for `registry`, if any.
    public func credentials(for registry: String) throws(ImageImportError) -> RegistryCredentials? {
        guard let entry = try read().auths[registry.lowercased()],
            let decoded = Data(base64Encoded: entry.auth).map({ String(decoding: $0, as: UTF8.self) }),
            let colon = decoded.firstIndex(of: ":")
        else { return nil }
        return RegistryCredentials(username: String(decoded[..<colon]), password: String(decoded[decoded.index(after: colon)...]))
    }

    /// Saves `credentials` for `registry`, replacing earlier ones.
    public func save(_ credentials: RegistryCredentials, for registry: String) throws(ImageImportError) {
        var file = try read()
        file.auths[registry.lowercased()] = File.Entry(auth: Data((credentials.username + ":" + credentials.password).utf8).base64EncodedString())
        try write(file)
    }

    /// Forgets the credentials for `registry`; returns whether there were any.
    @discardableResult
    public func remove(for registry: String) throws(ImageImportError) -> Bool {
        var file = try read()
        guard file.auths.removeValue(forKey: registry.lowercased()) != nil else { return false }
        try write(file)
        return true
    }

    private func read() throws(ImageImportError) -> File {
        guard FileOperations.exists(path) else { return File(auths: [:]) }
        var status = stat()
        if stat(path, &status) == 0, status.st_mode & 0o077 != 0 {
            throw ImageImportError(
                .io, "credentials file \(displayQuoted(path)): readable by others (mode \(String(status.st_mode & 0o777, radix: 8))); run chmod 600 on it")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ImageImportError(.io, "credentials file \(displayQuoted(path)): cannot be read: \(FileOperations.lastErrorText)")
        }
        do {
            return try JSONDecoder().decode(File.self, from: data)
        } catch {
            throw ImageImportError(.io, "credentials file \(displayQuoted(path)): not valid JSON")
        }
    }

    private func write(_ file: File) throws(ImageImportError) {
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        if !directory.isEmpty && !FileOperations.exists(directory) {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                // FoundationEssentials' errors have no localizedDescription; name the errno.
                let reason = ((error as? CocoaError)?.underlying as? POSIXError).map { String(cString: strerror($0.code.rawValue)) } ?? "\(error)"
                throw ImageImportError(.io, "credentials directory \(displayQuoted(directory)): cannot be created: \(reason)")
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data: Data
        do {
            data = try encoder.encode(file)
        } catch {
            throw ImageImportError(.io, "credentials file \(displayQuoted(path)): cannot encode")
        }
        let temporary = path + ".tmp-" + String(getpid())
        try? FileOperations.removeFile(temporary)
        do throws(ImageImportError) {
            try FileOperations.writeSynced(Array(data) + [UInt8(ascii: "\n")], to: temporary, mode: 0o600)
            try FileOperations.rename(temporary, to: path)
        } catch {
            try? FileOperations.removeFile(temporary)
            throw error
        }
    }
}
