import Hardware

/// The KV-cache compression policies, by how a serving engine experiences them: when they
/// compress, how they lay out memory, what scoring costs. (Which tokens they keep is the
/// policies' own business; the simulator needs only how many, and when.)
public enum PolicyName: String, CaseIterable, Codable, Sendable {
    case full
    case streamingLLM = "streamingllm"
    case h2o
    case snapKV = "snapkv"
    case pyramidKV = "pyramidkv"
    case adaKV = "adakv"
    case chunkKV = "chunkkv"
    case kvCompress = "kvcompress"
    case compressKV = "compresskv"

    /// When a policy evicts.
    public enum Timing: String, Codable, Sendable {
        /// Once, at the end of prefill; the cache then grows by one token per decode step.
        case prefill
        /// At the end of prefill and during decode, holding the cache at the budget
        /// (StreamingLLM's recent window, H2O's heavy hitters).
        case continual
        /// At the end of prefill, and again whenever the scheduler would otherwise preempt
        /// (KV-Compress's vLLM integration).
        case onPressure
    }

    public var timing: Timing {
        switch self {
        case .full, .snapKV, .pyramidKV, .adaKV, .chunkKV, .compressKV: .prefill
        case .streamingLLM, .h2o: .continual
        case .kvCompress: .onPressure
        }
    }

    /// Per-head paged blocks (KV-Compress's layout: blocks of one (layer, KV head)) versus
    /// vLLM's per-sequence blocks spanning all layers and heads.
    public var perHeadBlocks: Bool {
        switch self {
        case .kvCompress, .adaKV, .pyramidKV, .compressKV: true
        default: false
        }
    }

    /// The observation window the policy's reference code uses by default (REFERENCES.md).
    public var defaultWindow: Int {
        switch self {
        case .full, .streamingLLM: 0
        case .h2o, .kvCompress, .compressKV, .pyramidKV: 8
        case .snapKV, .adaKV: 32
        case .chunkKV: 8
        }
    }
}

/// A budget in the design's units: tokens kept per layer per KV head, window included, or the
/// fraction of the prompt's KV kept.
public enum Budget: Equatable, Sendable, CustomStringConvertible {
    case tokens(Int)
    case fraction(Double)

    /// Tokens kept of a `prompt`-token prompt (never more than the prompt).
    public func kept(prompt: Int) -> Int {
        switch self {
        case let .tokens(b): min(prompt, b)
        case let .fraction(f): min(prompt, max(1, Int((Double(prompt) * f).rounded(.up))))
        }
    }

    public var description: String {
        switch self {
        case let .tokens(b): "\(b) tokens"
        case let .fraction(f): "kv-fraction \(f)"
        }
    }
}

/// Physical KV footprint of a sequence in per-head blocks. The nominal footprint charges every
/// (layer, KV head) the same kept count; a trace-driven footprint (per-head counts from replay)
/// conforms to the same protocol.
public protocol KVFootprint: Sendable {
    /// PHBs a sequence holds with `tokens` tokens in total, keeping `kept` per global layer and head.
    func phb(tokens: Int, kept: Int, plan: MemoryPlan) -> Int
    /// The same function with the plan's constants unpacked once, for the simulator's hot loop.
    func calculator(plan: MemoryPlan) -> @Sendable (_ tokens: Int, _ kept: Int) -> Int
}

extension KVFootprint {
    public func calculator(plan: MemoryPlan) -> @Sendable (_ tokens: Int, _ kept: Int) -> Int {
        { [self] tokens, kept in phb(tokens: tokens, kept: kept, plan: plan) }
    }
}

/// Every (layer, head) keeps the same count; per-sequence blocks round each layer-head up to
/// whole blocks, per-head blocks pack the sequence's tokens densely into its heads' blocks
/// (KV-Compress evicts down to exactly ⌈C′·L·H/16⌉ blocks).
public struct NominalFootprint: KVFootprint {
    public var perHeadBlocks: Bool
    public init(perHeadBlocks: Bool) { self.perHeadBlocks = perHeadBlocks }

    public func phb(tokens: Int, kept: Int, plan: MemoryPlan) -> Int {
        NominalFootprintCalculator(plan: plan, perHeadBlocks: perHeadBlocks).phb(tokens: tokens, kept: kept)
    }
}

/// The nominal footprint with the plan's constants unpacked, for the simulator's hot loop.
struct NominalFootprintCalculator {
    let blockSize: Int
    let heads: Int
    let globalLayers: Int
    let localLayers: Int
    let window: Int
    let perHeadBlocks: Bool

    init(plan: MemoryPlan, perHeadBlocks: Bool) {
        blockSize = plan.serving.blockSize
        heads = plan.model.kvHeadsPerGPU(tp: plan.serving.tensorParallel)
        globalLayers = plan.model.globalLayers
        localLayers = plan.model.localLayers
        window = plan.model.slidingWindow ?? Int.max
        self.perHeadBlocks = perHeadBlocks
    }

    @inline(__always)
    func phb(tokens: Int, kept: Int) -> Int {
        let local = localLayers == 0 ? 0 : localLayers * heads * ((min(tokens, window) + blockSize - 1) / blockSize)
        if perHeadBlocks { return (globalLayers * heads * kept + blockSize - 1) / blockSize + local }
        return globalLayers * heads * ((kept + blockSize - 1) / blockSize) + local
    }
}

/// A policy at a budget, with the settings the simulator needs.
public struct CompressionSpec: Sendable {
    public var policy: PolicyName
    public var budget: Budget
    public var window: Int
    /// ChunkKV: layers per index-reuse group (1 = every layer scores).
    public var reuseGroup: Int
    public var footprint: any KVFootprint

    public init(policy: PolicyName, budget: Budget, window: Int? = nil, reuseGroup: Int = 1, footprint: (any KVFootprint)? = nil) {
        self.policy = policy
        self.budget = budget
        self.window = window ?? policy.defaultWindow
        self.reuseGroup = max(1, reuseGroup)
        self.footprint = footprint ?? NominalFootprint(perHeadBlocks: policy.perHeadBlocks)
    }

    /// Full cache: nothing is evicted.
    public static let none = CompressionSpec(policy: .full, budget: .fraction(1))

    public var compresses: Bool { policy != .full }

    /// Tokens per layer per KV head kept after compressing a `prompt`-token prefix.
    /// KV-Compress rounds its cache up to whole blocks (C′ = C rounded up to 16).
    public func kept(prompt: Int, blockSize: Int) -> Int {
        guard compresses else { return prompt }
        var k = budget.kept(prompt: prompt)
        if policy == .kvCompress { k = min(prompt, (k + blockSize - 1) / blockSize * blockSize) }
        return max(k, min(prompt, window))
    }

    /// Scoring and compaction seconds for one sequence.
    func compressionSeconds(prompt: Int, kept: Int, cost: CostModel) -> Double {
        guard compresses, policy != .streamingLLM else {
            // StreamingLLM keeps fixed positions: only the compaction copy.
            return policy == .streamingLLM ? cost.compressionTime(promptTokens: prompt, keptTokens: kept, window: 0, scoredLayers: 0,
                                                                  fullAttentionScores: false, sortsAcrossLayers: false) : 0
        }
        let layers = cost.model.globalLayers
        let scored = policy == .chunkKV ? (layers + reuseGroup - 1) / reuseGroup : layers
        return cost.compressionTime(promptTokens: prompt, keptTokens: kept, window: max(window, 1), scoredLayers: scored,
                                    fullAttentionScores: policy == .h2o, sortsAcrossLayers: policy == .kvCompress)
    }
}
