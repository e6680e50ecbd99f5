/// A Container Device Interface device name, `vendor.com/class=name` (CDI's "fully-qualified
/// device name"): the kind (`vendor.com/class`) says which spec describes it, the name which of
/// its devices.
public struct CDIDeviceName: Hashable, Sendable, CustomStringConvertible {
    public var vendor: String
    public var deviceClass: String
    public var name: String

    /// `vendor/class`, the spec's `kind`.
    public var kind: String { vendor + "/" + deviceClass }
    public var description: String { kind + "=" + name }

    /// The name every device of a kind answers to where its spec defines no device of that name.
    public static let all = "all"

    /// Parses `vendor/class=name`.
    public static func parse(_ text: some StringProtocol) throws(CDIError) -> CDIDeviceName {
        let text = String(text)
        guard let equals = text.utf8.firstIndex(of: UInt8(ascii: "=")) else {
            throw CDIError("device \(quoted(text)): expected VENDOR/CLASS=NAME, as in nvidia.com/gpu=0")
        }
        let kind = text[..<equals], name = String(text[text.utf8.index(after: equals)...])
        let (vendor, deviceClass) = try parseKind(kind, what: "device \(quoted(text))")
        guard isValidDeviceName(name) else {
            throw CDIError("device \(quoted(text)): the name after \"=\" must start and end with a letter or digit and hold only letters, digits and _ . : -")
        }
        return CDIDeviceName(vendor: vendor, deviceClass: deviceClass, name: name)
    }

    /// Parses a comma-separated list (`--device`); repeats are dropped, the first place kept.
    public static func parseList(_ text: some StringProtocol) throws(CDIError) -> [CDIDeviceName] {
        var names: [CDIDeviceName] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw CDIError("--device \(quoted(text)): empty name (doubled or trailing \",\")") }
            let name = try parse(item)
            if !names.contains(name) { names.append(name) }
        }
        return names
    }

    /// Splits a spec's `kind`, `vendor/class`: the vendor a domain-like name, the class a word;
    /// each starts with a letter, ends with a letter or digit, and holds letters, digits, _ . -.
    public static func parseKind(_ kind: some StringProtocol, what: String) throws(CDIError) -> (String, String) {
        let parts = kind.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, isValidKindPart(parts[0]), isValidKindPart(parts[1]) else {
            throw CDIError("\(what): the kind \(quoted(kind)) must be VENDOR/CLASS (each starting with a letter, then letters, digits, _ . -), as in nvidia.com/gpu")
        }
        return (String(parts[0]), String(parts[1]))
    }

    static func isValidKindPart(_ part: some StringProtocol) -> Bool {
        let bytes = Array(part.utf8)
        guard let first = bytes.first, let last = bytes.last, isLetter(first), isLetter(last) || isDigit(last) else {
            return false
        }
        return bytes.allSatisfy { isLetter($0) || isDigit($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    /// A device's name within its spec: letters, digits, _ . : - (a MIG device is `0:1`), starting
    /// and ending with a letter or digit.
    public static func isValidDeviceName(_ name: some StringProtocol) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, let last = bytes.last, isLetter(first) || isDigit(first),
              isLetter(last) || isDigit(last), bytes.count <= 253 else { return false }
        return bytes.allSatisfy {
            isLetter($0) || isDigit($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: ":")
                || $0 == UInt8(ascii: "-")
        }
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    private static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

    /// The GPUs Slurm gave the job as devices of `kind` (the site's `cdiSlurmGpuKind`): the indices
    /// (or UUIDs) in `SLURM_JOB_GPUS`, else `SLURM_STEP_GPUS`, each a device name; nil when Slurm
    /// names none. An entry that is not a valid device name is skipped.
    public static func slurmGPUs(kind: String, environment: [String: String]) -> [CDIDeviceName]? {
        guard let (vendor, deviceClass) = try? parseKind(kind, what: "cdiSlurmGpuKind") else { return nil }
        for variable in ["SLURM_JOB_GPUS", "SLURM_STEP_GPUS"] {
            guard let value = environment[variable], !value.isEmpty else { continue }
            let names = value.split(separator: ",").map { String($0.trimmingSpaces()) }.filter(isValidDeviceName)
                .map { CDIDeviceName(vendor: vendor, deviceClass: deviceClass, name: $0) }
            return names.isEmpty ? nil : names
        }
        return nil
    }
}

extension CDIDeviceName {
    /// The devices a job gets where the site names the CDI kind of the GPUs Slurm schedules
    /// (`cdiSlurmGpuKind`): of that kind only the job's own (`slurmGPUs`, nil for none), which
    /// `all` stands for; another kind's devices as asked. Then the job's GPUs not asked for.
    public static func restricted(_ requested: [CDIDeviceName], slurmGPUs: [CDIDeviceName]?,
                                  kind: String) throws(CDIError) -> [CDIDeviceName] {
        var result: [CDIDeviceName] = []
        let owned = slurmGPUs ?? []
        for name in requested {
            guard name.kind == kind else {
                result.append(name)
                continue
            }
            if name.name == all {
                result += owned.filter { !result.contains($0) }
            } else if owned.contains(name) {
                if !result.contains(name) { result.append(name) }
            } else {
                let given = owned.isEmpty ? "none" : owned.map(\.name).joined(separator: ",")
                throw CDIError("device \(name): Slurm gave this job other GPUs (\(given)); ask for GPUs with --gres or --gpus, and they are added without --device")
            }
        }
        return result + owned.filter { !result.contains($0) }
    }
}

/// A CDI spec or device name that cannot be used; the message names it and says why.
public struct CDIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

extension Substring {
    /// Without the spaces at either end.
    public func trimmingSpaces() -> Substring {
        var text = self
        while text.first == " " { text = text.dropFirst() }
        while text.last == " " { text = text.dropLast() }
        return text
    }
}
