/// Which site modules a user asked for with `--module` or `SHIFTER_MODULE`.
public enum ModuleRequest: Hashable, Sendable {
    /// Nothing was asked for: the site's `defaultModules`.
    case siteDefault
    /// `none`: no modules, not even the defaults.
    case none
    /// These modules, in this order.
    case named([String])

    /// Parses `a,b,c` or `none`.
    public static func parse(_ text: String) throws(ModuleSelectionError) -> ModuleRequest {
        if text == "none" { return .none }
        if text.isEmpty { throw ModuleSelectionError(input: text, reason: "no module named; use \"none\" for no modules") }
        var names: [String] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            if part == "none" {
                throw ModuleSelectionError(input: text, reason: "\"none\" cannot be combined with other modules")
            }
            guard SiteModule.isValidName(part) else {
                throw ModuleSelectionError(
                    input: text,
                    reason: part.isEmpty
                        ? "empty module name (doubled or trailing \",\")"
                        : "module name \(quoted(part)) may only use letters, digits, \"_\" and \"-\"")
            }
            if !names.contains(String(part)) { names.append(String(part)) }
        }
        return .named(names)
    }

    /// The request as `--module` takes it; `siteDefault` has no text form and gives `nil`.
    public var canonical: String? {
        switch self {
        case .siteDefault: return nil
        case .none: return "none"
        case .named(let names): return names.joined(separator: ",")
        }
    }
}

extension SiteConfig {
    /// The modules to load for `request`, in request order.
    ///
    /// A named module must exist, be enabled and not conflict with another selected module.
    /// Disabled default modules are skipped, since the administrator turned them off on purpose.
    public func selectModules(_ request: ModuleRequest) throws(ModuleSelectionError) -> [SiteModule] {
        let selected: [SiteModule]
        switch request {
        case .none:
            return []
        case .siteDefault:
            selected = defaultModules.compactMap { modules[$0] }.filter(\.enabled)
        case .named(let names):
            let input = names.joined(separator: ",")
            var found: [SiteModule] = []
            for name in names {
                guard let module = modules[name] else {
                    let defined = modules.keys.sorted().joined(separator: ", ")
                    throw ModuleSelectionError(
                        input: input,
                        reason: "module \(quoted(name)) is not defined at this site (defined: \(defined.isEmpty ? "none" : defined))")
                }
                guard module.enabled else {
                    throw ModuleSelectionError(input: input, reason: "module \(quoted(name)) is disabled at this site")
                }
                if !found.contains(where: { $0.name == name }) { found.append(module) }
            }
            selected = found
        }
        for module in selected {
            for other in selected where other.name != module.name && (module.conflicts.contains(other.name) || other.conflicts.contains(module.name)) {
                throw ModuleSelectionError(
                    input: selected.map(\.name).joined(separator: ","),
                    reason: "modules \(quoted(module.name)) and \(quoted(other.name)) cannot be used together")
            }
        }
        return selected
    }
}

/// A module request that cannot be honoured.
public struct ModuleSelectionError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The module list as given.
    public var input: String
    /// What is wrong with it.
    public var reason: String

    /// Creates an error for `input` that failed for `reason`.
    public init(input: String, reason: String) {
        self.input = input
        self.reason = reason
    }

    /// One line: `modules "mpich,gpu": module "gpu" is disabled at this site`.
    public var description: String { "modules \(quoted(input)): \(reason)" }
}
