import Hardware
import Policies

/// When a continual policy evicts during decode in a serving engine.
public enum DecodeTrigger: String, Codable, Sendable, CaseIterable {
    /// At every decode step, holding each sequence at its budget: the engine's and replay's
    /// behaviour (`DecodeEviction`), and vLLM-kvcompress's default `compression_interval` 1.
    case everyStep = "every-step"
    /// Only when the scheduler would otherwise preempt, compressing every running sequence back
    /// to its budget: vLLM-kvcompress's `benchmark_throughput.py` (interval 10⁶), the
    /// configuration of the paper's throughput figures.
    case onPressure = "on-pressure"
}

/// A policy at a budget, as the simulator applies it. The policy's traits (timing, layout,
/// window, scoring cost) are `PolicyKind`'s; the settings here only override them where a
/// benchmark configuration differs (KV-Compress's protected window 32, ChunkKV's reuse group).
/// No `CompressionSpec` at all is the full cache.
public struct CompressionSpec: Sendable {
    public var policy: PolicyKind
    public var budget: Budget
    /// Tokens every selection keeps whatever the budget (default: the policy's).
    public var window: Int
    /// ChunkKV: layers per index-reuse group (1 = every layer scores).
    public var reuseGroup: Int
    /// For continual policies: when decode eviction happens.
    public var decodeTrigger: DecodeTrigger
    public var footprint: any KVFootprint
    /// The most KVs (tokens × layers × KV heads of the sequences' whole current caches) one
    /// compression pass takes in; nil: no cap. It binds with the on-pressure trigger, where a pass
    /// runs after every step that finished a prefill and whenever blocks run out (with the
    /// every-step trigger each step is a pass, so a cap would only delay a sequence by a step).
    /// KV-Compress: `KVCompress.maxKVPerCompression`.
    public var maxKVPerPass: Int?

    public init(policy: PolicyKind, budget: Budget, window: Int? = nil, reuseGroup: Int? = nil, decodeTrigger: DecodeTrigger = .everyStep,
                footprint: (any KVFootprint)? = nil, maxKVPerPass: Int? = nil) {
        self.policy = policy
        self.budget = budget
        self.window = window ?? policy.window
        self.reuseGroup = policy == .chunkKV ? max(1, reuseGroup ?? policy.scoring.layerReuse) : 1
        self.decodeTrigger = decodeTrigger
        self.footprint = footprint ?? NominalFootprint(layout: policy.layout)
        self.maxKVPerPass = maxKVPerPass ?? (policy == .kvCompress ? KVCompress.maxKVPerCompression : nil)
    }

    /// Tokens per layer per KV head kept after compressing a `prompt`-token prefix
    /// (`Budget.tokens`, then the policy's own rounding: KV-Compress keeps whole blocks).
    public func kept(prompt: Int, blockSize: Int) -> Int {
        policy.keptTokens(budget, prompt: prompt, window: window, blockSize: blockSize)
    }

    /// Whether the cache is held at the budget during decode (else it grows by one token a step).
    var holdsDuringDecode: Bool { policy.timing == .continual && decodeTrigger == .everyStep }

    /// Whether running sequences are compressed again when blocks run out.
    /// A finished prefill then waits for the pass after its step (vllm-kvcompress's forced pass
    /// after new prefills, `schedule_kvcompress` in vllm/core/scheduler.py, which also compresses
    /// running sequences that grew past their budget) instead of being compressed on its own.
    var compressesOnPressure: Bool { policy.timing == .continual && decodeTrigger == .onPressure }

    /// Tokens per global layer and head a request of `prompt` + `output` tokens holds when it
    /// finishes (the largest it reaches).
    public func keptAtEnd(prompt: Int, output: Int, blockSize: Int) -> Int {
        let kept = kept(prompt: prompt, blockSize: blockSize)
        return holdsDuringDecode ? kept : kept + output
    }

    /// Scoring and compaction seconds for one sequence.
    func compressionSeconds(prompt: Int, kept: Int, cost: any LatencyModel) -> Double {
        let scoring = policy.scoring
        let layers = cost.model.globalLayers
        switch scoring.queries {
        case .none:
            return cost.compressionTime(promptTokens: prompt, keptTokens: kept, window: 0, scoredLayers: 0,
                                        fullAttentionScores: false, sortsAcrossLayers: false)
        case .window, .allPrompt:
            return cost.compressionTime(promptTokens: prompt, keptTokens: kept, window: max(window, 1),
                                        scoredLayers: (layers + reuseGroup - 1) / reuseGroup,
                                        fullAttentionScores: scoring.queries == .allPrompt, sortsAcrossLayers: scoring.sortsAcrossLayers)
        }
    }
}

/// The full cache (nil) or a compression setting, answered alike.
extension Optional where Wrapped == CompressionSpec {
    /// Tokens kept after prefill: the whole prompt for the full cache.
    public func kept(prompt: Int, blockSize: Int) -> Int { self?.kept(prompt: prompt, blockSize: blockSize) ?? prompt }

    /// Tokens kept when a request of `prompt` + `output` tokens finishes: all of them for the full cache.
    public func keptAtEnd(prompt: Int, output: Int, blockSize: Int) -> Int {
        self?.keptAtEnd(prompt: prompt, output: output, blockSize: blockSize) ?? prompt + output
    }

    /// The blocks it is charged in: the full cache in vLLM's per-sequence blocks.
    public var footprint: any KVFootprint { self?.footprint ?? NominalFootprint(layout: .perSequence) }
}

extension MemoryPlan {
    /// The one max-concurrency rule for the full cache (nil) or a compression setting, for
    /// requests of `prompt` + `output` tokens.
    public func maxConcurrency(_ compression: CompressionSpec?, prompt: Int, output: Int) -> Int {
        maxConcurrency(footprint: compression.footprint, prompt: prompt, output: output,
                       keptAtEnd: compression.keptAtEnd(prompt: prompt, output: output, blockSize: serving.blockSize))
    }
}
