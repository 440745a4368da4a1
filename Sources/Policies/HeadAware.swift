import Foundation
import Reporting
import HeapModule

// The two head-aware seeds: KV-Compress (per-head variable rates over a paged layout, whole
// blocks evicted) and CompressKV (Semantic Retrieval Heads score the tokens; layer budgets from
// offline eviction errors). REFERENCES.md has the algorithms and their sources.

/// KV-Compress's eviction (IsaacRe/vllm-kvcompress): per (layer, KV head, token) the squared
/// attention of the last `window` queries, max-pooled per query head and summed over the group;
/// the `window` most recent tokens are protected. Heads hold blocks of `blockSize` tokens; evicting
/// e blocks of a head costs its ((e − 1)·blockSize + h)-th smallest metric (h = tokens in its last,
/// partly filled block). The cheapest blocks across all heads and layers go until the sequence
/// fits ⌈C′·L·H/blockSize⌉ blocks, C′ = the budget rounded up to a multiple of the block size.
public struct KVCompress: Sendable, Equatable {
    public var window: Int
    public var kernel: Int
    public var blockSize: Int

    public init(window: Int = 8, kernel: Int = 7, blockSize: Int = 16) {
        self.window = window
        self.kernel = kernel
        self.blockSize = blockSize
    }

    /// The metric per (layer, KV head, prompt position) before protection: the group's squared
    /// window sums, max-pooled along the keys before the window; the window's own keys unpooled
    /// (they are protected at prefill and keep this as their starting metric during decode).
    public func scores(_ layers: [LayerStatistics]) throws -> [[[Float]]] {
        try layers.map { layer in
            let squares = try layer.window(window, squared: true)
            let n = layer.keys, cut = max(0, n - window)
            return (0..<layer.kvHeads).map { g in
                let rows = layer.group(g).map { squares[$0] }
                return groupSum(rows.map { Pooling.max.apply(Array($0[0..<cut]), kernel: kernel) }) + groupSum(rows.map { Array($0[cut..<n]) })
            }
        }
    }

    /// The metric per (layer, KV head, prompt position); protected positions are +∞.
    public func metric(_ layers: [LayerStatistics]) throws -> [[[Float]]] {
        try scores(layers).map { $0.map { m in m.enumerated().map { $0 >= m.count - window ? .infinity : $1 } } }
    }

    /// The blocks a sequence may hold at `budget` tokens per (layer, KV head) over `heads`
    /// compressible KV heads: ⌈C′·heads/blockSize⌉, C′ = the budget rounded up to whole blocks.
    public func allowedBlocks(budget: Int, heads: Int) -> Int {
        BlockLayout.perHead.blocks(kept: roundedBudget(budget), layerHeads: heads, blockSize: blockSize)
    }

    /// vllm-kvcompress's default cap on the KVs one compression pass sorts
    /// (`max_kv_per_compression`, vllm/engine/arg_utils.py: the cost of `torch.sort` over their
    /// metrics); benchmarks/scripts/benchmark_llama3_70b.sh raises it to 50,000,000.
    public static let maxKVPerCompression = 5_000_000

    /// The per-sample cache KV-Compress's throughput benchmark gives a prompt of `prompt` tokens at
    /// compression rate `rate` (`benchmark_throughput.py`): max(128, ((⌊L/r⌋ − 1) // 16) · 16).
    public static func budget(prompt: Int, rate: Int) -> Int { max(128, ((prompt / rate - 1) / 16) * 16) }

    /// C′: the budget rounded up to whole blocks.
    public func roundedBudget(_ budget: Int) -> Int { (budget + blockSize - 1) / blockSize * blockSize }

    /// The kept positions at `budget` tokens per layer per KV head on average.
    /// - Throws: `PolicyError` for a budget below the protected window or missing statistics.
    public func select(_ layers: [LayerStatistics], budget: Int) throws -> Selection {
        guard budget >= window else { throw PolicyError("budget \(budget) is below kvcompress's protected window of \(window) tokens") }
        let compressible = layers.map(\.isGlobal)
        let heads = layers.reduce(0) { $0 + ($1.isGlobal ? $1.kvHeads : 0) }
        return Selection(kept: evictBlocks(try metric(layers), compressible: compressible, allowed: allowedBlocks(budget: budget, heads: heads)))
    }

