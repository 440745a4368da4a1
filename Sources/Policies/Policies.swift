// Prefill-time token selection, each policy once (DESIGN.md): statistics → kept positions per
// (layer, KV head). Budgets are in the design's unit: tokens kept per layer per KV head, the
// observation window included. Algorithms and defaults: REFERENCES.md.

/// The policies, with the papers' defaults (each a parameter).
public enum Policy: Sendable, Equatable {
    /// First `sinks` tokens and the most recent ones.
    case streamingLLM(sinks: Int = 4)
    /// Heavy hitters by attention accumulated over all prompt queries, plus the recent half of the budget.
    case h2o(recentFraction: Double = 0.5)
    /// Window attention, pooled, per-KV-head top-k, plus the window (FasterDecoding/SnapKV: w 32, kernel 7, max-pool).
    case snapKV(window: Int = 32, kernel: Int = 7, pooling: Pooling = .max)
    /// SnapKV scoring with per-layer budgets decreasing linearly (KVCache-Factory, β = 20).
    case pyramidKV(window: Int = 32, kernel: Int = 7, pooling: Pooling = .max, beta: Int = 20)
    /// Per layer, the heads share H·(B − w) slots by a global top-k, each head keeping a floor α.
    case adaKV(window: Int = 32, kernel: Int = 7, pooling: Pooling = .max, alpha: Double = 0.2)
    /// Whole chunks of `chunk` tokens by mean score (one index set per layer), layers in groups of
    /// `reuse` sharing the first layer's indices.
    case chunkKV(window: Int = 32, kernel: Int = 7, pooling: Pooling = .max, chunk: Int = 10, reuse: Int = 1)

    public var name: String {
        switch self {
        case .streamingLLM: "streamingllm"
        case .h2o: "h2o"
        case .snapKV: "snapkv"
        case .pyramidKV: "pyramidkv"
        case .adaKV: "adakv"
        case .chunkKV: "chunkkv"
        }
    }

    /// The observation window kept in full (StreamingLLM's recent part and H2O's are budget-relative).
    public var window: Int {
        switch self {
        case .streamingLLM(let sinks): sinks
        case .h2o: 1
        case let .snapKV(w, _, _), let .pyramidKV(w, _, _, _), let .adaKV(w, _, _, _), let .chunkKV(w, _, _, _, _): w
        }
    }

    /// The kept positions for `layers` at budget `budget`.
    /// - Throws: `PolicyError` for a budget below the window or missing statistics.
    public func select(_ layers: [LayerStatistics], budget: Int) throws -> Selection {
        guard budget >= window, budget > 0 else {
            throw PolicyError("budget \(budget) is below \(name)'s window of \(window) tokens")
        }
        let budgets: [Int]
        if case let .pyramidKV(w, _, _, beta) = self {
            budgets = pyramidBudgets(layers: layers.count, keys: layers.first?.keys ?? 0, budget: budget, window: w, beta: beta)
        } else {
            budgets = Array(repeating: budget, count: layers.count)
        }
        var kept: [[[Int]]] = []
        var reused: [[Int]]? = nil
        for (l, layer) in layers.enumerated() {
            let n = layer.keys, b = budgets[l]
            if !layer.isGlobal || n <= b {
                kept.append(Array(repeating: Array(0..<n), count: layer.kvHeads))
                continue
            }
            switch self {
            case let .streamingLLM(sinks):
                let heads = Array(0..<sinks) + Array((n - (b - sinks))..<n)
                kept.append(Array(repeating: heads, count: layer.kvHeads))
            case let .h2o(recentFraction):
                let recent = h2oRecent(budget: b, fraction: recentFraction)
                kept.append(h2oScores(layer).map { topIndices(Array($0[0..<(n - recent)]), count: b - recent) + Array((n - recent)..<n) })
            case let .snapKV(w, kernel, pooling), let .pyramidKV(w, kernel, pooling, _):
                let pooled = try pooledScores(layer, window: w, kernel: kernel, pooling: pooling)
                kept.append((0..<layer.kvHeads).map { topIndices(pooled[$0], count: b - w) + Array((n - w)..<n) })
            case let .adaKV(w, kernel, pooling, alpha):
                let pooled = try pooledScores(layer, window: w, kernel: kernel, pooling: pooling)
                kept.append(adaptive(pooled, base: b - w, alpha: alpha).map { $0 + Array((n - w)..<n) })
            case let .chunkKV(w, kernel, pooling, chunk, reuse):
                if reuse > 1, l % reuse != 0, let previous = reused {
                    kept.append(previous)
                    continue
                }
                let pooled = try pooledScores(layer, window: w, kernel: kernel, pooling: pooling)
                let indices = chunks(groupSum(pooled), chunk: chunk, keep: (b - w) / chunk) + Array((n - w)..<n)
                let layerKept = Array(repeating: indices, count: layer.kvHeads)
                reused = layerKept
                kept.append(layerKept)
            }
        }
        return Selection(kept: kept)
    }
}

