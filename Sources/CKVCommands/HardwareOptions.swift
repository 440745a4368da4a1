import ArgumentParser
import Foundation
import Hardware
import Simulator
import Validation

extension WeightFormat: ExpressibleByArgument {}
extension KVFormat: ExpressibleByArgument {}
extension SamplerKind: ExpressibleByArgument {}
extension ServingEngine: ExpressibleByArgument {}
extension EngineVersion: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}
extension RouterPolicy: ExpressibleByArgument {}

/// `--gpu`, `--model`, `--tp` and formats, shared by every command that sizes a deployment.
struct HardwareOptions: ParsableArguments {
    @Option(help: "Target GPU (case-insensitive; `ckv-sim gpus` lists them), or a YAML/JSON description of another one (Docs/simulator.md, \"Your own GPU\"). plan --target-rate also takes a comma-separated list, or 'all'.")
    var gpu: String

    @Option(help: "A catalogue model name (`ckv-sim models`), a Hugging Face config.json, or a .gguf file.")
    var model: String = "Llama-3.1-8B-Instruct"

    @Option(name: .customLong("tp"), parsing: .unconditional, help: "Tensor-parallel GPUs in one node; plan --target-rate also takes 'auto' (every degree of 1, 2, 4, 8 that divides the model's heads).")
    var tp: TPChoice = .degree(1)

    /// The one TP degree of a command that sizes a single deployment.
    var tensorParallel: Int { if case let .degree(n) = tp { n } else { 1 } }

    @Option(help: "Weight format: \(WeightFormat.allCases.map(\.rawValue).joined(separator: ", ")); plan --target-rate also takes a comma-separated list to search.")
    var weights = "bf16"

    @Option(name: .customLong("kv-dtype"), help: "KV-cache format: \(KVFormat.allCases.map(\.rawValue).joined(separator: ", ")); plan --target-rate also takes a comma-separated list to search.")
    var kvDtype = "bf16"

    /// The weight formats `--weights` names (one, or a list to search).
    func weightFormats() throws -> [WeightFormat] { try Self.list(weights, "--weights") }

    /// The KV formats `--kv-dtype` names.
    func kvFormats() throws -> [KVFormat] { try Self.list(kvDtype, "--kv-dtype") }

    private static func list<F: RawRepresentable & CaseIterable & Equatable>(_ text: String, _ flag: String) throws -> [F] where F.RawValue == String {
        var out: [F] = []
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) where !item.isEmpty {
            guard let f = F(rawValue: item) else {
                throw CLIError("\(flag): unknown format '\(item)'; known: \(F.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if !out.contains(f) { out.append(f) }
        }
        guard !out.isEmpty else { throw CLIError("\(flag): no format named") }
        return out
    }

    func validate() throws {
        if case let .degree(n) = tp { guard (1...64).contains(n) else { throw ValidationError("--tp must be between 1 and 64, or auto") } }
    }

    /// The one GPU of a command that sizes a single deployment.
    func resolveGPU() throws -> GPU {
        let list = try resolveGPUs()
        guard list.count == 1 else { throw CLIError("--gpu '\(gpu)': this command takes one GPU (plan --target-rate searches a list)") }
        guard case .degree = tp else { throw CLIError("--tp auto: this command takes one TP degree (plan --target-rate searches them)") }
        guard try weightFormats().count == 1, try kvFormats().count == 1 else {
            throw CLIError("--weights and --kv-dtype: this command takes one format each (plan --target-rate searches a list)")
        }
        return list[0]
    }

    /// The GPUs `--gpu` names: one, a comma-separated list, or `all` (the catalogue).
    func resolveGPUs() throws -> [GPU] {
        if gpu.lowercased() == "all" { return GPUCatalog.all }
        var out: [GPU] = []
        for item in gpu.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let g: GPU
            if [".yaml", ".yml", ".json"].contains(where: item.lowercased().hasSuffix) {
                g = try GPUSpec.load(path: item)
            } else if let known = GPUCatalog.named(item) {
                g = known
            } else {
                throw CLIError("unknown GPU '\(item)'; known: \(GPUCatalog.all.map(\.name).joined(separator: ", ")) (or pass a .yaml or .json description)")
            }
            if !out.contains(where: { $0.name == g.name }) { out.append(g) }
        }
        guard !out.isEmpty else { throw CLIError("--gpu: no GPU named") }
        return out
    }