    /// Whole-block eviction, at prefill and during decode: `metrics[l][h][i]` is the metric of
    /// the i-th token (head) holds (+∞: protected). The cheapest blocks across all compressible
    /// heads and layers are freed until they hold at most `allowed` blocks; freeing a block of a
    /// head removes its smallest metrics, as many as its last, partly filled block holds.
    /// - Returns: per (layer, KV head) the indices kept, ascending (all of them for layers not
    ///   compressible).
    func evictBlocks(_ metrics: [[[Float]]], compressible: [Bool], allowed: Int) -> [[[Int]]] {
        var blocks = 0
        for l in metrics.indices where compressible[l] {
            for m in metrics[l] { blocks += (m.count + blockSize - 1) / blockSize }
        }
        // Within the allowance (most decode steps) nothing is evicted and nothing needs sorting.
        guard blocks > allowed else { return metrics.map { $0.map { Array($0.indices) } } }
        // Ascending metric order per head: evicting k tokens removes the k smallest.
        var order: [[[Int]]] = metrics.map { $0.map { m in m.indices.sorted { m[$0] < m[$1] || (m[$0] == m[$1] && $0 < $1) } } }
        var evicted = metrics.map { Array(repeating: 0, count: $0.count) }
        struct Candidate: Comparable {
            var cost: Float, layer: Int, head: Int
            static func < (a: Self, b: Self) -> Bool { (a.cost, a.layer, a.head) > (b.cost, b.layer, b.head) } // popMax = cheapest
        }
        var heap = Heap<Candidate>()
        func partial(_ remaining: Int) -> Int { remaining % blockSize == 0 ? blockSize : remaining % blockSize }
        func next(_ l: Int, _ h: Int) -> Candidate? {
            let remaining = metrics[l][h].count - evicted[l][h]
            guard remaining > 0 else { return nil }
            let k = evicted[l][h] + partial(remaining) // the tokens gone once this block is freed
            let cost = metrics[l][h][order[l][h][k - 1]]
            return cost.isFinite ? Candidate(cost: cost, layer: l, head: h) : nil
        }
        for l in metrics.indices where compressible[l] {
            for h in metrics[l].indices {
                if let c = next(l, h) { heap.insert(c) }
            }
        }
        while blocks > allowed, let c = heap.popMax() {
            evicted[c.layer][c.head] += partial(metrics[c.layer][c.head].count - evicted[c.layer][c.head])
            blocks -= 1
            if let n = next(c.layer, c.head) { heap.insert(n) }
        }
        for l in order.indices { for h in order[l].indices { order[l][h] = Array(order[l][h].dropFirst(evicted[l][h])).sorted() } }
        return order
    }
}

/// A model's Semantic Retrieval Heads: per layer, the query heads CompressKV lets score tokens.
public struct HeadProfile: Codable, Sendable, Equatable {
    public var model: String
    /// Per layer, per query head: the semantic retrieval score (paper eq. 5, mean over kept trials).
    public var scores: [[Double]]
    /// Per layer, offline eviction error at budget 32, L1-normalised (nil until estimated).
    public var layerErrors: [Double]?
    /// How the scores were measured (nil in profiles written before it was recorded).
    public var probes: ProbeRecord?

    public init(model: String, scores: [[Double]], layerErrors: [Double]? = nil, probes: ProbeRecord? = nil) {
        self.model = model
        self.scores = scores
        self.layerErrors = layerErrors
        self.probes = probes
    }

    /// The needle probes behind a profile's scores.
    public struct ProbeRecord: Codable, Sendable, Equatable {
        /// Prompt lengths asked for, in tokens.
        public var lengths: [Int]
        /// Needle depths, 0 … 1.
        public var depths: [Double]
        public var needles: Int
        /// Probes run and probes kept (ROUGE-1 recall > 0.5), per length in `lengths` order.
        public var trials: [Int]
        public var kept: [Int]

        public init(lengths: [Int], depths: [Double], needles: Int, trials: [Int], kept: [Int]) {
            self.lengths = lengths
            self.depths = depths
            self.needles = needles
            self.trials = trials
            self.kept = kept
        }
    }

    /// The `k` best query heads of `layer` (highest score, lower index on a tie), ascending.
    public func retrievalHeads(layer: Int, k: Int) -> [Int] {
        let s = scores[layer]
        return Array(s.indices.sorted { s[$0] > s[$1] || (s[$0] == s[$1] && $0 < $1) }.prefix(k)).sorted()
    }
}

