import Foundation

/// A serving engine (a vLLM generation, or SGLang): its scheduler, its memory rule, and the
/// defaults that decide both when a deployment does not set them.
public enum ServingEngine: String, Codable, CaseIterable, Sendable {
    /// vLLM 0.6.x (V0 engine): `SchedulerConfig` in vllm/config.py — chunked prefill on only above
    /// a 32k context, then 2048 batched tokens (512 before 0.6.5); else max(`max_model_len`, 2048);
    /// 256 sequences. Blocks for a whole prompt are allocated when it is admitted.
    case vllmV0 = "vllm-v0"
    /// vLLM 0.9 and later (V1 engine): `_set_default_args` in vllm/engine/arg_utils.py — chunked
    /// prefill always on; on a GPU with ≥ 70 GiB that is not an A100, 8192 batched tokens (16384
    /// offline) and 1024 sequences, elsewhere 2048 (8192 offline) and 256. Blocks are allocated
    /// for the tokens each step computes.
    case vllmV1 = "vllm-v1"
    /// SGLang 0.4.x: `mem_fraction_static` by TP degree (server_args.py, 0.4.0–0.4.5): 0.88 on one
    /// GPU, 0.87 at TP 2, 0.85 at TP 4, 0.81 at TP 8, 0.79 from TP 16; prefill and decode batches
    /// apart.
    case sglang = "sglang"

    /// (max_num_seqs, max_num_batched_tokens, chunked prefill) this engine starts with on `gpu`
    /// for a `maxModelLen`-token limit, as an API server or (`offline`) as vLLM's `LLM` class.
    public func defaults(gpu: GPU, maxModelLen: Int, offline: Bool = false) -> (maxNumSeqs: Int, maxNumBatchedTokens: Int, chunkedPrefill: Bool) {
        switch self {
        case .vllmV0:
            let chunked = maxModelLen > 32768
            return (256, chunked ? 2048 : max(maxModelLen, 2048), chunked)
        case .vllmV1:
            let large = gpu.cudaVisibleGiB >= 70 && !gpu.name.lowercased().hasPrefix("a100")
            return large ? (1024, offline ? 16384 : 8192, true) : (256, offline ? 8192 : 2048, true)
        case .sglang:
            // chunked_prefill_size: 2048 below 25 GB, else 8192 (server_args.py, 0.4.1);
            // max_running_requests: at most the request pool's 4096 (the scheduler caps it at half
            // the KV pool's tokens).
            return (4096, gpu.cudaVisibleGiB < 23.3 ? 2048 : 8192, true)
        }
    }

    /// SGLang's default `mem_fraction_static` at `tensorParallel` GPUs (nil for vLLM).
    public func memFractionStatic(tensorParallel tp: Int) -> Double? {
        guard self == .sglang else { return nil }
        return tp >= 16 ? 0.79 : tp >= 8 ? 0.81 : tp >= 4 ? 0.85 : tp >= 2 ? 0.87 : 0.88
    }

    /// Whether a step of `prefillTokens` prompt tokens and `decodeSequences` decodes replays a
    /// captured CUDA graph (its kernels launched at once) rather than launching each kernel:
    /// - vLLM V0: decode-only batches up to 256 sequences (`_BATCH_SIZES_TO_CAPTURE`,
    ///   vllm/worker/model_runner.py, 0.6); prefill steps run eagerly.
    /// - vLLM V1: piecewise graphs for any batch up to its largest capture size,
    ///   min(2 × `max_num_seqs`, 512) tokens (vllm/config.py, `CompilationConfig`, 0.9).
    /// - SGLang: decode-only batches up to `cuda_graph_max_bs`, 160 (server_args.py, 0.4.x).
    public func replaysGraph(prefillTokens: Int, decodeSequences: Int, maxNumSeqs: Int) -> Bool {
        switch self {
        case .vllmV0: prefillTokens == 0 && decodeSequences <= 256
        case .vllmV1: prefillTokens + decodeSequences <= min(2 * maxNumSeqs, 512)
        case .sglang: prefillTokens == 0 && decodeSequences <= 160
        }
    }

    /// The release whose rules apply when a deployment does not name one: vLLM V0's last, 0.6.6;
    /// for V1, 0.19.0, the newest release whose code the rules here were read from; SGLang 0.4.5,
    /// the last release of the `mem_fraction_static` table above.
    public var defaultVersion: EngineVersion {
        switch self {
        case .vllmV0: EngineVersion(0, 6, 6)
        case .vllmV1: EngineVersion(0, 19, 0)
        case .sglang: EngineVersion(0, 4, 5)
        }
    }

