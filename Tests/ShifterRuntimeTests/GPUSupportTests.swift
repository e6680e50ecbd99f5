import ShifterCore
import ShifterSystem
import Testing
@testable import ShifterRuntime

#if canImport(Glibc)
import Glibc
#endif

/// A fake NVIDIA driver tree in a temporary directory: libraries (with the driver's symlinks),
/// tools and device nodes (plain files stand in for them).
private final class FakeDriver {
    let root: String

    init() throws {
        var template = Array("/tmp/shifter-gpu-test.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw RuntimeError("mkdtemp failed") }
        root = String(cString: made)
        for directory in ["lib64", "bin", "dev", "other"] { try FileSystem.makeDirectory(root + "/" + directory) }
        for file in ["lib64/libcuda.so.535.104.05", "lib64/libnvidia-ml.so.535.104.05",
                     "lib64/libnvidia-ptxjitcompiler.so.535.104.05", "lib64/libz.so.1", "bin/nvidia-smi",
                     "dev/nvidia0", "dev/nvidia1", "dev/nvidia2", "dev/nvidia3", "dev/nvidiactl", "dev/nvidia-uvm",
                     "dev/null"] {
            try FileSystem.writeFile(root + "/" + file, [])
        }
        try FileSystem.makeSymlink(root + "/lib64/libcuda.so.1", pointingTo: "libcuda.so.535.104.05")
        try FileSystem.makeSymlink(root + "/lib64/libnvidia-ml.so.1", pointingTo: "libnvidia-ml.so.535.104.05")
    }

    func discover(_ environment: [String: String]) throws -> GPUSetup {
        try GPUSetup.discover(libraryDirectories: [root + "/lib64", root + "/other"], toolDirectories: [root + "/bin"],
                              deviceDirectory: root + "/dev", environment: environment)
    }

    deinit { _ = try? FileSystem.removeTree(root) }
}

@Suite struct GPUSupportTests {
    @Test func findsTheDriverLibrariesAndToolsButNothingElse() throws {
        let driver = try FakeDriver()
        let setup = try driver.discover([:])
        #expect(setup.libraries.map { String($0.split(separator: "/").last ?? "") } == [
            "libcuda.so.1", "libcuda.so.535.104.05", "libnvidia-ml.so.1", "libnvidia-ml.so.535.104.05",
            "libnvidia-ptxjitcompiler.so.535.104.05",
        ])
        #expect(setup.tools == [driver.root + "/bin/nvidia-smi"])
        #expect(setup.hiddenDevices.isEmpty)
    }

    @Test(arguments: [
        (["SLURM_STEP_GPUS": "1,3"], ["/dev/nvidia0", "/dev/nvidia2"]),
        (["SLURM_JOB_GPUS": "0"], ["/dev/nvidia1", "/dev/nvidia2", "/dev/nvidia3"]),
        (["SLURM_STEP_GPUS": "2", "SLURM_JOB_GPUS": "1,2"], ["/dev/nvidia0", "/dev/nvidia1", "/dev/nvidia3"]),
        (["SLURM_JOB_GPUS": "0,1,2,3"], []),
        (["SLURM_JOB_GPUS": "GPU-8a1b,GPU-77c2"], []),
        (["SLURM_STEP_GPUS": ""], []),
        (["CUDA_VISIBLE_DEVICES": "0"], []),
        ([:], []),
    ])
    func hidesOnlyTheGPUsTheJobMayNotUse(environment: [String: String], hidden: [String]) throws {
        let driver = try FakeDriver()
        #expect(try driver.discover(environment).hiddenDevices == hidden)
    }

    @Test func refusesANodeWithoutTheDriver() throws {
        let driver = try FakeDriver()
        #expect(throws: RuntimeError.self) {
            try GPUSetup.discover(libraryDirectories: [driver.root + "/other"], toolDirectories: [],
                                  deviceDirectory: driver.root + "/dev", environment: [:])
        }
    }

    @Test func driverLibraryNames() {
        #expect(GPUSetup.isDriverLibrary("libcuda.so.1"))
        #expect(GPUSetup.isDriverLibrary("libnvidia-ml.so.535.104.05"))
        #expect(GPUSetup.isDriverLibrary("libEGL_nvidia.so.0"))
        #expect(!GPUSetup.isDriverLibrary("libcudart.so.12"))   // the CUDA runtime belongs to the image
        #expect(!GPUSetup.isDriverLibrary("libnvidia-ml.txt"))
        #expect(!GPUSetup.isDriverLibrary("libz.so.1"))
    }

    @Test func gpuModuleAddsTheDriverDirectoriesToTheSearchPaths() throws {
        let plain = ContainerPlanner.moduleEnvironments([SiteModule(name: "mpich")])
        #expect(plain.map(\.name) == ["mpich"])
        let withGPU = ContainerPlanner.moduleEnvironments([SiteModule(name: "gpu")])
        let environment = ContainerEnvironment.merged(host: ["PATH=/usr/bin", "LD_LIBRARY_PATH=/lib"], modules: withGPU)
        #expect(environment["PATH"] == "/opt/udiImage/modules/gpu/bin:/usr/bin")
        #expect(environment["LD_LIBRARY_PATH"] == "/opt/udiImage/modules/gpu/lib64:/lib")
    }

    @Test func planPutsTheGPUAfterTheSiteMounts() throws {
        let config = try SiteConfig.parse("udiMount=/u\nloopMount=/l\nimagePath=/i\nsiteFs=/home\n", source: "t").config
        let setup = GPUSetup(libraries: ["/lib/libcuda.so.1"], tools: [], hiddenDevices: ["/dev/nvidia1"])
        let request = ContainerRequest(config: config, image: .squashfs("/i/x.squashfs"),
                                       metadata: ImageMetadata(digest: "sha256:" + String(repeating: "b", count: 64)),
                                       user: ContainerUser(uid: 1, gid: 1, groups: [], name: "u", home: "/", shell: "/bin/sh"),
                                       volumes: [], modules: [], gpu: setup)
        let steps = ContainerPlanner.plan(request, layout: RootLayout(name: "t", udiMount: "/u", loopMount: "/l")).steps
        guard let gpuIndex = steps.firstIndex(of: .gpu(setup)),
              let homeIndex = steps.firstIndex(where: { if case .hostBind(_, "/home", _, _, _, _) = $0 { true } else { false } })
        else {
            Issue.record("plan lacks the GPU or /home step")
            return
        }
        #expect(homeIndex < gpuIndex)
    }
}
