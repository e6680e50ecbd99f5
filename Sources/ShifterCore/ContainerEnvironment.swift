/// The environment a container command starts with: ordered variables, later settings winning.
///
/// Variables keep the position where they were first set, so the result reads like the host
/// environment with the container's changes applied.
public struct ContainerEnvironment: Sendable, Equatable {
    private var order: [String] = []
    private var values: [String: String] = [:]

    /// An empty environment.
    public init() {}

    /// An environment from `NAME=VALUE` entries as in `environ`; entries without `=` or a name are skipped.
    ///
    /// Names are not held to the shell rule here: the host environment legitimately carries names
    /// such as bash's exported `BASH_FUNC_name%%`, and the container should see them unchanged.
    public init(entries: [String]) {
        for entry in entries {
            guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else { continue }
            set(String(entry[..<equals]), String(entry[entry.index(after: equals)...]))
        }
    }

    /// The entries of `executed` (the environment a program was executed with) whose names are
    /// missing from `remaining` (its `environ` at start, by name), the first of each name, in
    /// order: what the C library's secure mode removed from a setuid program's environment
    /// (`LD_LIBRARY_PATH`, `LD_PRELOAD`, `TMPDIR`, ...), for the user's command, which runs
    /// without privilege. Works on String keys alone: on a setuid start, a new generic type costs
    /// more than the comparison.
    public static func removedAtStart(executed: [String], remaining: [String: String]) -> [String] {
        var seen = remaining
        var removed: [String] = []
        for entry in executed {
            guard let equals = entry.utf8.firstIndex(of: UInt8(ascii: "=")), equals != entry.startIndex else { continue }
            let name = String(entry[..<equals])
            if seen.updateValue("", forKey: name) == nil { removed.append(entry) }
        }
        return removed
    }

    /// The PATH used for command lookup when the environment has none, as in Docker.
    public static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// Builds the environment in the order of SPEC section 3, later layers winning.
    ///
    /// Host environment (unless `clearHost`), then `shifter` (the `SHIFTER_*` variables the runtime
    /// sets), the image ENV, the `--env-file` lines, `--env`, each module's site variables in load
    /// order, and last the global site variables, so the administrator has the final word.
    public static func merged(
        host: [String], clearHost: Bool = false, shifter: [EnvironmentAssignment] = [], image: [String] = [],
        envFile: [EnvironmentAssignment] = [], commandLine: [EnvironmentAssignment] = [],
        modules: [SiteModule] = [], site: SiteEnvironment = SiteEnvironment()
    ) -> ContainerEnvironment {
        var environment = clearHost ? ContainerEnvironment() : ContainerEnvironment(entries: host)
        for assignment in shifter { environment.set(assignment.name, assignment.value) }
        environment.merge(ContainerEnvironment(entries: image))
        for assignment in envFile + commandLine { environment.set(assignment.name, assignment.value) }
        for module in modules { environment.apply(module.environment) }
        environment.apply(site)
        return environment
    }

    /// The value of `name`, or `nil`; assigning `nil` removes the variable.
    public subscript(name: String) -> String? {
        get { values[name] }
        set {
            if let newValue { set(name, newValue) } else { unset(name) }
        }
    }

    /// Sets `name` to `value`, keeping its position if it exists.
    public mutating func set(_ name: String, _ value: String) {
        if values.updateValue(value, forKey: name) == nil { order.append(name) }
    }

    /// Appends `value` to `name` with a `:`, or sets it when unset or empty.
    public mutating func append(_ name: String, _ value: String) {
        let existing = values[name] ?? ""
        set(name, existing.isEmpty ? value : existing + ":" + value)
    }

    /// Prepends `value` to `name` with a `:`, or sets it when unset or empty.
    public mutating func prepend(_ name: String, _ value: String) {
        let existing = values[name] ?? ""
        set(name, existing.isEmpty ? value : value + ":" + existing)
    }

    /// Removes `name`.
    public mutating func unset(_ name: String) {
        if values.removeValue(forKey: name) != nil { order.removeAll { $0 == name } }
    }

    /// Sets every variable of `other`, in its order.
    public mutating func merge(_ other: ContainerEnvironment) {
        for name in other.order {
            if let value = other.values[name] { set(name, value) }
        }
    }

    /// Applies site variables: `siteEnv`, then `siteEnvAppend`, `siteEnvPrepend`, `siteEnvUnset`.
    public mutating func apply(_ site: SiteEnvironment) {
        for assignment in site.assign { set(assignment.name, assignment.value) }
        for assignment in site.append { append(assignment.name, assignment.value) }
        for assignment in site.prepend { prepend(assignment.name, assignment.value) }
        for name in site.unset { unset(name) }
    }

    /// The variable names in order.
    public var names: [String] { order }

    /// The `NAME=VALUE` entries in order, as `execve` takes them.
    public var entries: [String] {
        order.compactMap { name in values[name].map { name + "=" + $0 } }
    }

    /// The number of variables.
    public var count: Int { order.count }
}