    /// The releases that run this engine: vLLM's V0 engine until 0.10 (removed in 0.11), its V1
    /// engine from 0.7 (opt-in with `VLLM_USE_V1=1` until 0.8); SGLang any.
    public func runs(_ version: EngineVersion) -> Bool {
        switch self {
        case .vllmV0: version < EngineVersion(0, 11, 0)
        case .vllmV1: version >= EngineVersion(0, 7, 0)
        case .sglang: true
        }
    }

    /// The sampler `version` profiles with unless FlashInfer is installed and enabled: from vLLM
    /// 0.17, top-k/top-p is masked in place by a Triton kernel when 8 rows or more are sampled,
    /// as the dummy sampling run of `max_num_seqs` rows does (`apply_top_k_top_p_triton`,
    /// vllm/v1/sample/ops/topk_topp_sampler.py@0.17.0); before, PyTorch sorts the logits.
    public func defaultSampler(_ version: EngineVersion) -> SamplerKind {
        self == .vllmV1 && version >= EngineVersion(0, 17, 0) ? .triton : .pytorch
    }

    /// How reports name it, without a release ("vLLM V1").
    public var displayName: String {
        switch self {
        case .vllmV0: "vLLM V0"
        case .vllmV1: "vLLM V1"
        case .sglang: "SGLang"
        }
    }

    /// How reports name it at `release`: "vLLM V1 0.19.0".
    public func label(_ release: EngineVersion) -> String { "\(displayName) \(release)" }
}

/// A release of a serving engine, as its version string names it ("0.19.1"; a further part or a
/// suffix, as in "0.10.1.1", "0.6.3.post1", "v0.9.0rc2" or "0.8.5+cu124", is not read): the rules
/// that changed between releases compare it.
public struct EngineVersion: Comparable, Hashable, Codable, Sendable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public var patch: Int

    public init(_ major: Int, _ minor: Int, _ patch: Int = 0) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    /// Reads "MAJOR.MINOR[.PATCH]" at the start of `text` (after an optional "v"); nil when it
    /// does not start so.
    public init?(_ text: String) {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        if rest.first == "v" || rest.first == "V" { rest = rest.dropFirst() }
        var parts: [Int] = []
        while parts.count < 3 {
            let digits = rest.prefix(while: \.isASCIIDigit)
            guard !digits.isEmpty, digits.count <= 6, let n = Int(digits) else { break }
            parts.append(n)
            rest = rest.dropFirst(digits.count)
            guard rest.first == ".", rest.dropFirst().first?.isASCIIDigit == true else { break }
            rest = rest.dropFirst()
        }
        guard parts.count >= 2 else { return nil }
        self.init(parts[0], parts[1], parts.count > 2 ? parts[2] : 0)
    }

    /// The release named in a source's engine label ("vllm 0.19.0", "sglang 0.4.6.post2",
    /// "vllm 0.10.1.1 (V1 engine)"): the first word that reads as one.
    public init?(label: String) {
        guard let v = label.split(separator: " ").lazy.compactMap({ EngineVersion(String($0)) }).first else { return nil }
        self = v
    }

    public static func < (a: EngineVersion, b: EngineVersion) -> Bool {
        (a.major, a.minor, a.patch) < (b.major, b.minor, b.patch)
    }

    public var description: String { "\(major).\(minor).\(patch)" }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let text = try c.decode(String.self)
        guard let v = EngineVersion(text) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "'\(text)' is not a release (expected MAJOR.MINOR[.PATCH], e.g. 0.19.1)")
        }
        self = v
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}

/// Why a deployment's settings cannot be resolved.
public struct ServingError: LocalizedError, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

/// A deployment's serving settings as a scenario's `serving:` section or the command line gives
/// them: any left out (nil) take the engine's default for the GPU and model in `resolve`, the one
/// place those defaults are applied.
public struct ServingSettings: Codable, Equatable, Sendable {
    public var engine: ServingEngine?
    /// The engine's release (nil: `ServingEngine.defaultVersion`), which decides the rules that
    /// changed between releases (today the sampler's default).
    public var engineVersion: EngineVersion?
    /// `server` (an OpenAI-compatible API server; the default) or `offline` (vLLM's `LLM` class, as
    /// `benchmark_throughput` runs it), which decides vLLM V1's defaults.
    public var entrypoint: Entrypoint?
    public var gpuMemoryUtilization: Double?
    public var maxNumSeqs: Int?
    public var maxNumBatchedTokens: Int?
    public var maxModelLen: Int?
    public var chunkedPrefill: Bool?
    public var blockSize: Int?
    public var tensorParallel: Int?
    public var weightFormat: WeightFormat?
    public var kvFormat: KVFormat?
    public var sampler: SamplerKind?
    public var numSchedulerSteps: Int?
    public var memFractionStatic: Double?
    public var cudaGraphs: Bool?
    public var prefixCaching: Bool?