/// Per KV head, the window sums of its query heads pooled along the non-window keys, then
/// summed over the group (ranking is the same as kvpress's mean).
func pooledScores(_ layer: LayerStatistics, window w: Int, kernel: Int, pooling: Pooling) throws -> [[Float]] {
    let sums = try layer.window(w)
    let n = layer.keys - w
    return (0..<layer.kvHeads).map { g in
        groupSum(layer.group(g).map { pooling.apply(Array(sums[$0][0..<n]), kernel: kernel) })
    }
}

/// H2O's score per KV head and prompt position: the attention accumulated over all prompt
/// queries, summed over the group's query heads.
func h2oScores(_ layer: LayerStatistics) -> [[Float]] {
    (0..<layer.kvHeads).map { g in groupSum(layer.group(g).map { layer.accumulated[$0] }) }
}

/// The recent tokens H2O keeps whatever their score: ⌊budget · fraction⌋, at least one.
func h2oRecent(budget: Int, fraction: Double) -> Int { max(1, Int((Double(budget) * fraction).rounded(.down))) }

func groupSum(_ rows: [[Float]]) -> [Float] {
    guard var total = rows.first else { return [] }
    for row in rows.dropFirst() { for j in total.indices { total[j] += row[j] } }
    return total
}

/// PyramidKV's per-layer budgets (KVCache-Factory `PyramidKVCluster`): base = B − w,
/// min = ⌊base/β⌋, max = 2·base − min, B_l = max − l·⌊(max − min)/(L − 1)⌋ + w; when
/// max ≥ n − w it becomes n − w and min = 2·base − max; prompts shorter than 2·base get uniform B.
public func pyramidBudgets(layers L: Int, keys n: Int, budget: Int, window w: Int, beta: Int) -> [Int] {
    let base = budget - w
    guard L > 1, n >= 2 * base else { return Array(repeating: budget, count: L) }
    var low = base / beta
    var high = 2 * base - low
    if high >= n - w {
        high = n - w
        low = 2 * base - high
    }
    let step = (high - low) / (L - 1)
    return (0..<L).map { high - $0 * step + w }
}

/// Ada-KV's allocation (FFY0/AdaKV `snapkv_utils.py`): the heads' scores flattened, the global
/// top H·base gives counts c_h; head h keeps its top round((1 − α)·c_h + ⌊α·base⌋).
func adaptive(_ scores: [[Float]], base: Int, alpha: Double) -> [[Int]] {
    let heads = scores.count, n = scores.first?.count ?? 0
    var flat: [(score: Float, head: Int, key: Int)] = []
    flat.reserveCapacity(heads * n)
    for h in 0..<heads { for j in 0..<n { flat.append((scores[h][j], h, j)) } }
    flat.sort { $0.score > $1.score || ($0.score == $1.score && ($0.head, $0.key) < ($1.head, $1.key)) }
    var counts = [Int](repeating: 0, count: heads)
    for entry in flat.prefix(heads * base) { counts[entry.head] += 1 }
    let floor = Int((alpha * Double(base)).rounded(.down))
    return (0..<heads).map { h in
        let keep = min(n, Int(((1 - alpha) * Double(counts[h]) + Double(floor)).rounded()))
        return topIndices(scores[h], count: keep)
    }
}

/// The positions of the `keep` best chunks of `chunk` tokens by mean score (the trailing partial
/// chunk counts as a chunk), at least one chunk.
func chunks(_ scores: [Float], chunk: Int, keep: Int) -> [Int] {
    let count = (scores.count + chunk - 1) / chunk
    let means = (0..<count).map { c in
        let part = scores[(c * chunk)..<min(scores.count, (c + 1) * chunk)]
        return part.reduce(0, +) / Float(part.count)
    }
    return topIndices(means, count: max(1, keep)).flatMap { c in Array((c * chunk)..<min(scores.count, (c + 1) * chunk)) }
}
