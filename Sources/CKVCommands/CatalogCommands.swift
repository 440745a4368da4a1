import ArgumentParser
import Foundation
import Hardware

/// `ckv-sim gpus`: the GPU catalogue with the source of each figure.
struct GPUsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gpus", abstract: "List the GPUs the simulator knows, with their figures and sources.")

    @Option(help: "Output format: text, json.")
    var format: OutputFormat = .text

    func run() async throws {
        switch format {
        case .json:
            print(try jsonString(GPUCatalog.all.map(GPURow.init)))
        case .text:
            var rows = [["GPU", "memory", "CUDA total", "HBM GB/s", "bf16 TF", "fp8 TF", "int8 TOPS", "interconnect"]]
            for g in GPUCatalog.all {
                rows.append([g.name, "\(Units.fixed(g.memoryGB, 0)) GB", "\(Units.fixed(g.cudaVisibleGiB, 2)) GiB", Units.fixed(g.bandwidthGBps, 0),
                             g.denseTFLOPS[.bf16].map { Units.fixed($0, 1) } ?? "—", g.denseTFLOPS[.fp8].map { Units.fixed($0, 1) } ?? "—",
                             g.denseTFLOPS[.int8].map { Units.fixed($0, 1) } ?? "—", "\(g.interconnect.kind) \(Units.fixed(g.interconnect.gbPerSecond, 0)) GB/s"])
            }
            print(table(rows, rightAligned: Set(1...6)))
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
        init(_ g: GPU) {
            name = g.name; vendor = g.vendor; source = g.source; cudaTotalSource = g.cudaVisibleSource
            memoryGB = g.memoryGB; cudaTotalGiB = g.cudaVisibleGiB; bandwidthGBps = g.bandwidthGBps
            denseTFLOPS = Dictionary(uniqueKeysWithValues: g.denseTFLOPS.map { ($0.key.rawValue, $0.value) })
            interconnect = g.interconnect.kind; interconnectGBps = g.interconnect.gbPerSecond
        }
        enum CodingKeys: String, CodingKey {
            case name, vendor, source, interconnect
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
            print(try jsonString(ModelCatalog.all))
        case .text:
            var rows = [["model", "params", "layers", "hidden", "heads/KV", "head dim", "context", "window", "bf16 weights", "KV/token bf16"]]
            for m in ModelCatalog.all {
                let window = m.slidingWindow.map { "\($0) (\(m.localLayers) local)" } ?? "—"
                rows.append([m.name, String(format: "%.2fB", m.totalParameters / 1e9), "\(m.layers)", "\(m.hidden)", "\(m.heads)/\(m.kvHeads)",
                             "\(m.headDim)", "\(m.maxContext)", window, Units.bytes(UInt64(m.weightBytes(.bf16))),
                             Units.bytes(UInt64(m.kvBytesPerTokenLayer(.bf16) * Double(m.layers)))])
            }
            print(table(rows, rightAligned: Set([1, 2, 3, 5, 6, 8, 9])))
            print("\nKV/token counts every layer; sliding-window layers stop growing at the window. Sources: each model's config.json (`--format json`).")
        }
    }
}

/// Left/right aligned plain-text table with a rule under the header.
func table(_ rows: [[String]], rightAligned: Set<Int> = []) -> String {
    guard let header = rows.first else { return "" }
    let widths = header.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
    func line(_ r: [String]) -> String {
        r.indices.map { c in
            rightAligned.contains(c) ? r[c].leftPadded(to: widths[c]) : r[c].padding(toLength: widths[c], withPad: " ", startingAt: 0)
        }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
    }
    var out = [line(header), widths.map { String(repeating: "─", count: $0) }.joined(separator: "  ")]
    out += rows.dropFirst().map(line)
    return out.joined(separator: "\n")
}
