// swift-tools-version:6.1
import PackageDescription

// Layers, from the bottom up (see README "Source layout"):
//   ShifterCore     pure logic: references, config, volumes, metadata, environment. No syscalls.
//   CShifterSys     C shims for what Swift cannot reach (setresuid, prctl, loop ioctls).
//   ShifterSystem   thin wrappers over Linux calls; strong types, errno-carrying errors.
//   ShifterRuntime  plans and builds container roots, enters them, tears them down.
//   ShifterABI      the C ABI of include/shifter.h, built as libshifter.so.
//   ShifterImage    registry client, layer flattening into squashfs, the image store.
// Node-side products (libshifter.so, shifter) must link glibc and the C/C++ runtime only, so they
// never depend on ShifterImage or the system libraries it wraps.
// The node path's code (every `srun shifter` runs it) reaches the metadata of its generic types
// through accessor functions, not by mangled names that the runtime demangles on first use.
// Each function in a section of its own, so that the linker can place those a start runs side by
// side (Sources/shifter-command/startup.order).
let nodeStartup: [SwiftSetting] = [.unsafeFlags([
    "-Xfrontend", "-disable-concrete-type-metadata-mangled-name-accessors", "-Xfrontend", "-function-sections",
    "-Xfrontend", "-disable-implicit-string-processing-module-import", "-Xfrontend", "-disable-implicit-concurrency-module-import",
])]

let package = Package(
    name: "shifter",
    products: [
        .library(name: "shifter", type: .dynamic, targets: ["ShifterABI"]),
        // The setuid command is installed as `shifter`; its product has another name because the
        // library product already produces libshifter.so under the name "shifter".
        .executable(name: "shifter-command", targets: ["shifter-command"]),
        .executable(name: "shifterimg", targets: ["shifterimg"]),
        .executable(name: "shifter-imagegw", targets: ["shifter-imagegw"]),
        .executable(name: "shifter-admin", targets: ["shifter-admin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
        // Without the default traits: FullFoundation would link ICU's data into the gateway, and the
        // gateway reads its own configuration file rather than swift-configuration's.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
    ],
    targets: [
        .target(name: "ShifterCore", swiftSettings: nodeStartup),
        .target(name: "CShifterSys", cSettings: [.define("_GNU_SOURCE")]),
        .target(name: "ShifterSystem", dependencies: ["CShifterSys"], swiftSettings: nodeStartup),
        .target(name: "ShifterRuntime", dependencies: ["ShifterCore", "ShifterSystem"], swiftSettings: nodeStartup),
        // Device specs (CDI) are read by the prolog and at submission, in libshifter only: the setuid
        // command never links the YAML parser. libyaml is linked in statically, its symbols kept
        // inside: libshifter, loaded by slurmd, needs no library beyond the C and C++ runtimes.
        .systemLibrary(name: "CYAML", providers: [.apt(["libyaml-dev"])]),
        .target(
            name: "ShifterDevices", dependencies: ["ShifterCore", "ShifterSystem", "CYAML"],
            linkerSettings: [.unsafeFlags(["-Xlinker", "-l:libyaml.a", "-Xlinker", "--exclude-libs=libyaml.a"])]
        ),
        .systemLibrary(name: "CShifterABI"),
        .target(
            name: "ShifterABI",
            dependencies: ["ShifterCore", "ShifterSystem", "ShifterRuntime", "ShifterDevices", "CShifterABI"],
            // Slurm dlclose()s plugins; a Swift image must never be unloaded.
            linkerSettings: [.unsafeFlags(["-Xlinker", "-z", "-Xlinker", "nodelete"])]
        ),
        // The setuid command starts on every node for every task: linked statically (glibc and the
        // Swift runtime), it has no dynamic loader, no shared libraries to map and no relocations
        // to resolve by name before its first line, and it never loads a library named by the
        // caller's environment. static-pie keeps its own addresses random (ASLR).
        .executableTarget(
            name: "shifter-command",
            dependencies: ["ShifterRuntime"],
            exclude: ["startup.order"],
            swiftSettings: nodeStartup,
            linkerSettings: [.unsafeFlags([
                "-static-executable", "-use-ld=lld", "-Xclang-linker", "-static-pie",
                "-Xlinker", "--gc-sections", "-Xlinker", "-z", "-Xlinker", "now", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                // The functions entering a prepared root runs, together, so that a start faults in
                // a few pages of code instead of pages all over the binary.
                "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/Sources/shifter-command/startup.order",
                "-Xlinker", "--no-warn-symbol-ordering",
            ])]
        ),
        .executableTarget(
            name: "shifter-admin",
            dependencies: ["ShifterCore", "ShifterRuntime", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "CSquashfs", pkgConfig: "libsquashfs1", providers: [.apt(["libsquashfs-dev"])]),
        .systemLibrary(name: "CMunge", pkgConfig: "munge", providers: [.apt(["libmunge-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // gzip layers are inflated with ISA-L's igzip, on a thread of their own (Debian: libisal-dev).
        .target(name: "CGzipStream", linkerSettings: [.linkedLibrary("isal"), .linkedLibrary("pthread")]),
        .target(name: "ShifterImage", dependencies: ["ShifterCore", "CCurl", "CArchive", "CSquashfs", "CCrypto", "CGzipStream"]),
        .executableTarget(
            name: "shifterimg",
            dependencies: ["ShifterCore", "ShifterImage", "ShifterGatewayClient", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // The gateway's REST client, for shifterimg: libcurl and libmunge only, no NIO.
        .target(name: "ShifterGatewayClient", dependencies: ["ShifterCore", "CCurl", "CMunge"]),
        .target(
            name: "ShifterGateway",
            dependencies: [
                "ShifterCore", "ShifterGatewayClient", "ShifterImage", "ShifterSystem", "CMunge", "CSQLite", "CCrypto",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "shifter-imagegw",
            dependencies: [
                "ShifterGateway", "ShifterImage", .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .testTarget(
            name: "ShifterCoreTests",
            dependencies: ["ShifterCore", .product(name: "PropertyBased", package: "swift-property-based")]
        ),
        .testTarget(name: "ShifterSystemTests", dependencies: ["ShifterSystem"]),
        .testTarget(name: "ShifterDevicesTests", dependencies: ["ShifterCore", "ShifterDevices", "ShifterRuntime", "ShifterSystem"], exclude: ["Fixtures"]),
        .testTarget(name: "ShifterRuntimeTests", dependencies: ["ShifterCore", "ShifterRuntime", "ShifterSystem"]),
        .testTarget(name: "ShifterABITests", dependencies: ["ShifterABI", "CShifterABI", "ShifterCore", "ShifterRuntime"]),
        .testTarget(name: "ShifterImageTests", dependencies: ["ShifterCore", "ShifterImage", "CArchive", "CGzipStream"]),
        .testTarget(
            name: "ShifterGatewayTests",
            dependencies: [
                "ShifterCore", "ShifterGateway", "ShifterGatewayClient", "ShifterImage",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
