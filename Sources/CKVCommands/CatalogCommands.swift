import ArgumentParser
import Foundation
import Reporting
import Hardware

/// `ckv-sim gpus`: the GPU catalogue with the source of each figure.
struct GPUsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gpus", abstract: "List the GPUs the simulator knows, with their figures and sources.")

    @Option(help: "Output format: text, json.")
    var format: OutputFormat = .text

    func run() async throws {
        switch format {
        case .json:
            print(try JSONOutput.string(GPUCatalog.all.map(GPURow.init)))
        case .text:
            var rows = Table(columns: ["GPU", "memory", "CUDA total", "HBM GB/s", "bf16 TF", "fp8 TF", "int8 TOPS", "interconnect", "network per GPU"], rightAligned: Set(1...6))
            for g in GPUCatalog.all {
                rows.append([g.name, "\(Format.fixed(g.memoryGB, 0)) GB", "\(Format.fixed(g.cudaVisibleGiB, 2)) GiB", Format.fixed(g.bandwidthGBps, 0),
                             g.denseTFLOPS[.bf16].map { Format.fixed($0, 1) } ?? "—", g.denseTFLOPS[.fp8].map { Format.fixed($0, 1) } ?? "—",
                             g.denseTFLOPS[.int8].map { Format.fixed($0, 1) } ?? "—", "\(g.interconnect.kind) \(Format.fixed(g.interconnect.gbPerSecond, 0)) GB/s",
                             g.network.map { "\($0.kind) \(Format.figure($0.gbPerSecond)) GB/s" } ?? "—"])
            }
            print(rows.text)
            print("\nDense throughput (no sparsity). Sources:")
            for g in GPUCatalog.all { print("  \(g.name): \(g.source); CUDA total \(g.cudaVisibleSource)") }
        }
    }

    struct GPURow: Encodable {
        var name, vendor, source, cudaTotalSource: String
        var memoryGB, cudaTotalGiB, bandwidthGBps: Double
        var denseTFLOPS: [String: Double]
        var interconnect: String
        var interconnectGBps: Double
        var network: String?
        var networkGBps: Double?
        init(_ g: GPU) {
            name = g.name; vendor = g.vendor; source = g.source; cudaTotalSource = g.cudaVisibleSource
            memoryGB = g.memoryGB; cudaTotalGiB = g.cudaVisibleGiB; bandwidthGBps = g.bandwidthGBps
            denseTFLOPS = Dictionary(uniqueKeysWithValues: g.denseTFLOPS.map { ($0.key.rawValue, $0.value) })
            interconnect = g.interconnect.kind; interconnectGBps = g.interconnect.gbPerSecond
            network = g.network?.kind; networkGBps = g.network?.gbPerSecond
        }
        enum CodingKeys: String, CodingKey {
            case name, vendor, source, interconnect, network
            case networkGBps = "network_gb_per_s"
            case cudaTotalSource = "cuda_total_source", memoryGB = "memory_gb", cudaTotalGiB = "cuda_total_gib"
            case bandwidthGBps = "bandwidth_gb_per_s", denseTFLOPS = "dense_tflops", interconnectGBps = "interconnect_gb_per_s"
        }
    }
}

/// `ckv-sim models`: the model catalogue.
struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "models", abstract: "List the models the simulator knows, with their shapes and KV bytes per token.")

    @Option(help: "Output format: text, json.")
    var format: OutputFormat = .text

    func run() async throws {
        switch format {
        case .json:
            print(try JSONOutput.string(ModelCatalog.all))
        case .text:
            var rows = Table(columns: ["model", "params", "layers", "hidden", "heads/KV", "head dim", "context", "window", "bf16 weights", "KV/token bf16"], rightAligned: Set([1, 2, 3, 5, 6, 8, 9]))
            for m in ModelCatalog.all {
                let window = m.slidingWindow.map { "\($0) (\(m.localLayers) local)" } ?? "—"
                rows.append([m.name, String(format: "%.2fB", m.totalParameters / 1e9), "\(m.layers)", "\(m.hidden)", "\(m.heads)/\(m.kvHeads)",
                             "\(m.headDim)", "\(m.maxContext)", window, Format.bytes(UInt64(m.weightBytes(.bf16))),
                             Format.bytes(UInt64(m.kvBytesPerTokenLayer(.bf16) * Double(m.layers)))])
            }
            print(rows.text)
            print("\nKV/token counts every layer; sliding-window layers stop growing at the window. Sources: each model's config.json (`--format json`).")
        }
    }
}
