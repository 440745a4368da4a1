import Foundation
import Policies

// Two traces of the same prompt recorded by different engines (the Swift reference engine and
// the Hugging Face recorder, say): how far apart their statistics are, and how far apart the
// selections every policy makes from them. This is how a second recorder is checked against the
// first (Docs/recording-on-gpu.md, "Checked on the CPU").

/// How two traces of the same tokens differ.
public struct TraceComparison: Codable, Sendable, Equatable {
    /// One statistic kind (`windowSum 8`, `accumulated` …) over every (layer, query head).
    public struct Statistic: Codable, Sendable, Equatable {
        public var name: String
        /// Relative L1 distance Σ|a − b| / Σ|a| per (layer, query head): median and maximum.
        public var medianDistance: Double
        public var maxDistance: Double
        enum CodingKeys: String, CodingKey {
            case name
            case medianDistance = "median_distance"
            case maxDistance = "max_distance"
        }
    }

    /// One policy at one budget: the overlap |A ∩ B| / |A| of the kept positions per (layer, KV
    /// head) of the compressed layers.
    public struct Overlap: Codable, Sendable, Equatable {
        public var policy: String
        public var budget: Int
        public var mean: Double
        public var minimum: Double
        /// Share of the (layer, KV head) pairs whose overlap is at least the threshold asked for.
        public var shareAtLeast: Double
        enum CodingKeys: String, CodingKey {
            case policy, budget, mean, minimum
            case shareAtLeast = "share_at_least"
        }
    }

    public var promptTokens: Int
    public var statistics: [Statistic]
    public var overlaps: [Overlap]
    /// The threshold `shareAtLeast` counts against.
    public var threshold: Double
    /// Generated tokens of the two full-cache runs: how many agree from the start, of how many.
    public var generatedAgreeing: Int
    public var generated: Int

    enum CodingKeys: String, CodingKey {
        case statistics, overlaps, threshold, generated
        case promptTokens = "prompt_tokens"
        case generatedAgreeing = "generated_agreeing"
    }

    /// Compares `a` (the reference) with `b` for `policies` at `budgets`.
    /// - Throws: `ReplayError` when the traces are of different prompts or model shapes, or a
    ///   policy cannot run (a budget below its window, CompressKV without `profile`).
    public static func compare(_ a: ReplayTrace, _ b: ReplayTrace, policies: [PolicyKind], budgets: [Int], profile: HeadProfile?,
                               threshold: Double = 0.9) throws -> TraceComparison {
        let ma = a.model, mb = b.model
        guard (ma.layers, ma.queryHeads, ma.kvHeads, ma.headDim) == (mb.layers, mb.queryHeads, mb.kvHeads, mb.headDim) else {
            throw ReplayError("\(b.path): a model of \(mb.layers) layers × \(mb.queryHeads)/\(mb.kvHeads) heads × \(mb.headDim); \(a.path) has \(ma.layers) × \(ma.queryHeads)/\(ma.kvHeads) × \(ma.headDim)")
        }
        guard a.prompt == b.prompt else {
            let at = zip(a.prompt, b.prompt).prefix { $0 == $1 }.count
            throw ReplayError("\(b.path): its prompt differs from \(a.path)'s at token \(at) (\(b.prompt.count) vs \(a.prompt.count) tokens): compare traces of the same tokens")
        }
        var statistics: [Statistic] = []
        func add(_ name: String, _ pairs: [([Float], [Float])]) {
            let d = pairs.map { x, y -> Double in
                let norm = x.reduce(0.0) { $0 + Double(abs($1)) }
                let diff = zip(x, y).reduce(0.0) { $0 + Double(abs($1.0 - $1.1)) }
                return norm > 0 ? diff / norm : (diff > 0 ? .infinity : 0)
            }.sorted()
            guard !d.isEmpty else { return }
            statistics.append(Statistic(name: name, medianDistance: d[d.count / 2], maxDistance: d.last!))
        }
        let sa = a.statistics, sb = b.statistics
        let windows = Set(sa.flatMap { $0.windowSums.keys }).intersection(sb.flatMap { $0.windowSums.keys }).sorted()
        for w in windows {
            add("window sum \(w)", sa.indices.flatMap { l in (0..<ma.queryHeads).map { h in (sa[l].windowSums[w]![h], sb[l].windowSums[w]![h]) } })
        }
        let squared = Set(sa.flatMap { $0.windowSquaredSums.keys }).intersection(sb.flatMap { $0.windowSquaredSums.keys }).sorted()
        for w in squared {
            add("window squared sum \(w)", sa.indices.flatMap { l in (0..<ma.queryHeads).map { h in (sa[l].windowSquaredSums[w]![h], sb[l].windowSquaredSums[w]![h]) } })
        }
        add("accumulated", sa.indices.flatMap { l in (0..<ma.queryHeads).map { h in (sa[l].accumulated[h], sb[l].accumulated[h]) } })
        let steps = min(a.decodeSteps, b.decodeSteps)
        if steps > 0 {
            let layers = Set(a.measuredLayers).intersection(b.measuredLayers).sorted()
            add("decode rows", (0..<steps).flatMap { s in layers.flatMap { l in (0..<ma.queryHeads).map { h in (a.rows[s][l][h], b.rows[s][l][h]) } } })
        }
        let ra = Replayer(a), rb = Replayer(b)
        var overlaps: [Overlap] = []
        for policy in policies {
            for budget in budgets {
                let ka = try ra.selection(policy, budget: budget, profile: profile).kept
                let kb = try rb.selection(policy, budget: budget, profile: profile).kept
                var shares: [Double] = []
                for l in ka.indices where sa[l].isGlobal {
                    for g in ka[l].indices {
                        let x = Set(ka[l][g]), y = Set(kb[l][g])
                        shares.append(x.isEmpty ? 1 : Double(x.intersection(y).count) / Double(x.count))
                    }
                }
                guard !shares.isEmpty else { continue }
                overlaps.append(Overlap(policy: policy.rawValue, budget: budget, mean: shares.reduce(0, +) / Double(shares.count), minimum: shares.min()!,
                                        shareAtLeast: Double(shares.filter { $0 >= threshold }.count) / Double(shares.count)))
            }
        }
        let agreeing = zip(a.generated, b.generated).prefix { $0 == $1 }.count
        return TraceComparison(promptTokens: a.promptLength, statistics: statistics, overlaps: overlaps, threshold: threshold,
                               generatedAgreeing: agreeing, generated: max(a.generated.count, b.generated.count))
    }
}
