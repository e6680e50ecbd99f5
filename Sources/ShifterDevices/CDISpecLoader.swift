import ShifterCore
import ShifterSystem

/// Reads the node's CDI specs: every `*.json` and `*.yaml` file of the site's `cdiSpecDirs`, in
/// the directories' order (a later directory's device wins), each directory's files by name. A
/// spec decides what root mounts into containers, so one that root does not own, that others can
/// write, or that does not parse is left out, and named in the message of any request it could
/// have served.
public enum CDISpecLoader {
    /// The largest spec read (NVIDIA's, for eight GPUs, is about 60 KiB).
    public static let sizeLimit = 4 << 20

    public static func registry(directories: [String]) -> (CDIRegistry, problems: [String]) {
        var entries: [CDIRegistry.Entry] = []
        var problems: [String] = []
        for (priority, directory) in directories.enumerated() {
            guard let names = try? FileSystem.directoryEntries(directory) else { continue }
            // A directory others could write to could swap a spec between its checks and its read.
            if let problem = unsafeOwnership(directory, what: "CDI spec directory") {
                problems.append(problem.reason)
                continue
            }
            for name in names.sorted() where name.hasSuffix(".json") || name.hasSuffix(".yaml") {
                let path = directory + "/" + name
                do {
                    entries.append(CDIRegistry.Entry(spec: try load(path), source: path, priority: priority))
                } catch {
                    problems.append(error.description)
                }
            }
        }
        return (CDIRegistry(entries: entries, directories: directories), problems)
    }

    /// Why `path` (followed where a link) is not root's alone, or nil.
    static func unsafeOwnership(_ path: String, what: String) -> CDIError? {
        let status: FileStatus
        do { status = try FileSystem.status(path) } catch { return CDIError("\(what) \(path): couldn't \(error.description)") }
        return unsafeOwnership(status, path: path, what: what)
    }

    static func unsafeOwnership(_ status: FileStatus, path: String, what: String) -> CDIError? {
        if status.uid != 0 { return CDIError("\(what) \(path): refused: owned by uid \(status.uid), not root") }
        if status.mode & 0o022 != 0 {
            return CDIError("\(what) \(path): refused: writable by \(status.mode & 0o002 != 0 ? "everyone" : "its group") (mode \(String(status.mode & 0o7777, radix: 8))); make it root's alone (chmod go-w)")
        }
        return nil
    }

    /// Reads and decodes one spec file: a regular file, root's alone (checked before it is opened,
    /// so a FIFO never blocks the reader, and again on what was opened).
    public static func load(_ path: String) throws(CDIError) -> CDISpec {
        let status: FileStatus
        do { status = try FileSystem.status(path) } catch { throw CDIError("CDI spec \(path): couldn't \(error.description)") }
        guard status.kind == .regular else { throw CDIError("CDI spec \(path): not a regular file") }
        if let problem = unsafeOwnership(status, path: path, what: "CDI spec") { throw problem }
        let bytes: [UInt8], opened: FileStatus
        do { (bytes, opened) = try FileSystem.readFileWithStatus(path, limit: sizeLimit) } catch {
            throw CDIError("CDI spec \(path): couldn't \(error.description)")
        }
        guard opened.device == status.device, opened.inode == status.inode else {
            throw CDIError("CDI spec \(path): refused: it was replaced while it was read")
        }
        let value: JSONValue
        if path.hasSuffix(".json") {
            do { value = try JSONValue.parse(bytes) } catch { throw CDIError("CDI spec \(path): not valid JSON: \(error.description)") }
        } else {
            do { value = try YAMLDocument.parse(bytes) } catch { throw CDIError("CDI spec \(path): not valid YAML: \(error.description)") }
        }
        return try CDISpec.decode(value, source: path)
    }

    /// What `names` add to a container on this node; an error names the device and, where a spec
    /// was left out, why.
    public static func resolve(_ names: [CDIDeviceName], directories: [String]) throws(CDIError) -> CDIResolution {
        let (registry, problems) = registry(directories: directories)
        do {
            return try registry.resolve(names)
        } catch {
            throw CDIError(([error.reason] + problems).joined(separator: "; "))
        }
    }
}
