import ShifterCore

/// An image reference as the user typed it, split into the TYPE and TAG path parts the gateway
/// takes. A Docker name without a registry is sent without one, so the gateway applies its own
/// default registry (which may not be Docker Hub); the text is still checked against the image
/// grammar here, so a bad name fails before any request.
public struct GatewayImageName: Sendable, Equatable {
    /// `docker` or `custom`.
    public var type: String
    /// The reference without its type: as typed for Docker, canonical for custom images.
    public var tag: String
    /// The registry host the name gives, or nil when the gateway's default registry applies.
    public var registry: String?

    /// A name from its parts.
    public init(type: String, tag: String, registry: String? = nil) {
        self.type = type
        self.tag = tag
        self.registry = registry
    }

    /// Splits `text` (`[TYPE:]NAME`); `defaultType` applies without a prefix. Only `docker` and
    /// `custom` images live at the gateway.
    public static func parse(_ text: String, defaultType: ImageType = .docker) throws(ImageReferenceError) -> GatewayImageName {
        let reference = try ImageReference.parse(text, defaultType: defaultType)
        switch reference.type {
        case .docker:
            let prefix = ImageType.docker.rawValue + ":"
            let body = text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : text
            return GatewayImageName(type: "docker", tag: body, registry: namesRegistry(body) ? reference.registry : nil)
        case .custom:
            return GatewayImageName(type: "custom", tag: GatewayClient.imageParts(of: reference).tag)
        case .id, .local:
            throw ImageReferenceError(input: text, reason: "the image gateway keeps docker and custom images, not \(reference.type.rawValue): references")
        }
    }

    /// Whether a Docker name starts with a registry host, by the rule the image grammar uses: a
    /// first part with `.` or `:`, or `localhost`, followed by more parts.
    static func namesRegistry(_ body: String) -> Bool {
        let parts = body.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let first = parts.first else { return false }
        return first.contains(".") || first.contains(":") || first == "localhost"
    }

    /// `TYPE:TAG`, as the gateway's records name images.
    public var description: String { type + ":" + tag }
}
