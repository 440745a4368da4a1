// swift-tools-version: 6.1
//
// ckv-sim: plan KV-cache compression for long-context LLM serving.
// Module map (see Docs/architecture.md): one target per part of the design.
import PackageDescription

let package = Package(
    name: "ckv-sim",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "ckv-sim", targets: ["ckv-sim"]),
        .library(name: "TraceFormat", targets: ["TraceFormat"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // System libraries, bound through C modules.
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        // Seeded randomness shared by every subsystem (SplitMix64).
        .target(name: "SeededRandom"),
        // zstd binding: a thin safe wrapper, knows nothing about traces.
        .target(name: "ZstdModule", dependencies: ["CZstd"]),
        // The .ckvt trace file: header, typed records, checksummed zstd frames, index.
        .target(name: "TraceFormat", dependencies: ["ZstdModule", "CZlib"]),
        // Commands live in a library so tests can parse and run them.
        .target(
            name: "CKVCommands",
            dependencies: [
                "TraceFormat", "ZstdModule", "SeededRandom",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "ckv-sim", dependencies: ["CKVCommands"]),

        .testTarget(name: "ZstdModuleTests", dependencies: ["ZstdModule"]),
        .testTarget(name: "TraceFormatTests", dependencies: ["TraceFormat"]),
        .testTarget(name: "CKVCommandsTests", dependencies: ["CKVCommands", "TraceFormat", "ckv-sim"]),
    ]
)
