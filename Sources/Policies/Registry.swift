// Policies by name, with the papers' defaults: what `--policy`/`--policies` parse into, for the
// engine's compressed runs and for trace replay alike (DESIGN.md: a policy is implemented once).

/// A policy at its defaults, by the name users type.
public enum PolicyKind: String, CaseIterable, Sendable, Codable {
    case streamingLLM = "streamingllm"
    case h2o
    case snapKV = "snapkv"
    case pyramidKV = "pyramidkv"
    case adaKV = "adakv"
    case chunkKV = "chunkkv"
    case kvCompress = "kvcompress"
    case compressKV = "compresskv"

    /// The names, in catalogue order, for error messages and help.
    public static var names: [String] { allCases.map(\.rawValue) }

    /// Parses a name (case-insensitive).
    /// - Throws: `PolicyError` listing the known names.
    public init(parsing name: String) throws {
        guard let kind = PolicyKind(rawValue: name.lowercased()) else {
            throw PolicyError("unknown policy '\(name)' (known: \(PolicyKind.names.joined(separator: ", ")))")
        }
        self = kind
    }

    /// Where a team can run this policy for real today, by serving stack (REFERENCES.md): the
    /// press of NVIDIA's kvpress for Hugging Face transformers, a fork of an engine, or the
    /// paper's code. Upstream vLLM and SGLang implement none of these evictions.
    public var implementations: String {
        switch self {
        case .streamingLLM: "kvpress StreamingLLMPress (Hugging Face transformers); no vLLM or SGLang release"
        case .h2o: "kvpress ObservedAttentionPress (H2O's score without its recent window; transformers, eager attention); no vLLM or SGLang release"
        case .snapKV: "kvpress SnapKVPress (transformers); no vLLM or SGLang release"
        case .pyramidKV: "kvpress PyramidKVPress (transformers); no vLLM or SGLang release"
        case .adaKV: "kvpress AdaKVPress over SnapKVPress (transformers; it masks keys rather than freeing memory); no vLLM or SGLang release"
        case .chunkKV: "kvpress ChunkKVPress over SnapKVPress (transformers; no layer-wise index reuse); no vLLM or SGLang release"
        case .kvCompress: "the KV-Compress fork of vLLM 0.6 (IsaacRe/vllm-kvcompress: V0 engine, --enforce-eager, no chunked prefill or prefix caching); no upstream vLLM, SGLang or kvpress"
        case .compressKV: "the paper's research code (TUDa-HWAI/CompressKV, transformers); no serving engine or kvpress press"
        }
    }

    /// The tokens every selection keeps whatever the budget (the observation window, or
    /// StreamingLLM's sinks): a smaller budget is an error.
    public var window: Int {
        switch self {
        case .kvCompress: KVCompress().window
        case .compressKV: CompressKV.defaultWindow
        default: prefillPolicy!.window
        }
    }

    /// When the policy evicts (DESIGN.md "When compression happens").
    public var timing: Timing {
        switch self {
        case .streamingLLM, .h2o, .kvCompress: .continual
        case .snapKV, .pyramidKV, .adaKV, .chunkKV, .compressKV: .prefill
        }
    }

    /// Whether what the policy keeps of a prompt is still made of that prompt's prefix blocks, so
    /// that a paged engine's prefix cache can share them between requests and find them again:
    /// true when the kept set depends on positions only (StreamingLLM's sinks and latest tokens,
    /// whatever follows them: a sliding window); false when the selection scores tokens with the
    /// prompt's own queries (the observation window at its end, where the question is, or all of
    /// them for H2O), which makes the kept cache specific to the request.
    public var keepsPrefixBlocks: Bool { scoring.queries == .none }

    /// True for the policies that also evict during decode (StreamingLLM, H2O, KV-Compress).
    public var isContinual: Bool { timing == .continual }

    /// How a paged serving engine lays out the kept tokens: policies whose kept counts vary by
    /// layer or head need per-head blocks to turn the variation into freed memory.
    public var layout: BlockLayout {
        switch self {
        case .kvCompress, .adaKV, .pyramidKV, .compressKV: .perHead
        case .streamingLLM, .h2o, .snapKV, .chunkKV: .perSequence
        }
    }

    /// What the policy's paged engine stores beside the KV (nil: nothing beyond vLLM's blocks).
    public var poolMetadata: PoolMetadata? {
        switch self {
        case .kvCompress: .kvCompress
        case .streamingLLM, .h2o, .snapKV, .pyramidKV, .adaKV, .chunkKV, .compressKV: nil
        }
    }

    /// The decode attention kernel of the engine that runs the policy for real.
    public var decodeAttention: DecodeAttention {
        switch self {
        case .kvCompress: .perHeadPaged
        case .streamingLLM, .h2o, .snapKV, .pyramidKV, .adaKV, .chunkKV, .compressKV: .engine
        }
    }

