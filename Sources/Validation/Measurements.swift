import Foundation
import Hardware
import Reporting

/// A public measurement the simulator is checked against, with where it comes from
/// (`Sources/Validation/Data/*.json`; each entry quotes its source).
public struct Provenance: Codable, Sendable, Equatable {
    /// The page or issue the figure is read from (nil for a page the search index holds without its address; `note` says where).
    public var url: String?
    /// The figure as printed there (a log line, a table cell).
    public var quote: String
    public var note: String?
}

/// Whether a measurement may be used to choose the model's constants or only to check them.
public enum Split: String, Codable, Sendable {
    case fit
    case check
}

/// A vLLM start-up log's KV cache size for a stated configuration.
public struct CapacityMeasurement: Codable, Sendable, Equatable {
    public var id: String
    public var split: Split
    public var source: Provenance
    /// The engine and its version as the log shows them ("vllm 0.8.5").
    public var engine: String
    /// A catalogue GPU name.
    public var gpu: String
    /// A catalogue model name.
    public var model: String
    public var serving: ServingConfig
    /// KV cache memory per GPU, GiB: "Available KV cache memory" (V1), "the rest of the memory
    /// reserved for KV Cache" (V0), or the tabulated figure.
    public var kvGiB: Double
    /// "GPU KV cache size: N tokens" (V1) or "# GPU blocks: N" × 16 (V0), when printed.
    public var kvTokens: Int?
    /// The log's own breakdown, when it prints one (GiB per GPU): weights, activation peak, non-torch memory.
    public var weightsGiB: Double?
    public var activationGiB: Double?
    public var nonTorchGiB: Double?
    /// SGLang: the free memory it sizes from ("Load weight begin. avail mem=…"), GiB.
    public var freeAtStartGiB: Double?

    enum CodingKeys: String, CodingKey {
        case id, split, source, engine, gpu, model, serving
        case kvGiB = "kv_gib", kvTokens = "kv_tokens", weightsGiB = "weights_gib", activationGiB = "activation_gib", nonTorchGiB = "non_torch_gib"
        case freeAtStartGiB = "free_at_start_gib"
    }

    /// Decodes an entry; its configuration's release is the one `engine` names ("vllm 0.19.0"),
    /// so the rules that follow the release (the sampler) apply without the entry repeating them.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        split = try c.decode(Split.self, forKey: .split)
        source = try c.decode(Provenance.self, forKey: .source)
        engine = try c.decode(String.self, forKey: .engine)
        gpu = try c.decode(String.self, forKey: .gpu)
        model = try c.decode(String.self, forKey: .model)
        var settings = try c.decode(ServingSettings.self, forKey: .serving)
        settings.engineVersion = settings.engineVersion ?? EngineVersion(label: engine)
        serving = settings.applied(to: ServingConfig())
        kvGiB = try c.decode(Double.self, forKey: .kvGiB)
        kvTokens = try c.decodeIfPresent(Int.self, forKey: .kvTokens)
        weightsGiB = try c.decodeIfPresent(Double.self, forKey: .weightsGiB)
        activationGiB = try c.decodeIfPresent(Double.self, forKey: .activationGiB)
        nonTorchGiB = try c.decodeIfPresent(Double.self, forKey: .nonTorchGiB)
        freeAtStartGiB = try c.decodeIfPresent(Double.self, forKey: .freeAtStartGiB)
    }

    /// The measurements committed with the build.
    public static func committed() throws -> [CapacityMeasurement] { try committedData("kv-capacity") }
}

/// The measurements in `Data/NAME.json` committed with the build (none when the resource is absent).
/// - Throws: `MeasurementError` naming the file and the key that does not decode.
func committedData<T: Decodable>(_ name: String) throws -> [T] {
    guard let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Data") else { return [] }
    let data = try Data(contentsOf: url)
    do { return try JSONDecoder().decode([T].self, from: data) } catch {
        throw MeasurementError("\(url.path): \(Diagnostics.describe(error))")
    }
}

/// Why the validation data cannot be read or a measurement does not resolve.
public struct MeasurementError: LocalizedError, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

extension CapacityMeasurement {
    func resolved() throws -> (GPU, ModelSpec) {
        guard let g = GPUCatalog.named(gpu) else { throw MeasurementError("\(id): unknown GPU '\(gpu)'") }
        guard let m = ModelCatalog.named(model) else { throw MeasurementError("\(id): unknown model '\(model)'") }
        return (g, m)
    }

    /// The KV cache memory per GPU, GiB, `MemoryPlan` predicts for this configuration with `constants`.
    /// - Throws: `MeasurementError` for a GPU or model the catalogue does not have.
    public func predictedGiB(_ constants: MemoryConstants) throws -> Double {
        let (g, m) = try resolved()
        do { return try MemoryPlan(gpu: g, model: m, serving: serving, constants: constants).kvBytes / 1_073_741_824 } catch is CapacityError { return 0 }
    }

    public func errorPercent(_ constants: MemoryConstants) throws -> Double { errorPercent(predicted: try predictedGiB(constants)) }