extension HeadProfile {
    /// Reads a profile written by `ckv-sim heads identify`.
    /// - Throws: `PolicyError` naming the file and, for a malformed one, the key.
    public static func load(path: String) throws -> HeadProfile {
        guard let data = FileManager.default.contents(atPath: path) else { throw PolicyError("\(path): cannot read the head profile") }
        do { return try JSONDecoder().decode(HeadProfile.self, from: data) } catch {
            throw PolicyError("\(path): not a head profile (\(Diagnostics.describe(error)))")
        }
    }
}

/// CompressKV (TUDa-HWAI/CompressKV): per layer, the window sums of the top-`heads` Semantic
/// Retrieval Heads, average-pooled (kernel 5, zero padding counted) and averaged, choose the
/// top-(B_l − w) positions plus the window, one index set for all KV heads of the layer. Layer
/// budgets B_l come from the profile's eviction errors (`layerBudgets`), else uniform.
public struct CompressKV: Sendable, Equatable {
    public var profile: HeadProfile
    public var window: Int
    public var kernel: Int
    public var heads: Int
    public var minimumBudget: Int

    /// The paper's observation window.
    public static let defaultWindow = 8

    public init(profile: HeadProfile, window: Int = CompressKV.defaultWindow, kernel: Int = 5, heads: Int = 4, minimumBudget: Int = 32) {
        self.profile = profile
        self.window = window
        self.kernel = kernel
        self.heads = heads
        self.minimumBudget = minimumBudget
    }

    public func select(_ layers: [LayerStatistics], budget: Int) throws -> Selection {
        guard budget >= window else { throw PolicyError("budget \(budget) is below compresskv's window of \(window) tokens") }
        guard profile.scores.count == layers.count else {
            throw PolicyError("the head profile of \(profile.model) has \(profile.scores.count) layers; the statistics have \(layers.count)")
        }
        // Budgets are shared among the compressible (global) layers only: sliding-window layers
        // keep their window whatever the budget, so they take no share of B·L.
        var budgets = Array(repeating: budget, count: layers.count)
        if let errors = profile.layerErrors {
            let global = layers.indices.filter { layers[$0].isGlobal }
            let allocated = layerBudgets(errors: global.map { errors[$0] }, budget: budget, minimum: min(minimumBudget, budget))
            for (i, l) in global.enumerated() { budgets[l] = allocated[i] }
        }
        return Selection(kept: try layers.enumerated().map { l, layer in
            let n = layer.keys, b = max(budgets[l], window)
            guard layer.isGlobal, n > b else { return Array(repeating: Array(0..<n), count: layer.kvHeads) }
            let sums = try layer.window(window)
            let srh = profile.retrievalHeads(layer: l, k: min(heads, layer.queryHeads))
            let pooled = groupSum(srh.map { Pooling.average.apply(Array(sums[$0][0..<(n - window)]), kernel: kernel) })
            let indices = topIndices(pooled, count: b - window) + Array((n - window)..<n)
            return Array(repeating: indices, count: layer.kvHeads)
        })
    }
}

/// CompressKV's error-aware layer budgets: total B·L, every layer starts at m; B_i = clip(m +
/// round(ẽ_i·R), m, 3B) with R = B·L − L·m and ẽ the L1-normalised errors; the residue left by
/// rounding and clipping is fixed one token per layer per pass (added to layers below the cap in
/// descending ẽ, removed from layers above m in ascending ẽ).
public func layerBudgets(errors: [Double], budget B: Int, minimum m: Int) -> [Int] {
    let L = errors.count
    guard L > 0 else { return [] }
    let total = errors.reduce(0, +)
    let e = total > 0 ? errors.map { $0 / total } : Array(repeating: 1 / Double(L), count: L)
    let R = Double(B * L - L * m)
    var b = e.map { min(max(m + Int(($0 * R).rounded()), m), 3 * B) }
    var residue = B * L - b.reduce(0, +)
    let descending = e.indices.sorted { e[$0] > e[$1] || (e[$0] == e[$1] && $0 < $1) }
    while residue != 0 {
        var moved = false
        for i in residue > 0 ? descending : descending.reversed() where residue != 0 {
            if residue > 0, b[i] < 3 * B { b[i] += 1; residue -= 1; moved = true }
            else if residue < 0, b[i] > m { b[i] -= 1; residue += 1; moved = true }
        }
        if !moved { break }
    }
    return b
}
