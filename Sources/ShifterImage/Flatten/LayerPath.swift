/// One name inside a directory, kept as the raw bytes the layer gave it.
///
/// Names are bytes, not `String`s: a tar may carry names that are not valid UTF-8, and squashfs
/// orders directory entries by plain byte comparison (the kernel's lookup depends on that order).
struct PathComponent: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The name's bytes, never empty, never containing `/` or NUL.
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    init(_ text: String) {
        self.bytes = Array(text.utf8)
    }

    static func < (lhs: PathComponent, rhs: PathComponent) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    func hasPrefix(_ prefix: [UInt8]) -> Bool {
        bytes.count >= prefix.count && bytes[..<prefix.count].elementsEqual(prefix)
    }

    var description: String { displayQuoted(bytes) }
}

/// A path inside an image, relative to its root, checked so that it cannot leave the root.
///
/// Tar paths are normalised the way image tools agree on: `./` prefixes, doubled and trailing
/// slashes are dropped. A `..` component or a leading `/` is refused rather than normalised: a
/// layer that contains one was made by a broken or hostile tool, and guessing what it meant is how
/// extraction escapes happen.
struct LayerPath: Hashable, Sendable, CustomStringConvertible {
    /// The longest name a directory entry may have (Linux `NAME_MAX`).
    static let maximumNameLength = 255
    /// The longest path accepted (Linux `PATH_MAX`). No extraction tool can create a longer one, and
    /// without a bound a single pax header of a few hundred kilobytes nests directories deeply
    /// enough to exhaust the memory and stack of the import.
    static let maximumPathLength = 4096

    /// The components from the root down; empty for the root itself.
    let components: [PathComponent]

    init(components: [PathComponent]) {
        self.components = components
    }

    /// Why a tar path was refused.
    enum Problem: Error, Equatable {
        case empty
        case absolute
        case parentReference
        case nameTooLong
        case pathTooLong
        case containsNUL

        var reason: String {
            switch self {
            case .empty: return "path is empty"
            case .absolute: return "path is absolute"
            case .parentReference: return "path contains \"..\" and could leave the image root"
            case .nameTooLong: return "a path component is longer than \(LayerPath.maximumNameLength) bytes"
            case .pathTooLong: return "path is longer than \(LayerPath.maximumPathLength) bytes"
            case .containsNUL: return "path contains a NUL byte"
            }
        }
    }

    /// Parses a path from a tar header.
    static func parse(_ raw: [UInt8]) throws(Problem) -> LayerPath {
        if raw.isEmpty { throw .empty }
        if raw.first == UInt8(ascii: "/") { throw .absolute }
        if raw.contains(0) { throw .containsNUL }
        if raw.count > maximumPathLength { throw .pathTooLong }
        var components: [PathComponent] = []
        for part in raw.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            if part.count == 1 && part.first == UInt8(ascii: ".") { continue }
            if part.count == 2 && part.allSatisfy({ $0 == UInt8(ascii: ".") }) { throw .parentReference }
            if part.count > maximumNameLength { throw .nameTooLong }
            components.append(PathComponent(Array(part)))
        }
        return LayerPath(components: components)
    }

    /// Parses a path given as text, as tests and callers outside tar headers write them.
    static func parse(_ text: String) throws(Problem) -> LayerPath {
        try parse(Array(text.utf8))
    }

    var isRoot: Bool { components.isEmpty }

    var lastComponent: PathComponent? { components.last }

    /// The directory that holds this path; the root for a top-level name.
    var parent: LayerPath { LayerPath(components: Array(components.dropLast())) }

    /// The path as `/`-joined bytes, the key under which a layer's entries are remembered.
    var key: [UInt8] {
        var result: [UInt8] = []
        for (index, component) in components.enumerated() {
            if index > 0 { result.append(UInt8(ascii: "/")) }
            result.append(contentsOf: component.bytes)
        }
        return result
    }

    /// The keys of every proper ancestor below the root: `a`, `a/b` for `a/b/c`.
    var ancestorKeys: [[UInt8]] {
        var keys: [[UInt8]] = []
        var current: [UInt8] = []
        for component in components.dropLast() {
            if !current.isEmpty { current.append(UInt8(ascii: "/")) }
            current.append(contentsOf: component.bytes)
            keys.append(current)
        }
        return keys
    }

    var description: String { displayQuoted(key) }
}
