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
        .target(name: "ShifterCore"),
        .target(name: "CShifterSys", cSettings: [.define("_GNU_SOURCE")]),
        .target(name: "ShifterSystem", dependencies: ["CShifterSys"]),
        .target(name: "ShifterRuntime", dependencies: ["ShifterCore", "ShifterSystem"]),
        .target(
            name: "ShifterABI",
            dependencies: ["ShifterRuntime"],
            // Slurm dlclose()s plugins; a Swift image must never be unloaded.
            linkerSettings: [.unsafeFlags(["-Xlinker", "-z", "-Xlinker", "nodelete"])]
        ),
        .executableTarget(name: "shifter-command", dependencies: ["ShifterRuntime"]),
        .executableTarget(
            name: "shifter-admin",
            dependencies: ["ShifterRuntime", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "CSquashfs", pkgConfig: "libsquashfs1", providers: [.apt(["libsquashfs-dev"])]),
        .systemLibrary(name: "CMunge", pkgConfig: "munge", providers: [.apt(["libmunge-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .target(name: "ShifterImage", dependencies: ["ShifterCore", "CCurl", "CArchive", "CSquashfs", "CCrypto"]),
        .executableTarget(
            name: "shifterimg",
            dependencies: ["ShifterImage", "ShifterGatewayClient", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // The gateway's REST client, for shifterimg: libcurl and libmunge only, no NIO.
        .target(name: "ShifterGatewayClient", dependencies: ["ShifterCore", "CCurl", "CMunge"]),
        .target(
            name: "ShifterGateway",
            dependencies: [
                "ShifterGatewayClient", "ShifterImage", "ShifterSystem", "CShifterSys", "CMunge", "CSQLite", "CCrypto",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
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
        .testTarget(name: "ShifterRuntimeTests", dependencies: ["ShifterRuntime", "ShifterSystem"]),
        .testTarget(name: "ShifterImageTests", dependencies: ["ShifterImage"]),
        .testTarget(name: "ShifterGatewayTests", dependencies: ["ShifterGateway", "ShifterGatewayClient"]),
    ],
    swiftLanguageModes: [.v6]
)
