// swift-tools-version: 6.1
//
// ckv-sim: plan KV-cache compression for long-context LLM serving.
// Module map (see Docs/architecture.md): one target per part of the design.
import PackageDescription
import Foundation

// The engine's kernels are built for this machine's CPU: CKV_TARGET_CPU when set (e.g.
// "haswell" for AVX2 + FMA, "baseline" for a build that runs on any x86-64), else "haswell"
// when /proc/cpuinfo lists avx2 and fma (see Docs/engine.md). Only the root package may use
// unsafeFlags, which is what ckv-sim is.
func detectedCPU() -> String? {
    #if arch(x86_64) && os(Linux)
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let flags = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
    let set = Set(flags.split(separator: " ").map(String.init))
    return set.contains("avx2") && set.contains("fma") ? "haswell" : nil
    #else
    return nil
    #endif
}
let requestedCPU = Context.environment["CKV_TARGET_CPU"].flatMap { $0.isEmpty ? nil : $0 }
let targetCPU = requestedCPU == "baseline" ? nil : requestedCPU ?? detectedCPU()
// CKV_FMA: the target has fused multiply-add, so the kernels use `addingProduct` (on a baseline
// build it would become a software `fmaf` call, ~30× slower than a multiply and an add).
let cpuFlags: [SwiftSetting] = targetCPU.map { [.unsafeFlags(["-target-cpu", $0]), .define("CKV_FMA")] } ?? []
// The C kernels: the same CPU, and never a fused multiply-add the source does not write.
let cKernelFlags: [CSetting] = [.unsafeFlags(["-O3", "-ffp-contract=off"] + (targetCPU.map { ["-march=\($0)"] } ?? []))]

