/// Where an image store (`imagePath`) keeps each image: the squashfs file and its metadata, named
/// by the image id's hex digits, and a tag index that maps a `docker:` or `custom:` reference to
/// the image id it was last pulled as. The runtime only reads it; the importer writes it.
public struct ImageStoreLayout: Sendable, Equatable {
    /// The store directory.
    public var root: String

    /// A layout for the store directory `root`.
    public init(root: String) {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    /// The 64 lowercase hex digits of a `sha256:HEX` or bare `HEX` image id, or nil if it is not one.
    public static func hexDigits(of digest: String) -> String? {
        let hex = digest.hasPrefix("sha256:") ? String(digest.dropFirst(7)) : digest
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            return nil
        }
        return hex
    }

    /// `<root>/<hex>.squashfs`, or nil for a malformed image id.
    public func imageFile(digest: String) -> String? {
        Self.hexDigits(of: digest).map { "\(root)/\($0).squashfs" }
    }

    /// `<root>/<hex>.meta.json`, or nil for a malformed image id.
    public func metadataFile(digest: String) -> String? {
        Self.hexDigits(of: digest).map { "\(root)/\($0).meta.json" }
    }

    /// `<root>/<hex>.access.json`, or nil for a malformed image id: a private image's access list
    /// alone, readable by every user, so that job submission (which runs as the user) can check it
    /// while the full record (`.meta.json`: environment, entrypoint, labels, source) stays root's.
    /// Public images have none.
    public func accessFile(digest: String) -> String? {
        Self.hexDigits(of: digest).map { "\(root)/\($0).access.json" }
    }

    /// The directory of the tag index.
    public var tagDirectory: String { root + "/tags" }

    /// The tag-index file for a `docker:` or `custom:` reference: its canonical form with `%`, `/`,
    /// `:` and `@` percent-encoded, so every reference has exactly one flat file name. The file holds
    /// the image id (`sha256:HEX`) and a newline. Other types have no tag entry.
    public func tagFile(for reference: ImageReference) -> String? {
        guard reference.type == .docker || reference.type == .custom else { return nil }
        var name = ""
        for character in reference.canonical.unicodeScalars {
            switch character {
            case "%": name += "%25"
            case "/": name += "%2F"
            case ":": name += "%3A"
            case "@": name += "%40"
            default: name.unicodeScalars.append(character)
            }
        }
        return tagDirectory + "/" + name
    }

    /// Reads the image id out of a tag-index file's text; nil when it does not hold one.
    public static func digest(fromTagFile text: String) -> String? {
        let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        return hexDigits(of: line).map { "sha256:" + $0 }
    }
}