    public enum Entrypoint: String, Codable, Sendable, CaseIterable {
        case server, offline
    }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case engine, entrypoint, sampler
        case engineVersion = "engine_version"
        case gpuMemoryUtilization = "gpu_memory_utilization"
        case maxNumSeqs = "max_num_seqs"
        case maxNumBatchedTokens = "max_num_batched_tokens"
        case maxModelLen = "max_model_len"
        case chunkedPrefill = "chunked_prefill"
        case blockSize = "block_size"
        case tensorParallel = "tensor_parallel"
        case weightFormat = "weight_format"
        case kvFormat = "kv_format"
        case numSchedulerSteps = "num_scheduler_steps"
        case memFractionStatic = "mem_fraction_static"
        case cudaGraphs = "cuda_graphs"
        case prefixCaching = "prefix_caching"
    }

    /// `other`'s settings where it has them, these elsewhere (the command line over a scenario).
    public func overridden(by other: ServingSettings) -> ServingSettings {
        var s = self
        s.engine = other.engine ?? engine
        s.engineVersion = other.engineVersion ?? engineVersion
        s.entrypoint = other.entrypoint ?? entrypoint
        s.gpuMemoryUtilization = other.gpuMemoryUtilization ?? gpuMemoryUtilization
        s.maxNumSeqs = other.maxNumSeqs ?? maxNumSeqs
        s.maxNumBatchedTokens = other.maxNumBatchedTokens ?? maxNumBatchedTokens
        s.maxModelLen = other.maxModelLen ?? maxModelLen
        s.chunkedPrefill = other.chunkedPrefill ?? chunkedPrefill
        s.blockSize = other.blockSize ?? blockSize
        s.tensorParallel = other.tensorParallel ?? tensorParallel
        s.weightFormat = other.weightFormat ?? weightFormat
        s.kvFormat = other.kvFormat ?? kvFormat
        s.sampler = other.sampler ?? sampler
        s.numSchedulerSteps = other.numSchedulerSteps ?? numSchedulerSteps
        s.memFractionStatic = other.memFractionStatic ?? memFractionStatic
        s.cudaGraphs = other.cudaGraphs ?? cudaGraphs
        s.prefixCaching = other.prefixCaching ?? prefixCaching
        return s
    }

    /// `base` with every setting given here in place of its own: no engine defaults, no checks
    /// (a fully written configuration, as the start-up-log corpus holds, decodes this way).
    public func applied(to base: ServingConfig) -> ServingConfig {
        var c = base
        if let engine { c.engine = engine }
        if let v = engineVersion { c.engineVersion = v }
        if let entrypoint { c.entrypoint = entrypoint }
        if let u = gpuMemoryUtilization { c.gpuMemoryUtilization = u }
        if let n = maxNumSeqs { c.maxNumSeqs = n }
        if let t = maxNumBatchedTokens { c.maxNumBatchedTokens = t }
        if let n = maxModelLen { c.maxModelLen = n }
        if let on = chunkedPrefill { c.chunkedPrefill = on }
        if let b = blockSize { c.blockSize = b }
        if let t = tensorParallel { c.tensorParallel = t }
        if let w = weightFormat { c.weightFormat = w }
        if let k = kvFormat { c.kvFormat = k }
        // A release given without a sampler takes that release's (the one rule, `defaultSampler`).
        if let s = sampler { c.sampler = s } else if let v = engineVersion { c.sampler = c.engine.defaultSampler(v) }
        if let n = numSchedulerSteps { c.numSchedulerSteps = n }
        if let f = memFractionStatic { c.memFractionStatic = f }
        if let g = cudaGraphs { c.cudaGraphs = g }
        if let p = prefixCaching { c.prefixCaching = p }
        return c
    }

    /// The settings in force on `gpu` for `model`: each one given, else the engine's default.
    /// - Throws: `ServingError` naming the key for a value out of range or a setting the engine
    ///   does not have (multi-step decoding outside vLLM V0, `mem_fraction_static` outside SGLang).
    public func resolve(gpu: GPU, model: ModelSpec) throws -> ServingConfig {
        let engine = self.engine ?? .vllmV1
        if let v = engineVersion, !engine.runs(v) {
            throw ServingError("engine_version \(v): \(engine.rawValue) is vLLM's \(engine == .vllmV0 ? "V0 engine, which releases before 0.11 run" : "V1 engine, which releases from 0.7 run")")
        }
        if let u = gpuMemoryUtilization, !(u > 0 && u <= 1) { throw ServingError("gpu_memory_utilization must be in (0, 1], found \(u)") }
        if let n = maxModelLen, n <= 0 { throw ServingError("max_model_len must be positive, found \(n)") }
        // Upper bounds far above any deployment and far below an overflow in the step arithmetic.
        if let n = maxModelLen, n > 1 << 30 { throw ServingError("max_model_len must be at most \(1 << 30), found \(n)") }
        if let n = maxNumSeqs, !(1...(1 << 20)).contains(n) { throw ServingError("max_num_seqs must be between 1 and \(1 << 20), found \(n)") }
        if let t = maxNumBatchedTokens, !(1...(1 << 30)).contains(t) { throw ServingError("max_num_batched_tokens must be between 1 and \(1 << 30), found \(t)") }
        if let b = blockSize, !(1...(1 << 16)).contains(b) { throw ServingError("block_size must be between 1 and \(1 << 16), found \(b)") }
        if let t = tensorParallel, !(1...64).contains(t) { throw ServingError("tensor_parallel must be between 1 and 64, found \(t)") }
        // vLLM's rule: TP divides the attention heads, and the KV heads divide by it or it by them (replicated).
        if let t = tensorParallel, t > 1 {
            guard model.heads % t == 0 else {
                throw ServingError("tensor_parallel \(t) does not divide \(model.name)'s \(model.heads) attention heads")
            }
            guard model.kvHeads % t == 0 || t % model.kvHeads == 0 else {
                throw ServingError("tensor_parallel \(t) and \(model.name)'s \(model.kvHeads) KV heads: neither divides the other")
            }
        }
        if let n = numSchedulerSteps {
            guard (1...64).contains(n) else { throw ServingError("num_scheduler_steps must be between 1 and 64, found \(n)") }
            guard n == 1 || engine == .vllmV0 else {
                throw ServingError("num_scheduler_steps \(n): multi-step decoding is vLLM V0's (0.5.5 – 0.10); engine \(engine.rawValue) does not have it")
            }
        }
        if let f = memFractionStatic {
            guard engine == .sglang else { throw ServingError("mem_fraction_static is SGLang's; engine \(engine.rawValue) sizes memory by gpu_memory_utilization") }
            guard f > 0, f <= 1 else { throw ServingError("mem_fraction_static must be in (0, 1], found \(f)") }
        }
        if prefixCaching == true, engine != .vllmV1 {
            throw ServingError("prefix_caching is modelled for vLLM V1 (its default there); engine \(engine.rawValue) runs without it")
        }
        var c = applied(to: ServingConfig())
        c.engine = engine
        let version = engineVersion ?? engine.defaultVersion
        c.engineVersion = version
        c.sampler = sampler ?? engine.defaultSampler(version)
        c.prefixCaching = prefixCaching ?? (engine == .vllmV1)
        // What is not given: the engine's default for this GPU and max_model_len.
        let modelLen = c.modelLen(for: model)
        let d = engine.defaults(gpu: gpu, maxModelLen: modelLen, offline: entrypoint == .offline)
        c.maxNumSeqs = maxNumSeqs ?? d.maxNumSeqs
        let chunked = chunkedPrefill ?? d.chunkedPrefill
        c.chunkedPrefill = chunked
        // A deployment that turns chunked prefill on where the engine's default has it off takes
        // vLLM 0.6's chunk of 2048; off, a step must hold the longest prompt.
        c.maxNumBatchedTokens = maxNumBatchedTokens ?? (chunked == d.chunkedPrefill ? d.maxNumBatchedTokens : chunked ? 2048 : max(modelLen, 2048))
        if blockSize == nil, engine == .sglang { c.blockSize = 1 } // SGLang's page_size: token-granular KV
        c.memFractionStatic = memFractionStatic ?? engine.memFractionStatic(tensorParallel: c.tensorParallel)
        return c
    }
}
