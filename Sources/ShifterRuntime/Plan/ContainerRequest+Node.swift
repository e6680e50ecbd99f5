import ShifterCore
import ShifterSystem

extension ContainerRequest {
    /// The request for a root of `image` on this node, made the same way by `shifter` for a
    /// private root and by the prolog for a job's: the image's squashfs file (or a `local:`
    /// image's directory), the names of the site's `etcPath` files, and the node's GPU driver
    /// where the `gpu` module is loaded, bound to the GPUs that `gpuEnvironment` (Slurm's
    /// `SLURM_JOB_GPUS`, `SLURM_STEP_GPUS`) allows. `user` comes with its account entries
    /// (`ContainerUser.withAccountEntries`). `discoverGPU` finds the driver; tests replace it.
    static func onThisNode(
        config: SiteConfig, image: ResolvedImage, user: ContainerUser, volumes: [VolumeSpec], modules: [SiteModule],
        gpuEnvironment: [String: String], ssh: SSHSetup? = nil,
        discoverGPU: ([String: String]) throws(RuntimeError) -> GPUSetup = { environment throws(RuntimeError) in
            try GPUSetup.discover(environment: environment)
        }
    ) throws(RuntimeError) -> ContainerRequest {
        let gpu = modules.contains(where: { $0.name == GPUSetup.moduleName }) ? try discoverGPU(gpuEnvironment) : nil
        // A resolved image has one or the other; the placeholder only keeps the type total.
        let source = image.imageFile.map(ImageSource.squashfs) ?? .directory(image.localDirectory ?? "/nonexistent")
        return ContainerRequest(config: config, image: source, metadata: image.metadata, user: user, volumes: volumes,
                                modules: modules, siteEtcFiles: try ContainerPlanner.siteEtcFileNames(config.etcPath),
                                gpu: gpu, ssh: ssh)
    }
}

extension ContainerUser {
    /// The user `uid` (primary group `gid`, supplementary `groups`) with its passwd `entry` and
    /// its groups' names from the system's user database: what a root's /etc/passwd and
    /// /etc/group need.
    static func withAccountEntries(uid: UInt32, gid: UInt32, groups: [UInt32],
                                   entry: (name: String, gid: UInt32, home: String, shell: String)) -> ContainerUser {
        var names: [UInt32: String] = [:]
        for id in [gid] + groups { names[id] = Credentials.groupName(gid: id) }
        return ContainerUser(uid: uid, gid: gid, groups: groups, name: entry.name, home: entry.home, shell: entry.shell,
                             groupNames: names)
    }
}
