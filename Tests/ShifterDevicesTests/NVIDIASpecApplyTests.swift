import Glibc
import Testing

@testable import ShifterCore
@testable import ShifterDevices
@testable import ShifterRuntime
import ShifterSystem

/// NVIDIA's spec, as `nvidia-ctk cdi generate` writes it, applied to a root with a stand-in driver:
/// its mounts bound (from fake files where the spec names the driver's), then its hooks done by
/// Shifter in the spec's order.
@Suite("NVIDIA's CDI spec applied to a root, its hooks done natively")
struct NVIDIASpecApplyTests {
    @Test("the driver library is bound, libcuda.so links to it, CUDA compat and the linker cache are set up")
    func apply() throws {
        try #require(geteuid() == 0, "needs root to bind files into a root")
        try #require(access("/usr/bin/gcc", X_OK) == 0, "needs gcc to make a stand-in libcuda with a soname")
        var template = Array("/tmp/cdi-apply-XXXXXX".utf8CString)
        let work = String(cString: try #require(mkdtemp(&template)))
        let layout = RootLayout(name: "job-1", udiMount: work, loopMount: work + "/loop")
        var bound: [String] = []
        defer {
            for path in bound.reversed() { umount2(path, Int32(MNT_DETACH)) }
            _ = system("rm -rf '\(work)'")
        }
        // The node: a driver library with libcuda's soname and a socket stand-in.
        try FileSystem.makeDirectories(work + "/driver")
        try FileSystem.writeFile(work + "/driver/cuda.c", Array("int cuInit(unsigned f) { return (int)f; }\n".utf8))
        try #require(system("gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o \(work)/driver/libcuda.so.999.88.77 \(work)/driver/cuda.c") == 0)
        try FileSystem.writeFile(work + "/driver/socket", [])
        // The image: a library directory, and CUDA compat libraries newer than the driver.
        try FileSystem.makeDirectories(layout.root + "/lib/x86_64-linux-gnu")
        try FileSystem.makeDirectories(layout.root + "/usr/local/cuda/compat")
        try FileSystem.writeFile(layout.root + "/usr/local/cuda/compat/libcuda.so.1000.10.1", [])

        let spec = try CDISpec.decode(try YAMLDocument.parse(try nvidiaGenerated()), source: "nvidia.yaml")
        let fakes = ["/lib/x86_64-linux-gnu/libcuda.so.999.88.77": work + "/driver/libcuda.so.999.88.77",
                     "/run/nvidia-persistenced/socket": work + "/driver/socket"]
        for var mount in spec.edits.mounts {
            mount.hostPath = try #require(fakes[mount.hostPath], "the fixture mounts \(mount.hostPath)")
            try CDIDevices.bindMount(mount, layout: layout)
            bound.append(layout.root + mount.containerPath)
        }
        var warnings: [String] = []
        for (index, hook) in spec.edits.hooks.enumerated() {
            try CDIHooks.run(hook, index: index, layout: layout, warn: { warnings.append($0) })
        }

        let library = layout.root + "/lib/x86_64-linux-gnu/libcuda.so.999.88.77"
        #expect(try FileSystem.status(library).size == FileSystem.status(work + "/driver/libcuda.so.999.88.77").size)
        var target = [CChar](repeating: 0, count: 256)
        #expect(readlink(layout.root + "/lib/x86_64-linux-gnu/libcuda.so", &target, 255) > 0)
        #expect(String(cString: target) == "libcuda.so.1")
        #expect(try FileSystem.readFile(layout.root + "/etc/ld.so.conf.d/00-compat-1.conf") == Array("/usr/local/cuda/compat\n".utf8))
        #expect(try FileSystem.readFile(layout.root + "/etc/ld.so.conf.d/00-shifter-cdi-2.conf")
            == Array("/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/vdpau\n".utf8))
        // The root's own linker cache, made by the node's ldconfig, finds libcuda.so.1.
        let listing = try ProgramRunner.run("/sbin/ldconfig", ["-p", "-C", layout.root + "/etc/ld.so.cache"])
        #expect(listing.output.contains("libcuda.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libcuda.so.1"), "\(listing.output)")
        // No NVIDIA driver on this node: nothing to show in /proc, and no warning either.
        #expect(warnings.isEmpty)
    }
}
