import Foundation
import Hardware
import Reporting
import Yams

/// A GPU the catalogue does not have, described by the user in a small YAML or JSON file
/// (`--gpu my-gpu.yaml`):
///
///     name: RTX-4090
///     memory_gb: 24
///     cuda_visible_gib: 23.53        # total as torch.cuda.mem_get_info reports it
///     bandwidth_gbps: 1008
///     dense_tflops: {bf16: 165.2, fp16: 165.2, fp8: 330.3, int8: 660.6}
///     interconnect: {kind: PCIe Gen4 x16, gb_per_second: 32}   # optional
///     network: {kind: 100 GbE, gb_per_second: 12.5}            # optional: between nodes, per GPU
///     vendor: NVIDIA                 # optional
///     source: Ada whitepaper (2022)  # optional
///
/// Such a GPU has no measured kernel tables: its step times are the roofline's, and the reports say so.
public enum GPUSpec {
    struct File: Decodable {
        var name: String
        var vendor: String?
        var memoryGB: Double
        var cudaVisibleGiB: Double
        var bandwidthGBps: Double
        var denseTFLOPS: [String: Double]
        var interconnect: Link?
        var network: Link?
        var source: String?

        struct Link: Decodable {
            var kind: String
            var gbPerSecond: Double
            enum CodingKeys: String, CodingKey {
                case kind
                case gbPerSecond = "gb_per_second"
            }
        }

        enum CodingKeys: String, CodingKey {
            case name, vendor, interconnect, network, source
            case memoryGB = "memory_gb", cudaVisibleGiB = "cuda_visible_gib", bandwidthGBps = "bandwidth_gbps", denseTFLOPS = "dense_tflops"
        }
    }

    /// Reads and checks a GPU description.
    /// - Throws: `GPUSpecError` naming the file and the key.
    public static func load(path: String) throws -> GPU {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw GPUSpecError("\(path): cannot read the GPU description") }
        let f: File
        do { f = try YAMLDecoder().decode(File.self, from: text) } catch let e as DecodingError {
            throw GPUSpecError("\(path): \(Diagnostics.describe(decoding: e))")
        } catch {
            throw GPUSpecError("\(path): not YAML or JSON (\(error))")
        }
        func positive(_ v: Double, _ key: String) throws {
            guard v.isFinite, v > 0 else { throw GPUSpecError("\(path): key \(key): must be a positive number, found \(v)") }
        }
        guard !f.name.trimmingCharacters(in: .whitespaces).isEmpty else { throw GPUSpecError("\(path): key name: must not be empty") }
        try positive(f.memoryGB, "memory_gb")
        try positive(f.cudaVisibleGiB, "cuda_visible_gib")
        try positive(f.bandwidthGBps, "bandwidth_gbps")
        guard f.cudaVisibleGiB <= f.memoryGB * 1.08 else {
            throw GPUSpecError("\(path): key cuda_visible_gib: \(f.cudaVisibleGiB) GiB is more than the board's \(f.memoryGB) GB")
        }
        var flops: [ComputeFormat: Double] = [:]
        for (key, value) in f.denseTFLOPS {
            guard let format = ComputeFormat(rawValue: key) else {
                throw GPUSpecError("\(path): key dense_tflops.\(key): unknown format (known: \(ComputeFormat.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            try positive(value, "dense_tflops.\(key)")
            flops[format] = value
        }
        guard flops[.bf16] != nil || flops[.fp16] != nil else { throw GPUSpecError("\(path): key dense_tflops: needs bf16 or fp16") }
        if let link = f.interconnect { try positive(link.gbPerSecond, "interconnect.gb_per_second") }
        if let link = f.network { try positive(link.gbPerSecond, "network.gb_per_second") }
        return GPU(name: f.name, vendor: f.vendor ?? "unknown", memoryGB: f.memoryGB, cudaVisibleGiB: f.cudaVisibleGiB,
                   cudaVisibleSource: "given in \(path)", bandwidthGBps: f.bandwidthGBps, denseTFLOPS: flops,
                   interconnect: Interconnect(kind: f.interconnect?.kind ?? "PCIe Gen4 x16", gbPerSecond: f.interconnect?.gbPerSecond ?? 32),
                   network: f.network.map { Interconnect(kind: $0.kind, gbPerSecond: $0.gbPerSecond) },
                   source: f.source ?? "user description \(path)")
    }
}

/// Why a GPU description cannot be used.
public struct GPUSpecError: LocalizedError, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}