    /// (predicted − logged) / logged, percent.
    public func errorPercent(predicted: Double) -> Double { 100 * (predicted - kvGiB) / kvGiB }
}

extension Validation {
    /// `MemoryConstants` from the `fit` split, each the median of what the logs imply:
    /// - the sampler's bytes per logit: the logged activation peak (less a fused-MoE workspace it
    ///   runs beside) over rows × vocabulary, on the points whose peak is the sampler's (over 1.2 ×
    ///   the forward pass's estimate), PyTorch's and the Triton kernel's apart; for FlashInfer,
    ///   from the overhead its points imply (total × utilisation − logged weights − KV − non-torch);
    /// - the forward pass's scale: logged peak over the formula's, on the points whose peak is the
    ///   forward pass's;
    /// - non-torch memory: the logged figures, one GPU and with tensor parallelism apart, and the
    ///   releases from `MemoryConstants.recentNonTorchFrom` apart from the earlier ones;
    /// - SGLang's start-up context: the GPU's total less the free memory its logs start from.
    public static func fitMemoryConstants(_ measurements: [CapacityMeasurement]) throws -> MemoryConstants {
        let median = ErrorStatistics.median
        let fit = measurements.filter { $0.split == .fit && $0.serving.memFractionStatic == nil }
        let sglang = measurements.filter { $0.split == .fit && $0.serving.memFractionStatic != nil }
        var context: [Double] = []
        for m in sglang {
            if let free = m.freeAtStartGiB { context.append(try m.resolved().0.cudaVisibleGiB - free) }
        }
        var pytorch: [Double] = [], flashinfer: [Double] = [], triton: [Double] = [], forward: [Double] = []
        var nonTorch: [Double] = [], nonTorchTP: [Double] = [], recentNonTorch: [Double] = [], recentNonTorchTP: [Double] = []
        let gib = 1_073_741_824.0
        for m in fit {
            let (gpu, model) = try m.resolved()
            let s = m.serving
            let run = MemoryPlan.profilingRun(model: model, serving: s)
            let forwardPeak = run.forwardBytes / gib, logits = run.logits
            let held = MemoryPlan.persistentMoEWorkspaceBytes(model: model, serving: s)
            if let n = m.nonTorchGiB {
                let recent = s.engine == .vllmV1 && s.release >= MemoryConstants.recentNonTorchFrom
                switch (recent, s.tensorParallel > 1) {
                case (false, false): nonTorch.append(n)
                case (false, true): nonTorchTP.append(n)
                case (true, false): recentNonTorch.append(n)
                case (true, true): recentNonTorchTP.append(n)
                }
            }
            if let a = m.activationGiB {
                if a > 1.2 * forwardPeak {
                    switch s.sampler {
                    case .pytorch: pytorch.append((a * gib - held) / logits)
                    case .triton: triton.append((a * gib - held) / logits)
                    case .flashinfer: break
                    }
                } else {
                    forward.append(a / forwardPeak)
                }
            } else if s.sampler == .flashinfer, let w = m.weightsGiB {
                flashinfer.append((gpu.cudaVisibleGiB * s.gpuMemoryUtilization - w - m.kvGiB - (median(nonTorch) ?? 0)) * gib / logits)
            }
        }
        guard let p = median(pytorch), let f = median(flashinfer), let scale = median(forward), let n = median(nonTorch), let ntp = median(nonTorchTP),
              let ctx = median(context) else {
            throw MeasurementError("the fit split lacks a point for one of the memory constants")
        }
        func round(_ x: Double, _ digits: Double) -> Double { (x * pow(10, digits)).rounded() / pow(10, digits) }
        var samplers = [SamplerKind.pytorch: round(p, 1), .flashinfer: round(f, 1)]
        if let t = median(triton) { samplers[.triton] = round(t, 1) }
        return MemoryConstants(samplerBytesPerLogit: samplers, peaksAdd: false,
                               forwardScale: round(scale, 2), nonTorchGiB: round(n, 2), nonTorchTensorParallelGiB: round(ntp, 2),
                               recentNonTorchGiB: median(recentNonTorch).map { round($0, 2) },
                               recentNonTorchTensorParallelGiB: median(recentNonTorchTP).map { round($0, 2) },
                               sglangContextGiB: round(ctx, 2))
    }
}

extension ErrorBand {
    /// The KV-capacity band: the fitted memory constants on the `check` split of the start-up logs.
    public static func kvCapacity() throws -> ErrorBand {
        let check = try CapacityMeasurement.committed().filter { $0.split == .check }
        let errors = try check.map { abs(try $0.errorPercent(.fitted)) }
        guard let median = ErrorStatistics.median(errors), let p90 = ErrorStatistics.percentile90(errors) else {
            throw MeasurementError("no check-split start-up logs for the KV-capacity band")
        }
        return ErrorBand(kind: "kv-capacity", corpus: "vLLM and SGLang start-up logs held out of the fit (Sources/Validation/Data/kv-capacity.json, split check)",
                         points: errors.count, medianPercent: (median * 10).rounded() / 10, p90Percent: (p90 * 10).rounded() / 10)
    }
}
