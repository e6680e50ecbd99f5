import ShifterCore
import ShifterSystem

/// What the `gpu` module adds to a container: the NVIDIA driver's user-space libraries and tools
/// from the host, and only the GPU device nodes Slurm gave the job. The image cannot know the node's
/// driver version, so the driver always comes from the host; no NVIDIA container toolkit is needed.
public struct GPUSetup: Sendable, Equatable {
    /// Host paths of the driver libraries (symlinks included; each is bound under its own name).
    public var libraries: [String]
    /// Host paths of the driver tools (`nvidia-smi` and friends).
    public var tools: [String]
    /// GPU device nodes under `/dev` the job may not use, hidden in the container.
    public var hiddenDevices: [String]

    public init(libraries: [String], tools: [String], hiddenDevices: [String]) {
        self.libraries = libraries
        self.tools = tools
        self.hiddenDevices = hiddenDevices
    }

    /// The module name that turns GPU support on.
    public static let moduleName = "gpu"
    /// Where the libraries appear in the container.
    public static let libraryDirectory = ContainerPlanner.moduleDirectory + "/gpu/lib64"
    /// Where the tools appear in the container.
    public static let toolDirectory = ContainerPlanner.moduleDirectory + "/gpu/bin"

    /// Where driver libraries are looked for when the site names none.
    public static let defaultLibraryDirectories = [
        "/usr/local/nvidia/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib/aarch64-linux-gnu",
    ]
    /// Where driver tools are looked for.
    public static let defaultToolDirectories = ["/usr/local/nvidia/bin", "/usr/bin"]
    /// The driver's tools.
    public static let toolNames = ["nvidia-smi", "nvidia-debugdump", "nvidia-cuda-mps-control", "nvidia-cuda-mps-server"]

    /// True for a file name the NVIDIA driver ships as a user-space library.
    public static func isDriverLibrary(_ name: String) -> Bool {
        guard name.containsBytes(".so") else { return false }
        let prefixes = ["libcuda.so", "libcudadebugger.so", "libnvidia-", "libnvcuvid.so", "libnvoptix.so",
                        "libGLX_nvidia.so", "libEGL_nvidia.so", "libGLESv1_CM_nvidia.so", "libGLESv2_nvidia.so"]
        return prefixes.contains { name.hasPrefix($0) }
    }

    /// The GPU indices the job may use, from Slurm's GPU binding (`SLURM_STEP_GPUS`, else
    /// `SLURM_JOB_GPUS`: device minor numbers); nil when nothing restricts them.
    /// `CUDA_VISIBLE_DEVICES` is not used: under Slurm it counts from 0 within the job's GPUs and
    /// follows CUDA's order, not the device numbers. Hiding nodes is a convenience that keeps
    /// programs from trying GPUs that are not theirs; the job's device cgroup is what enforces it.
    public static func allowedIndices(environment: [String: String]) -> Set<Int>? {
        for name in ["SLURM_STEP_GPUS", "SLURM_JOB_GPUS"] {
            guard let value = environment[name], !value.isEmpty else { continue }
            // UUIDs (GPU-...) cannot be mapped to device nodes without the driver: do not restrict.
            let indices = value.split(separator: ",").map { Int($0.trimmingSpaces()) }
            if indices.contains(where: { $0 == nil }) { return nil }
            return Set(indices.compactMap { $0 })
        }
        return nil
    }

    /// Chooses the device nodes to hide: every `/dev/nvidiaN` whose N is not allowed. Control
    /// nodes (`nvidiactl`, `nvidia-uvm`, `nvidia-uvm-tools`, `nvidia-modeset`) stay.
    public static func hiddenDevices(deviceNames: [String], allowed: Set<Int>?) -> [String] {
        guard let allowed else { return [] }
        return deviceNames.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("nvidia"), let index = Int(name.dropFirst(6)) else { return nil }
            return allowed.contains(index) ? nil : (index, "/dev/" + name)
        }.sorted { $0.0 < $1.0 }.map(\.1)
    }

    /// Finds the driver on this node: libraries in `libraryDirectories`, tools in
    /// `toolDirectories`, device nodes in `deviceDirectory`. Missing directories are skipped.
    public static func discover(libraryDirectories: [String] = defaultLibraryDirectories,
                                toolDirectories: [String] = defaultToolDirectories,
                                deviceDirectory: String = "/dev",
                                environment: [String: String]) throws(RuntimeError) -> GPUSetup {
        var seen = Set<String>()
        var libraries: [String] = []
        for directory in libraryDirectories {
            for name in ((try? FileSystem.directoryEntries(directory)) ?? []).sorted()
            where isDriverLibrary(name) && !seen.contains(name) {
                seen.insert(name)
                libraries.append(directory + "/" + name)
            }
        }
        guard libraries.contains(where: { $0.hasSuffix("/libcuda.so.1") || $0.containsBytes("/libcuda.so.") }) else {
            throw RuntimeError("module gpu: no NVIDIA driver library (libcuda.so.1) in \(libraryDirectories.joined(separator: ", ")); is the driver installed on this node?")
        }
        var tools: [String] = []
        for name in toolNames {
            if let directory = toolDirectories.first(where: { FileSystem.exists($0 + "/" + name) }) {
                tools.append(directory + "/" + name)
            }
        }
        let devices = (try? FileSystem.directoryEntries(deviceDirectory)) ?? []
        return GPUSetup(libraries: libraries, tools: tools,
                        hiddenDevices: hiddenDevices(deviceNames: devices, allowed: allowedIndices(environment: environment)))
    }

    /// The variables that make the libraries and tools found first.
    public var environment: SiteEnvironment {
        SiteEnvironment(prepend: [EnvironmentAssignment(name: "LD_LIBRARY_PATH", value: Self.libraryDirectory),
                                  EnvironmentAssignment(name: "PATH", value: Self.toolDirectory)])
    }
}
