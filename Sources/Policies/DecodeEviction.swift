// Continual eviction (DESIGN.md "When compression happens"): the policies that also evict
// during decode — StreamingLLM's rolling window, H2O's heavy hitters, KV-Compress's block
// eviction — hold a sequence at its budget as it grows. One state machine serves the engine
// (fed the real attention of each decode step over the slots it holds) and replay (fed the
// full-cache rows restricted to the same positions), so both evict by the same code.
//
// Each decode step, in order: `append` the new token's position (its key is in the cache
// before its query attends), `observe` every (layer, query head) attention row of the step,
// then `evict`. Positions are held in slot order (ascending), as `KVCache.compact` packs them.

/// The continual part of a policy, started from its prefill selection.
public struct DecodeEviction: Sendable, Equatable {
    public enum Rule: Sendable, Equatable {
        /// StreamingLLM: the first `sinks` positions and the most recent ones.
        case recent(sinks: Int)
        /// H2O: the `recent` newest positions, and the rest by accumulated attention (plain sums).
        case heavyHitters(recent: Int)
        /// KV-Compress: whole blocks by the accumulated squared attention (unpooled during
        /// decode), the newest `policy.window` protected, the sequence held at `allowed` blocks.
        case blocks(KVCompress, allowed: Int)
    }

    public let rule: Rule
    /// Tokens per (layer, KV head), as at prefill.
    public let budget: Int
    let compressible: [Bool]
    let groupSize: Int
    /// Per layer and KV head, the positions held, in slot order.
    public private(set) var held: [[[Int]]]
    /// Per compressible layer and KV head, the score of each held slot (empty for other layers
    /// and for StreamingLLM, which needs none).
    var scores: [[[Float]]]

    /// - Parameters:
    ///   - initial: per layer, KV head and prompt position, the score at the end of prefill.
    init(rule: Rule, budget: Int, layers: [LayerStatistics], selection: Selection, initial: [[[Float]]]?) {
        self.rule = rule
        self.budget = budget
        compressible = layers.map(\.isGlobal)
        groupSize = layers.first?.groupSize ?? 1
        held = selection.kept
        scores = layers.indices.map { l in
            guard let initial, layers[l].isGlobal else { return Array(repeating: [], count: layers[l].kvHeads) }
            return selection.kept[l].enumerated().map { g, positions in positions.map { initial[l][g][$0] } }
        }
    }

    /// The token at `position` entered the cache of every layer and KV head.
    public mutating func append(position: Int) {
        for l in held.indices {
            for g in held[l].indices {
                held[l][g].append(position)
                if scored && compressible[l] { scores[l][g].append(0) }
            }
        }
    }

    /// False for StreamingLLM, which evicts by position alone.
    private var scored: Bool { if case .recent = rule { false } else { true } }

    /// One query head's attention over the slots `firstSlot …` of `layer` at this step.
    public mutating func observe(layer l: Int, queryHead h: Int, firstSlot: Int, weights: UnsafeBufferPointer<Float>) {
        guard compressible[l] else { return }
        let g = h / groupSize
        switch rule {
        case .recent:
            return
        case .heavyHitters:
            scores[l][g].withUnsafeMutableBufferPointer { s in for j in weights.indices { s[firstSlot + j] += weights[j] } }
        case .blocks:
            scores[l][g].withUnsafeMutableBufferPointer { s in for j in weights.indices { s[firstSlot + j] += weights[j] * weights[j] } }
        }
    }

    /// Evicts what the budget no longer allows.
    /// - Returns: true when positions were evicted (`held` changed).
    public mutating func evict() -> Bool {
        var changed = false
        switch rule {
        case let .recent(sinks):
            for l in held.indices where compressible[l] {
                for g in held[l].indices where held[l][g].count > budget {
                    held[l][g].removeSubrange(sinks..<(sinks + held[l][g].count - budget))
                    changed = true
                }
            }
        case let .heavyHitters(recent):
            for l in held.indices where compressible[l] {
                for g in held[l].indices where held[l][g].count > budget {
                    let count = held[l][g].count
                    let kept = topIndices(Array(scores[l][g][0..<(count - recent)]), count: budget - recent) + Array((count - recent)..<count)
                    keep(kept, layer: l, head: g)
                    changed = true
                }
            }
        case let .blocks(policy, allowed):
            let metrics = scores.indices.map { l in
                scores[l].map { s in s.enumerated().map { $0 >= s.count - policy.window ? Float.infinity : $1 } }
            }
            let kept = policy.evictBlocks(metrics, compressible: compressible, allowed: allowed)
            for l in held.indices where compressible[l] {
                for g in held[l].indices where kept[l][g].count < held[l][g].count {
                    keep(kept[l][g], layer: l, head: g)
                    changed = true
                }
            }
        }
        return changed
    }

    private mutating func keep(_ slots: [Int], layer l: Int, head g: Int) {
        held[l][g] = slots.map { held[l][g][$0] }
        if scored { scores[l][g] = slots.map { scores[l][g][$0] } }
    }
}

extension PolicyKind {
    /// The decode-time eviction that continues `selection` (this policy's prefill selection at
    /// `budget`), or nil for a policy that compresses once.
    /// - Throws: `PolicyError` for missing statistics.
    public func decodeEviction(_ layers: [LayerStatistics], selection: Selection, budget: Int) throws -> DecodeEviction? {
        switch self {
        case .streamingLLM:
            guard case let .streamingLLM(sinks) = prefillPolicy! else { return nil }
            return DecodeEviction(rule: .recent(sinks: sinks), budget: budget, layers: layers, selection: selection, initial: nil)
        case .h2o:
            guard case let .h2o(fraction) = prefillPolicy! else { return nil }
            return DecodeEviction(rule: .heavyHitters(recent: h2oRecent(budget: budget, fraction: fraction)), budget: budget,
                                  layers: layers, selection: selection, initial: layers.map(h2oScores))
        case .kvCompress:
            let policy = KVCompress()
            let heads = layers.reduce(0) { $0 + ($1.isGlobal ? $1.kvHeads : 0) }
            return DecodeEviction(rule: .blocks(policy, allowed: policy.allowedBlocks(budget: budget, heads: heads)), budget: budget,
                                  layers: layers, selection: selection, initial: try policy.scores(layers))
        default:
            return nil
        }
    }
}

/// A policy applied to one prompt: the positions prefill keeps, and the eviction decode goes on
/// with (nil: the cache then grows by one token per step).
public struct Compression: Sendable, Equatable {
    public var selection: Selection
    public var decode: DecodeEviction?

    public init(selection: Selection, decode: DecodeEviction? = nil) {
        self.selection = selection
        self.decode = decode
    }
}

extension PolicyKind {
    /// The policy at `budget` on these statistics; `continual: false` compresses once after
    /// prefill even for a continual policy (KV-Compress's fixed-rate LongBench runs).
    /// - Throws: `PolicyError` (budget below the window, missing statistics or profile).
    public func compress(_ layers: [LayerStatistics], budget: Int, profile: HeadProfile? = nil, continual: Bool = true) throws -> Compression {
        let selection = try select(layers, budget: budget, profile: profile)
        return Compression(selection: selection, decode: continual ? try decodeEviction(layers, selection: selection, budget: budget) : nil)
    }
}