    /// What scoring costs a serving engine at the end of prefill.
    public var scoring: ScoringCost {
        switch self {
        case .streamingLLM: ScoringCost(queries: .none)
        case .h2o: ScoringCost(queries: .allPrompt)
        case .kvCompress: ScoringCost(queries: .window, sortsAcrossLayers: true, decodeMetrics: true)
        case .chunkKV: ScoringCost(queries: .window, layerReuse: Self.chunkReuse(prefillPolicy!))
        case .snapKV, .pyramidKV, .adaKV, .compressKV: ScoringCost(queries: .window)
        }
    }

    private static func chunkReuse(_ policy: Policy) -> Int {
        if case let .chunkKV(_, _, _, _, reuse) = policy { return reuse }
        return 1
    }

    /// Tokens per layer per KV head the policy keeps on average at `budget` (already resolved to
    /// tokens) of an `n`-token prompt: the budget, except that KV-Compress rounds it up to whole
    /// blocks (C′, `KVCompress.roundedBudget`).
    public func keptTokens(budget: Int, prompt n: Int, blockSize: Int) -> Int {
        let b = self == .kvCompress ? KVCompress(blockSize: blockSize).roundedBudget(budget) : budget
        return min(n, b)
    }

    /// `keptTokens` at `budget` as the user gave it (tokens or a fraction, `Budget.tokens`), with the
    /// protected `window` (default: the policy's).
    public func keptTokens(_ budget: Budget, prompt n: Int, window: Int? = nil, blockSize: Int) -> Int {
        keptTokens(budget: budget.tokens(prompt: n, window: window ?? self.window), prompt: n, blockSize: blockSize)
    }

    /// How a run of the policy at `budget` tokens is labelled (a recorded outcome, a replay row):
    /// `POLICY@BUDGET`, with `+once` for a continual policy that compressed only after the prompt.
    public func runLabel(budget: Int, continual: Bool) -> String {
        "\(rawValue)@\(budget)" + (isContinual && !continual ? "+once" : "")
    }

    /// The policy, budget and continual flag a `runLabel` names; nil for any other text ("full").
    public static func parseRunLabel(_ label: String) -> (policy: PolicyKind, budget: Int, continual: Bool)? {
        let once = label.hasSuffix("+once")
        let parts = (once ? String(label.dropLast(5)) : label).split(separator: "@")
        guard parts.count == 2, let policy = PolicyKind(rawValue: String(parts[0])), let budget = Int(parts[1]) else { return nil }
        return (policy, budget, !once)
    }

    /// True when the policy needs a head profile (`HeadProfile`).
    public var needsProfile: Bool { self == .compressKV }

    var prefillPolicy: Policy? {
        switch self {
        case .streamingLLM: .streamingLLM()
        case .h2o: .h2o()
        case .snapKV: .snapKV()
        case .pyramidKV: .pyramidKV()
        case .adaKV: .adaKV()
        case .chunkKV: .chunkKV()
        case .kvCompress, .compressKV: nil
        }
    }

    /// The selection of this policy at `budget` tokens per layer per KV head (window included).
    /// - Throws: `PolicyError` for a budget below the window, a missing profile or statistics.
    public func select(_ layers: [LayerStatistics], budget: Int, profile: HeadProfile? = nil) throws -> Selection {
        switch self {
        case .kvCompress:
            return try KVCompress().select(layers, budget: budget)
        case .compressKV:
            guard let profile else {
                throw PolicyError("compresskv needs a head profile (Semantic Retrieval Head scores per layer): --profile FILE.json")
            }
            return try CompressKV(profile: profile).select(layers, budget: budget)
        default:
            return try prefillPolicy!.select(layers, budget: budget)
        }
    }

    /// The statistics windows this policy reads: (w, squared). The recorder records exactly the
    /// union of these over the policies (`statisticWindows`).
    public var windowsRead: [(window: Int, squared: Bool)] {
        switch self {
        case .streamingLLM, .h2o: []
        case .kvCompress: [(KVCompress().window, true)]
        case .compressKV: [(CompressKV.defaultWindow, false)]
        default: [(prefillPolicy!.window, false)]
        }
    }

    /// The windows `policies` read: plain sums and squared sums, ascending.
    public static func statisticWindows(of policies: [PolicyKind] = allCases) -> (sums: [Int], squared: [Int]) {
        let read = policies.flatMap(\.windowsRead)
        return (Array(Set(read.filter { !$0.squared }.map(\.window))).sorted(), Array(Set(read.filter(\.squared).map(\.window))).sorted())
    }
}

/// When a policy evicts.
public enum Timing: String, Codable, Sendable {
    /// Once, at the end of prefill; the cache then grows by one token per decode step.
    case prefill
    /// At the end of prefill and during decode, holding the cache at the budget (StreamingLLM's
    /// rolling window, H2O's heavy hitters, KV-Compress's block eviction). The engine and replay
    /// evict at every decode step (`DecodeEviction`); a serving simulation may instead evict only
    /// when blocks run out (KV-Compress's benchmark configuration, see the simulator's
    /// `DecodeTrigger`).
    case continual
}