let package = Package(
    name: "ckv-sim",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ckv-sim", targets: ["ckv-sim"]),
        .library(name: "TraceFormat", targets: ["TraceFormat"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // System libraries, bound through C modules.
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        // Seeded randomness shared by every subsystem (SplitMix64).
        .target(name: "SeededRandom"),
        // Exact binary16 conversions that are fast on baseline x86-64 builds.
        .target(name: "HalfFloat"),
        // zstd binding: a thin safe wrapper, knows nothing about traces.
        .target(name: "ZstdModule", dependencies: ["CZstd"]),
        // The .ckvt trace file: header, typed records, checksummed zstd frames, index.
        .target(name: "TraceFormat", dependencies: ["ZstdModule", "CZlib", "HalfFloat"]),
        // Which layers of a model are global (the sliding-window pattern of each model family).
        .target(name: "ModelFamily"),
        // GGUF v3 reader: header, metadata, tensor infos (memory-mapped).
        .target(name: "GGUF", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // Dequantisation (bit-exact with ggml) and SIMD matrix-vector kernels.
        // Integer block products (AVX2 where the build targets it), bound as a C module.
        .target(name: "CKernels", cSettings: cKernelFlags),
        .target(name: "Kernels", dependencies: ["HalfFloat", "CKernels"], swiftSettings: cpuFlags,
                linkerSettings: [.linkedLibrary("m", .when(platforms: [.linux]))]),
        // Reference engine: tokenizers, model forward passes, KV cache, generation, attention probes.
        .target(
            name: "Engine",
            dependencies: ["GGUF", "ModelFamily", "Kernels", "CKernels", "HalfFloat", "SeededRandom", "Policies", .product(name: "HeapModule", package: "swift-collections")],
            swiftSettings: cpuFlags,
            linkerSettings: [.linkedLibrary("m", .when(platforms: [.linux]))]
        ),
        // The one table renderer (text, Markdown, CSV, HTML), number formats and output JSON.
        .target(name: "Reporting"),
        // GPU and model catalogues, vLLM memory math, roofline cost model.
        .target(name: "Hardware", dependencies: ["GGUF", "Kernels", "ModelFamily", "Policies", "Reporting"], resources: [.copy("KernelData")]),
        // Token selection and budget allocation, pure functions over attention statistics.
        .target(name: "Policies", dependencies: ["Reporting", .product(name: "HeapModule", package: "swift-collections")]),
        // Runs the engine on generated tasks with the full cache and writes traces.
        .target(
            name: "Recorder",
            dependencies: ["Engine", "GGUF", "Policies", "TraceFormat"]
        ),
        // Reads traces, applies policies, computes the accuracy proxies.
        .target(name: "Replay", dependencies: ["TraceFormat", "Policies", "Reporting"]),
        // The plan search over policies × budgets and its reports.
        .target(name: "Planner", dependencies: ["Simulator", "Hardware", "Replay", "Policies", "Reporting", "TraceFormat", "Validation", "Accuracy", "GGUF"],
                resources: [.copy("Data")]),
        // Discrete-event serving simulator: workloads, scheduler, paged KV, compression, metrics.
        .target(
            name: "Simulator",
            dependencies: [
                "Hardware", "Policies", "Reporting", "SeededRandom",
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // The simulator against published measurements (Docs/validation.md) and the calibration search.
        .target(name: "Validation", dependencies: ["Simulator", "Hardware", "Policies", "Reporting", .product(name: "Crypto", package: "swift-crypto")],
                resources: [.copy("Data")]),
        // The accuracy corpus (generated tasks × policies × budgets, real runs and replay) and its curves.
        .target(name: "Accuracy", dependencies: ["Engine", "Recorder", "Replay", "Policies", "Reporting", "TraceFormat", "SeededRandom"]),
        // Commands live in a library so tests can parse and run them.
        .target(
            name: "CKVCommands",
            dependencies: [
                "TraceFormat", "ZstdModule", "SeededRandom", "GGUF", "Hardware", "Simulator", "Engine", "Policies",
                "Recorder", "Replay", "Planner", "Reporting", "Validation", "Accuracy",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "ckv-sim", dependencies: ["CKVCommands"]),
        // The trace and GGUF readers as libFuzzer targets (scripts/fuzz.sh), or a runner over saved inputs.
        .executableTarget(name: "ckv-fuzz", dependencies: ["TraceFormat", "Replay", "Policies", "GGUF", "Hardware"]),

        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "ZstdModuleTests", dependencies: ["ZstdModule"]),
        .testTarget(name: "TraceFormatTests", dependencies: ["TestSupport", "TraceFormat"]),
        .testTarget(name: "GGUFTests", dependencies: ["TestSupport", "GGUF", "Hardware"]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "CKernels", "HalfFloat"]),
        .testTarget(name: "EngineTests", dependencies: ["TestSupport", "Engine", "GGUF"], resources: [.copy("Fixtures")]),
        .testTarget(name: "PoliciesTests", dependencies: ["Policies"]),
        .testTarget(name: "ReportingTests", dependencies: ["Reporting"]),
        .testTarget(name: "ModelFamilyTests", dependencies: ["ModelFamily"]),
        .testTarget(name: "ValidationTests", dependencies: ["TestSupport", "Validation", "Hardware", "Simulator", "Reporting"]),
        .testTarget(name: "PlannerTests", dependencies: ["TestSupport", "Planner", "Hardware", "Policies", "Simulator", "Replay", "Accuracy", "Engine"]),
        .testTarget(name: "AccuracyTests", dependencies: ["TestSupport", "Accuracy", "Engine", "Policies", "Recorder"]),
        .testTarget(name: "ReplayTests", dependencies: ["TestSupport", "Recorder", "Replay", "Engine", "Policies", "TraceFormat", "ZstdModule", "SeededRandom"]),
        .testTarget(name: "HardwareTests", dependencies: ["TestSupport", "Hardware", "GGUF", "Policies"]),
        .testTarget(name: "SimulatorTests", dependencies: ["TestSupport", "Simulator", "Hardware", "Policies", "SeededRandom"]),
        .testTarget(name: "CKVCommandsTests", dependencies: ["TestSupport", "CKVCommands", "TraceFormat", "CZlib", "ckv-sim"]),
    ]
)
