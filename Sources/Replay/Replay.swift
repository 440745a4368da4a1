import Foundation
import Policies
import TraceFormat

// Replay (DESIGN.md): apply a policy to a trace's statistics — the same function the engine's
// compressed run calls, so the kept positions are the engine's — and measure, over the decode
// steps the full-cache run made, what the kept positions preserve:
// - kept fraction: kept prompt positions over all, over the compressible (global) layers' KV heads;
// - attention mass: Σ of the full-cache attention weights on kept positions (generated
//   positions are kept, unless a continual policy evicts them), mean over steps, global layers
//   and query heads;
// - output error per layer: ‖O_comp − O_full‖ / ‖O_full‖ over the layer's concatenated head
//   outputs (before W_O), O_comp being the attention restricted to the kept positions and
//   renormalised (exactly softmax over the kept scores), mean over steps.

/// One policy × budget replayed on one trace.
public struct ReplayResult: Codable, Sendable, Equatable {
    public var trace: String
    public var model: String
    public var task: String
    public var promptTokens: Int
    public var policy: String
    /// Tokens per layer per KV head, window included.
    public var budget: Int
    /// True when the policy went on evicting during the decode steps (continual policies).
    public var decodeEviction: Bool
    /// Kept prompt positions over all, over the compressible layers.
    public var keptFraction: Double
    /// Kept positions per (layer, KV head).
    public var keptCounts: [[Int]]
    /// Mean attention mass on kept positions during the recorded decode steps.
    public var attentionMass: Double
    /// Lowest mass of any (step, layer, query head).
    public var minimumAttentionMass: Double
    /// Per layer: mean relative attention-output error (0 for layers not measured).
    public var layerOutputErrors: [Double]
    /// Mean of `layerOutputErrors` over the measured layers.
    public var outputError: Double
    /// The real compressed run's outcome at this policy and budget, when the trace has it.
    public var outcome: RunOutcome?
    /// Share of the full cache's greedy tokens the compressed run reproduced before its first
    /// difference (nil without a recorded compressed run).
    public var greedyAgreement: Double?

    enum CodingKeys: String, CodingKey {
        case trace, model, task, policy, budget, outcome
        case promptTokens = "prompt_tokens"
        case decodeEviction = "decode_eviction"
        case keptFraction = "kept_fraction"
        case keptCounts = "kept_counts"
        case attentionMass = "attention_mass"
        case minimumAttentionMass = "minimum_attention_mass"
        case layerOutputErrors = "layer_output_errors"
        case outputError = "output_error"
        case greedyAgreement = "greedy_agreement"
    }
}

/// A trace prepared for replaying many policies: the full-cache attention outputs per decode
/// step, computed once.
public final class Replayer: @unchecked Sendable {
    public let trace: ReplayTrace
    let layers: [Int]
    /// step → layer → query head → full output (headDim floats).
    let fullOutputs: [[[[Float]]]]

    public init(_ trace: ReplayTrace) {
        self.trace = trace
        layers = trace.measuredLayers
        let m = trace.model, d = m.headDim, group = m.queryHeads / m.kvHeads
        fullOutputs = trace.rows.map { stepRows in
            stepRows.indices.map { l in
                guard !stepRows[l][0].isEmpty else { return [] }
                return (0..<m.queryHeads).map { h in
                    let row = stepRows[l][h]
                    return Self.weightedSum(row, positions: row.indices, values: trace.values[l][h / group], dimension: d).sum
                }
            }
        }
    }

    /// Σ_j row[j]·v_j over `positions`, and Σ_j row[j].
    static func weightedSum(_ row: [Float], positions: some Sequence<Int>, values: [Float], dimension d: Int) -> (sum: [Float], mass: Double) {
        var out = [Float](repeating: 0, count: d)
        var mass = 0.0
        values.withUnsafeBufferPointer { v in
            row.withUnsafeBufferPointer { r in
                out.withUnsafeMutableBufferPointer { o in
                    let o = o.baseAddress!
                    for j in positions {
                        let a = r[j]
                        guard a != 0 else { continue }
                        mass += Double(a)
                        let src = v.baseAddress! + j * d
                        for e in 0..<d { o[e] += a * src[e] }
                    }
                }
            }
        }
        return (out, mass)
    }

    /// The kept positions of `policy` at `budget`, exactly as the engine would keep them.
    /// - Throws: `PolicyError` naming the trace (budget below the window, missing statistics or
    ///   profile) or `ReplayError` for a profile of another model.
    public func selection(_ policy: PolicyKind, budget: Int, profile: HeadProfile?) throws -> Selection {
        if policy.needsProfile, let profile, profile.model != trace.model.name {
            throw ReplayError("\(trace.path) was recorded from \(trace.model.name); the head profile is for \(profile.model)")
        }
        return try naming { try policy.select(trace.statistics, budget: budget, profile: profile) }
    }

