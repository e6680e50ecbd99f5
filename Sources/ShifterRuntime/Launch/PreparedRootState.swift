import ShifterCore

/// What a per-job root was built for, recorded by the prolog beside the root. `shifter` enters a
/// prepared root only when the record is root-owned and matches the caller and the request.
public struct PreparedRootState: Sendable, Equatable {
    public var jobID: UInt32
    public var uid: UInt32
    public var gid: UInt32
    /// The image id (`sha256:HEX`) or the directory of a `local:` image.
    public var image: String
    /// Canonical forms of the volumes, in order.
    public var volumes: [String]
    /// Names of the modules loaded.
    public var modules: [String]
    /// The site's OpenSSH (`sshPath`) where the job has an sshd in the root (`--ccm`): its `bin`
    /// ends the tasks' `PATH`, so `ssh NODE` works in images without an ssh of their own.
    public var sshPath: String?
    /// The CDI devices the job asked for (`--device`), their variables (`NAME=VALUE`, set in every
    /// task as `--env` would) and the groups their specs add to the user's.
    public var devices: [String] = []
    public var deviceEnvironment: [String] = []
    public var additionalGroups: [UInt32] = []
    /// The devices' `poststop` hooks, which the epilog runs before it removes the root.
    public var stopHooks: [CDIHook] = []
    /// The image's settings for the command (`Env`, `Entrypoint`, `Cmd`, `WorkingDir`), where the
    /// job is entered through its namespaces: `shifter` then runs as the user, who may not read a
    /// private image's record.
    public var imageSettings: ImageMetadata?

    public init(jobID: UInt32, uid: UInt32, gid: UInt32, image: String, volumes: [String], modules: [String],
                sshPath: String? = nil) {
        self.sshPath = sshPath
        self.jobID = jobID
        self.uid = uid
        self.gid = gid
        self.image = image
        self.volumes = volumes
        self.modules = modules
    }

    /// Decodes a record; nil when it is not one.
    public static func decode(_ bytes: [UInt8]) -> PreparedRootState? {
        do throws(JSONError) {
            let record = try JSONRecord(JSONValue.parse(bytes))
            guard let jobID = try record.uint32("jobID"), let uid = try record.uint32("uid"),
                  let gid = try record.uint32("gid"), let image = try record.string("image"),
                  let volumes = try record.strings("volumes"), let modules = try record.strings("modules") else {
                return nil
            }
            var state = PreparedRootState(jobID: jobID, uid: uid, gid: gid, image: image, volumes: volumes, modules: modules,
                                          sshPath: try record.string("sshPath"))
            state.devices = try record.strings("devices") ?? []
            state.deviceEnvironment = try record.strings("deviceEnvironment") ?? []
            state.additionalGroups = try record.uint32s("additionalGroups") ?? []
            for value in try record.values("stopHooks") ?? [] {
                guard let hook = try? CDIHook.decode(value, source: "the job's record") else { return nil }
                state.stopHooks.append(hook)
            }
            if let env = try record.strings("imageEnv") {
                var settings = ImageMetadata(digest: "", manifestDigest: "", source: "")
                settings.env = env
                settings.entrypoint = try record.strings("imageEntrypoint")
                settings.cmd = try record.strings("imageCmd")
                settings.workdir = try record.string("imageWorkdir")
                state.imageSettings = settings
            }
            return state
        } catch {
            return nil
        }
    }

    /// The record as JSON, keys sorted.
    public func encoded() -> [UInt8] {
        var members: [String: JSONValue] = [
            "jobID": .number(jobID), "uid": .number(uid), "gid": .number(gid), "image": .string(image),
            "volumes": .strings(volumes), "modules": .strings(modules),
        ]
        if let sshPath { members["sshPath"] = .string(sshPath) }
        if !devices.isEmpty {
            members["devices"] = .strings(devices)
            members["deviceEnvironment"] = .strings(deviceEnvironment)
            members["additionalGroups"] = .array(additionalGroups.map(JSONValue.number))
        }
        if !stopHooks.isEmpty { members["stopHooks"] = .array(stopHooks.map(\.jsonValue)) }
        if let imageSettings {
            members["imageEnv"] = .strings(imageSettings.env)
            if let entrypoint = imageSettings.entrypoint { members["imageEntrypoint"] = .strings(entrypoint) }
            if let cmd = imageSettings.cmd { members["imageCmd"] = .strings(cmd) }
            if let workdir = imageSettings.workdir { members["imageWorkdir"] = .string(workdir) }
        }
        return JSONValue.object(members).encoded()
    }

    /// Why this root cannot serve a request, or nil when it can. Volumes not given on the command
    /// line (nil) match whatever the job was prepared with.
    public func mismatch(uid: UInt32, image: String, volumes: [String]?, modules: [String]?) -> String? {
        if uid != self.uid { return "it belongs to uid \(self.uid)" }
        if image != self.image { return "it was prepared for image \(self.image)" }
        if let volumes, volumes != self.volumes { return "it was prepared with other volumes" }
        if let modules, modules != self.modules { return "it was prepared with other modules" }
        return nil
    }
}
