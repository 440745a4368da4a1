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
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
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
        // GGUF v3 reader: header, metadata, tensor infos (memory-mapped).
        .target(name: "GGUF"),
        // Dequantisation (bit-exact with ggml) and SIMD matrix-vector kernels.
        .target(name: "Kernels"),
        // Reference engine: tokenizers, model forward passes, KV cache, generation, attention probes.
        .target(
            name: "Engine",
            dependencies: ["GGUF", "Kernels", "SeededRandom", .product(name: "HeapModule", package: "swift-collections")],
            linkerSettings: [.linkedLibrary("m", .when(platforms: [.linux]))]
        ),
        // GPU and model catalogues, vLLM memory math, roofline cost model.
        .target(name: "Hardware", dependencies: ["GGUF"]),
        // Discrete-event serving simulator: workloads, scheduler, paged KV, compression, metrics.
        .target(
            name: "Simulator",
            dependencies: [
                "Hardware", "SeededRandom",
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // Commands live in a library so tests can parse and run them.
        .target(
            name: "CKVCommands",
            dependencies: [
                "TraceFormat", "ZstdModule", "SeededRandom", "GGUF", "Hardware", "Simulator", "Engine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "ckv-sim", dependencies: ["CKVCommands"]),

        .testTarget(name: "ZstdModuleTests", dependencies: ["ZstdModule"]),
        .testTarget(name: "TraceFormatTests", dependencies: ["TraceFormat"]),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF"]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels"]),
        .testTarget(name: "HardwareTests", dependencies: ["Hardware", "GGUF"]),
        .testTarget(name: "SimulatorTests", dependencies: ["Simulator", "Hardware"]),
        .testTarget(name: "CKVCommandsTests", dependencies: ["CKVCommands", "TraceFormat", "ckv-sim"]),
    ]
)