    /// The TP degrees to plan `model` with: the one given, or with `auto` each of 1, 2, 4, 8 that
    /// vLLM accepts for its heads (TP divides the attention heads; KV heads divide by it or it by them).
    func tensorParallelDegrees(for model: ModelSpec) -> [Int] {
        switch tp {
        case let .degree(n): [n]
        case .auto: [1, 2, 4, 8].filter { t in model.heads % t == 0 && (model.kvHeads % t == 0 || t % model.kvHeads == 0) }
        }
    }

    func resolveModel() throws -> ModelSpec {
        if model.hasSuffix(".json") { return try ModelSpec.fromHFConfig(path: model) }
        if model.hasSuffix(".gguf") { return try ModelSpec.fromGGUF(path: model) }
        guard let m = ModelCatalog.named(model) else {
            throw CLIError("unknown model '\(model)'; known: \(ModelCatalog.all.map(\.name).joined(separator: ", ")) (or pass a config.json or .gguf path)")
        }
        return m
    }

    /// TP and the formats (the first of each list), as serving settings over a scenario's.
    var settings: ServingSettings {
        var s = ServingSettings()
        s.tensorParallel = tensorParallel
        s.weightFormat = (try? weightFormats().first) ?? .bf16
        s.kvFormat = (try? kvFormats().first) ?? .bf16
        return s
    }
}

/// The serving engine and its settings, shared by `plan`, `simulate` and `memory`: each given
/// one overrides the scenario's, and what neither gives is the engine's default for the GPU.
struct ServingOptions: ParsableArguments {
    @Option(help: "Serving engine: vllm-v1 (vLLM's V1 engine, 0.7 and later; the default), vllm-v0 (its V0 engine, 0.6.x) or sglang (0.4.x); its scheduler, memory rule and defaults apply (default: the scenario's).")
    var engine: ServingEngine?

    @Option(name: .customLong("engine-version"), help: "The engine's release, e.g. 0.16.0: the rules that changed between releases follow it (vLLM's sampler: PyTorch before 0.17, Triton from it). Default: vllm-v1 0.19.0, vllm-v0 0.6.6, sglang 0.4.5.")
    var engineVersion: EngineVersion?

    @Option(name: .customLong("gpu-memory-utilization"), parsing: .unconditional, help: "vLLM's --gpu-memory-utilization (default 0.9).")
    var utilisation: Double?

    @Option(name: .customLong("mem-fraction-static"), parsing: .unconditional, help: "With --engine sglang: SGLang's --mem-fraction-static (default: its 0.4.x default for the TP degree).")
    var memFractionStatic: Double?

    @Option(name: .customLong("max-num-seqs"), parsing: .unconditional, help: "--max-num-seqs (SGLang: --max-running-requests; default: the engine's for this GPU).")
    var maxNumSeqs: Int?

    @Option(name: .customLong("max-num-batched-tokens"), parsing: .unconditional, help: "--max-num-batched-tokens (SGLang: --chunked-prefill-size; default: the engine's for this GPU).")
    var maxNumBatchedTokens: Int?

    @Flag(inversion: .prefixedEnableDisable, help: "Chunked prefill (default: the engine's).")
    var chunkedPrefill: Bool?

    @Option(help: "vLLM's sampler, which sizes its start-up profiling peak: pytorch (top-k/top-p in PyTorch; vLLM before 0.17), triton (top-k/top-p in place; vLLM 0.17 and later) or flashinfer (FlashInfer installed and enabled). Default: the engine release's.")
    var sampler: SamplerKind?

    @Option(name: .customLong("num-scheduler-steps"), parsing: .unconditional, help: "vLLM V0's --num-scheduler-steps: decode batches run this many steps before new requests are admitted (default 1).")
    var numSchedulerSteps: Int?

    @Flag(inversion: .prefixedEnableDisable, help: "vLLM V1's automatic prefix caching: a preempted request reuses the blocks of its prefix that nobody took since (default: on for vLLM V1; the other engines run without it).")
    var prefixCaching: Bool?

    @Flag(name: .customLong("enforce-eager"), help: "No CUDA graphs: every step pays each kernel launch (vLLM's --enforce-eager, SGLang's --disable-cuda-graph).")
    var enforceEager = false