    /// `body`, with a `PolicyError` it throws prefixed by the trace's path.
    private func naming<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as PolicyError { throw PolicyError("\(trace.path): \(e.description)") }
    }

    /// Replays `policy` at `budget`. A continual policy (StreamingLLM, H2O, KV-Compress) goes
    /// on evicting during the recorded decode steps unless `continual` is false: its decode
    /// eviction — the engine's own code — is fed each step's full-cache rows restricted to the
    /// positions it holds and renormalised, which is exactly the compressed run's attention only
    /// while the compressed run's queries equal the full cache's (an approximation after that).
    public func replay(_ policy: PolicyKind, budget: Int, profile: HeadProfile? = nil, continual: Bool = true) throws -> ReplayResult {
        let selection = try self.selection(policy, budget: budget, profile: profile)
        var eviction = continual ? try naming { try policy.decodeEviction(trace.statistics, selection: selection, budget: budget) } : nil
        let m = trace.model, n = trace.promptLength, d = m.headDim, group = m.queryHeads / m.kvHeads
        let global = trace.statistics.indices.filter { trace.statistics[$0].isGlobal }
        let keptTotal = global.reduce(0) { $0 + selection.kept[$1].reduce(0) { $0 + $1.count } }
        let keptFraction = global.isEmpty ? 1 : Double(keptTotal) / Double(global.count * m.kvHeads * n)

        var massSum = 0.0, massCount = 0, massMin = 1.0
        var errorSums = [Double](repeating: 0, count: m.layers)
        for (step, stepRows) in trace.rows.enumerated() {
            // Step s ≥ 1 is the query at position n − 1 + s, whose key entered the cache first.
            if step > 0 { eviction?.append(position: n - 1 + step) }
            for l in layers {
                var diff = 0.0, norm = 0.0
                for h in 0..<m.queryHeads {
                    let g = h / group
                    let row = stepRows[l][h], values = trace.values[l][g]
                    let partial: [Float], mass: Double
                    if let held = eviction?.held[l][g] {
                        (partial, mass) = Self.weightedSum(row, positions: held, values: values, dimension: d)
                        if step > 0, mass > 0 {
                            let weights = held.map { Float(Double(row[$0]) / mass) }
                            weights.withUnsafeBufferPointer { eviction!.observe(layer: l, queryHead: h, firstSlot: 0, weights: $0) }
                        }
                    } else {
                        let kept = Self.weightedSum(row, positions: selection.kept[l][g], values: values, dimension: d)
                        let generated = Self.weightedSum(row, positions: n..<(n + step), values: values, dimension: d)
                        (partial, mass) = (zip(kept.sum, generated.sum).map(+), kept.mass + generated.mass)
                    }
                    massSum += mass; massCount += 1; massMin = min(massMin, mass)
                    let full = fullOutputs[step][l][h]
                    for e in 0..<d {
                        let comp = mass > 0 ? Double(partial[e]) / mass : 0
                        diff += (comp - Double(full[e])) * (comp - Double(full[e]))
                        norm += Double(full[e]) * Double(full[e])
                    }
                }
                errorSums[l] += norm > 0 ? (diff / norm).squareRoot() : 0
            }
            if step > 0 { _ = eviction?.evict() }
        }
        let layerErrors = errorSums.map { trace.rows.isEmpty ? 0 : $0 / Double(trace.rows.count) }
        let outcome = trace.outcomes[policy.runLabel(budget: budget, continual: continual)]
        let agreement = outcome.map { Self.agreement($0.tokens, trace.generated.map { Int32(bitPattern: $0) }) }
        return ReplayResult(
            trace: trace.path, model: m.name, task: trace.header.task.kind, promptTokens: n, policy: policy.rawValue, budget: budget,
            decodeEviction: eviction != nil,
            keptFraction: keptFraction, keptCounts: selection.counts,
            attentionMass: massCount > 0 ? massSum / Double(massCount) : 1, minimumAttentionMass: massCount > 0 ? massMin : 1,
            layerOutputErrors: layerErrors, outputError: layers.isEmpty ? 0 : layers.reduce(0) { $0 + layerErrors[$1] } / Double(layers.count),
            outcome: outcome, greedyAgreement: agreement
        )
    }

    /// The share of `reference` that `tokens` reproduces before the first difference.
    static func agreement(_ tokens: [Int32], _ reference: [Int32]) -> Double {
        guard !reference.isEmpty else { return 1 }
        var same = 0
        while same < min(tokens.count, reference.count), tokens[same] == reference[same] { same += 1 }
        return Double(same) / Double(reference.count)
    }
}
