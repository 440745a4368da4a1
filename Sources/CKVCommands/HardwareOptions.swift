import ArgumentParser
import Foundation
import Hardware
import Simulator

extension WeightFormat: ExpressibleByArgument {}
extension KVFormat: ExpressibleByArgument {}
extension SamplerKind: ExpressibleByArgument {}
extension ServingEngine: ExpressibleByArgument {}

/// `--gpu`, `--model`, `--tp` and formats, shared by every command that sizes a deployment.
struct HardwareOptions: ParsableArguments {
    @Option(help: "Target GPU (case-insensitive; `ckv-sim gpus` lists them), or a YAML/JSON description of another one (Docs/simulator.md, \"Your own GPU\").")
    var gpu: String

    @Option(help: "A catalogue model name (`ckv-sim models`), a Hugging Face config.json, or a .gguf file.")
    var model: String = "Llama-3.1-8B-Instruct"

    @Option(name: .customLong("tp"), help: "Tensor-parallel GPUs in one node.")
    var tensorParallel: Int = 1

    @Option(help: "Weight format: \(WeightFormat.allCases.map(\.rawValue).joined(separator: ", ")).")
    var weights: WeightFormat = .bf16

    @Option(name: .customLong("kv-dtype"), help: "KV-cache format: \(KVFormat.allCases.map(\.rawValue).joined(separator: ", ")).")
    var kvFormat: KVFormat = .bf16

    @Option(help: "vLLM's sampler, which sizes its start-up profiling peak: pytorch (top-k/top-p in PyTorch, the default) or flashinfer (FlashInfer installed and enabled).")
    var sampler: SamplerKind = .pytorch

    @Option(name: .customLong("num-scheduler-steps"), help: "vLLM V0's --num-scheduler-steps: decode batches run this many steps before new requests are admitted (default: the scenario's, 1).")
    var numSchedulerSteps: Int?

    func validate() throws {
        guard (1...64).contains(tensorParallel) else { throw ValidationError("--tp must be between 1 and 64") }
        if let numSchedulerSteps { guard (1...64).contains(numSchedulerSteps) else { throw ValidationError("--num-scheduler-steps must be between 1 and 64") } }
    }

    func resolveGPU() throws -> GPU {
        if [".yaml", ".yml", ".json"].contains(where: gpu.lowercased().hasSuffix) { return try GPUSpec.load(path: gpu) }
        guard let g = GPUCatalog.named(gpu) else {
            throw CLIError("unknown GPU '\(gpu)'; known: \(GPUCatalog.all.map(\.name).joined(separator: ", ")) (or pass a .yaml or .json description)")
        }
        return g
    }

    func resolveModel() throws -> ModelSpec {
        if model.hasSuffix(".json") { return try ModelSpec.fromHFConfig(path: model) }
        if model.hasSuffix(".gguf") { return try ModelSpec.fromGGUF(path: model) }
        guard let m = ModelCatalog.named(model) else {
            throw CLIError("unknown model '\(model)'; known: \(ModelCatalog.all.map(\.name).joined(separator: ", ")) (or pass a config.json or .gguf path)")
        }
        return m
    }

    /// Applies the formats and TP to a serving config.
    func apply(to serving: inout ServingConfig) {
        serving.tensorParallel = tensorParallel
        serving.weightFormat = weights
        serving.kvFormat = kvFormat
        serving.sampler = sampler
        if let numSchedulerSteps { serving.numSchedulerSteps = numSchedulerSteps }
    }
}

/// A one-line error for the user.
struct CLIError: LocalizedError, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
    var errorDescription: String? { description }
}

/// Parses token counts written as `131072`, `128k`, `32K`, `1m` (k = 1024).
func parseTokenCount(_ text: String) -> Int? {
    let t = text.trimmingCharacters(in: .whitespaces).lowercased()
    if let n = Int(t) { return n }
    guard let unit = t.last, let base = Double(t.dropLast()), base > 0 else { return nil }
    switch unit {
    case "k": return Int((base * 1024).rounded())
    case "m": return Int((base * 1024 * 1024).rounded())
    default: return nil
    }
}