    func validate() throws {
        if let utilisation { guard utilisation > 0, utilisation <= 1 else { throw ValidationError("--gpu-memory-utilization must be in (0, 1]") } }
        if let memFractionStatic {
            guard engine == .sglang else { throw ValidationError("--mem-fraction-static goes with --engine sglang") }
            guard memFractionStatic > 0, memFractionStatic <= 1 else { throw ValidationError("--mem-fraction-static must be in (0, 1]") }
        }
        if let maxNumSeqs { guard maxNumSeqs > 0 else { throw ValidationError("--max-num-seqs must be positive") } }
        if let maxNumBatchedTokens { guard maxNumBatchedTokens > 0 else { throw ValidationError("--max-num-batched-tokens must be positive") } }
        if let numSchedulerSteps { guard (1...64).contains(numSchedulerSteps) else { throw ValidationError("--num-scheduler-steps must be between 1 and 64") } }
    }

    /// These options over `base` (the hardware options' settings).
    func settings(over base: ServingSettings) -> ServingSettings {
        var s = base
        s.engine = engine
        s.engineVersion = engineVersion
        s.gpuMemoryUtilization = utilisation
        s.memFractionStatic = memFractionStatic
        s.maxNumSeqs = maxNumSeqs
        s.maxNumBatchedTokens = maxNumBatchedTokens
        s.chunkedPrefill = chunkedPrefill
        s.sampler = sampler
        s.numSchedulerSteps = numSchedulerSteps
        if enforceEager { s.cudaGraphs = false }
        s.prefixCaching = prefixCaching
        return s
    }
}

/// `--calibration FILE`, shared by `plan`, `simulate` and `memory`.
struct CalibrationOptions: ParsableArguments {
    @Option(help: "A calibration profile written by `ckv-sim calibrate --out`: its fitted coefficients replace the defaults. Its GPU, model, engine, release and TP must be this run's; its engine and release are the defaults.")
    var calibration: String?

    /// The profile, read and checked for its format and version.
    func profile() throws -> CalibrationProfile? {
        try calibration.map { try CalibrationProfile.load(path: $0) }
    }

    /// `settings` with the profile's engine and release where none was given.
    func settings(_ settings: ServingSettings, profile: CalibrationProfile?) -> ServingSettings {
        var s = settings
        guard let profile else { return s }
        if s.engine == nil { s.engine = profile.engine }
        if s.engineVersion == nil, s.engine == profile.engine { s.engineVersion = profile.engineVersion }
        return s
    }

    /// The coefficients for this deployment and how reports name the profile (nil: the defaults).
    /// - Throws: `CalibrationError` when the profile is for another GPU, model, engine or TP.
    func coefficients(_ profile: CalibrationProfile?, gpu: GPU, model: ModelSpec, serving: ServingConfig) throws -> (Coefficients, String?) {
        guard let profile, let calibration else { return (Coefficients(), nil) }
        try profile.check(gpu: gpu, model: model, serving: serving, file: calibration)
        return (profile.applied(), profile.summary(file: calibration))
    }
}

/// A one-line error for the user.
struct CLIError: LocalizedError, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
    var errorDescription: String? { description }
}

/// The largest token count a flag takes (1 G tokens: beyond every model's context, far from overflow).
let maxTokenCount = 1 << 30

/// Parses token counts written as `131072`, `128k`, `32K`, `1m` (k = 1024); nil for anything
/// else, including counts beyond `maxTokenCount`.
func parseTokenCount(_ text: String) -> Int? {
    let t = text.trimmingCharacters(in: .whitespaces).lowercased()
    if let n = Int(t) { return n <= maxTokenCount ? n : nil }
    guard let unit = t.last, let base = Double(t.dropLast()), base > 0, base.isFinite else { return nil }
    let value: Double
    switch unit {
    case "k": value = base * 1024
    case "m": value = base * 1024 * 1024
    default: return nil
    }
    return value.rounded() <= Double(maxTokenCount) ? Int(value.rounded()) : nil
}

/// `--tp`: a degree, or `auto` (plan's search).
enum TPChoice: ExpressibleByArgument, Equatable {
    case degree(Int)
    case auto

    init?(argument: String) {
        if argument.lowercased() == "auto" { self = .auto } else if let n = Int(argument) { self = .degree(n) } else { return nil }
    }

    var defaultValueDescription: String {
        switch self {
        case let .degree(n): String(n)
        case .auto: "auto"
        }
    }
}