/// Memory a policy's paged engine keeps beside the K and V it evicts from, which the KV pool pays
/// for (the pool is sized in blocks of K, V and this).
public struct PoolMetadata: Sendable, Equatable {
    /// Bytes per KV slot (one token of one layer's KV head), and more per query head of its group.
    public var bytesPerSlot: Int
    public var bytesPerSlotPerQueryHead: Int
    /// Bytes per block.
    public var bytesPerBlock: Int
    /// A block table of one int32 per (layer, sequence slot, KV head, block of `max_model_len`),
    /// allocated before the pool is sized.
    public var preallocatedBlockTable: Bool

    /// vllm-kvcompress (`KVCompressConfig.get_cache_block_size`, vllm/config.py): per KV the
    /// sequence index, eviction metric and position (4 B each) and two temporary metrics per query
    /// head (4 B each); 21 B per block; its block table `[layers, max_num_seqs, kv_heads,
    /// ⌈max_model_len / 16⌉]` int32 (kvcompress/block.py). A Llama-3.1-8B block of 16 tokens is
    /// 8,917 bytes instead of 8,192.
    public static let kvCompress = PoolMetadata(bytesPerSlot: 12, bytesPerSlotPerQueryHead: 8, bytesPerBlock: 21, preallocatedBlockTable: true)
}

/// Which kernel a serving engine's decode steps attend with.
public enum DecodeAttention: String, Codable, Sendable {
    /// The engine's own (FlashAttention or FlashInfer over vLLM's or SGLang's paged cache): one
    /// read of each KV head serves all the query heads of its group.
    case engine
    /// vllm-kvcompress's paged-attention kernel over per-head block tables
    /// (csrc/attention/kvcompress_attention_kernels.cu, adapted from vLLM 0.3.3's v1/v2 kernels;
    /// vllm/attention/ops/paged_attn.py `KVCAttention.forward_decode`): a thread block per query
    /// head (grid `(num_heads, num_seqs, partitions)`, `kv_head_idx = head_idx /
    /// num_queries_per_kv`), so every KV head's blocks are fetched once per query head of the
    /// group, and each key's attention is written out per query head (float32, with an int32
    /// position read) for the eviction metrics. With compression off the fork runs stock
    /// FlashAttention (flash_attn.py), so a full-cache baseline is `.engine`.
    case perHeadPaged = "per-head-paged"
}

/// How a paged KV cache holds a sequence's kept tokens.
public enum BlockLayout: String, Codable, Sendable {
    /// vLLM's blocks: one block spans every (layer, KV head), so each holds the largest count.
    case perSequence = "per-sequence"
    /// KV-Compress's blocks of one (layer, KV head): each head pays only its own partly filled block.
    case perHead = "per-head"

    /// Per-head blocks for `layerHeads` (layer, KV head) pairs keeping `kept` tokens each. Per-head
    /// blocks are packed densely (KV-Compress evicts down to exactly ⌈kept·layerHeads/blockSize⌉).
    public func blocks(kept: Int, layerHeads: Int, blockSize: Int) -> Int {
        switch self {
        case .perSequence: layerHeads * ((kept + blockSize - 1) / blockSize)
        case .perHead: (layerHeads * kept + blockSize - 1) / blockSize
        }
    }

    /// A human name for reports.
    public var label: String { "\(rawValue) blocks" }
}

/// What a policy's scoring at the end of prefill costs a serving engine.
public struct ScoringCost: Sendable, Equatable {
    public enum Queries: Sendable, Equatable {
        /// Scores nothing (StreamingLLM keeps fixed positions): only the compaction copy.
        case none
        /// The observation window's queries against every key.
        case window
        /// Every prompt query's attention row (H2O's accumulated attention).
        case allPrompt
    }

    public var queries: Queries
    /// Sorts eviction metrics across every layer and head of the sequence (KV-Compress).
    public var sortsAcrossLayers: Bool
    /// Layers per index-reuse group: only one layer of each group scores (ChunkKV).
    public var layerReuse: Int
    /// Keeps per-KV eviction metrics up to date at every decode step (KV-Compress: its decode
    /// attention writes each key's attention, which vllm-kvcompress clears and accumulates over
    /// the whole pool every step, with host syncs per running sequence; benchmark_throughput.py
    /// and kvcompress/ in IsaacRe/vllm-kvcompress).
    public var decodeMetrics: Bool

    public init(queries: Queries, sortsAcrossLayers: Bool = false, layerReuse: Int = 1, decodeMetrics: Bool = false) {
        self.queries = queries
        self.sortsAcrossLayers = sortsAcrossLayers
        self.layerReuse = layerReuse
        self.decodeMetrics = decodeMetrics
    }
}
