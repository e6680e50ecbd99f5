import Foundation
import ShifterCore
import Testing
@testable import ShifterRuntime

/// `shifter`'s private root and the prolog's job root are planned from one request, made by
/// `ContainerRequest.onThisNode`: the image file or directory, the site's /etc files, and the GPU
/// driver only where the `gpu` module is loaded.
@Suite struct NodeContainerRequestTests {
    private static let user = ContainerUser(uid: 1000, gid: 100, groups: [100], name: "alice", home: "/home/alice",
                                            shell: "/bin/sh", groupNames: [100: "users"])
    private static let driver = GPUSetup(libraries: ["/usr/lib/libcuda.so.1"], tools: [], hiddenDevices: ["/dev/nvidia1"])

    private static func config(etcPath: String? = nil) throws -> SiteConfig {
        try SiteConfig.parse("""
            udiMount=/var/udiMount
            loopMount=/var/udiLoopMount
            imagePath=/images
            \(etcPath.map { "etcPath=" + $0 } ?? "")
            """, source: "test").config
    }

    private static func image(file: String?, directory: String?) -> ResolvedImage {
        ResolvedImage(id: "sha256:" + String(repeating: "c", count: 64), imageFile: file, localDirectory: directory,
                      metadata: ImageMetadata(digest: "sha256:" + String(repeating: "c", count: 64)))
    }

    @Test(arguments: [
        ("/images/c.squashfs", nil, ImageSource.squashfs("/images/c.squashfs")),
        (nil, "/srv/rootfs", ImageSource.directory("/srv/rootfs")),
    ] as [(String?, String?, ImageSource)])
    func theImageIsItsFileOrItsDirectory(file: String?, directory: String?, expected: ImageSource) throws {
        let request = try ContainerRequest.onThisNode(
            config: try Self.config(), image: Self.image(file: file, directory: directory), user: Self.user,
            volumes: [], modules: [], gpuEnvironment: [:])
        #expect(request.image == expected)
        #expect(request.user == Self.user)
        #expect(request.siteEtcFiles.isEmpty)
        #expect(request.gpu == nil && request.ssh == nil)
    }

    @Test func theDriverIsLookedForOnlyWithTheGPUModuleAndWithTheJobsBinding() throws {
        var asked: [[String: String]] = []
        let find = { (environment: [String: String]) throws(RuntimeError) -> GPUSetup in
            asked.append(environment)
            return Self.driver
        }
        let config = try Self.config()
        let image = Self.image(file: "/images/c.squashfs", directory: nil)
        let without = try ContainerRequest.onThisNode(config: config, image: image, user: Self.user, volumes: [],
                                                      modules: [SiteModule(name: "mpich")],
                                                      gpuEnvironment: ["SLURM_JOB_GPUS": "0"], discoverGPU: find)
        #expect(without.gpu == nil)
        #expect(asked.isEmpty)
        let with = try ContainerRequest.onThisNode(config: config, image: image, user: Self.user, volumes: [],
                                                   modules: [SiteModule(name: GPUSetup.moduleName)],
                                                   gpuEnvironment: ["SLURM_JOB_GPUS": "0"], discoverGPU: find)
        #expect(with.gpu == Self.driver)
        #expect(asked == [["SLURM_JOB_GPUS": "0"]])
    }

    @Test func theSitesEtcFilesAreNamedAndAnUnreadableEtcPathStopsTheRequest() throws {
        let directory = NSTemporaryDirectory() + "/shifter-request-etc-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: directory + "/resolv.conf", contents: Data("nameserver 10.0.0.1\n".utf8))
        let image = Self.image(file: "/images/c.squashfs", directory: nil)
        let request = try ContainerRequest.onThisNode(config: try Self.config(etcPath: directory), image: image,
                                                      user: Self.user, volumes: [], modules: [], gpuEnvironment: [:])
        #expect(request.siteEtcFiles == ["resolv.conf"])
        #expect(throws: RuntimeError.self) {
            try ContainerRequest.onThisNode(config: try Self.config(etcPath: directory + "/absent"), image: image,
                                            user: Self.user, volumes: [], modules: [], gpuEnvironment: [:])
        }
    }
}
