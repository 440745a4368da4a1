import Foundation
import GGUF
import Policies
import Replay
import TraceFormat
import Simulator
import Hardware

// What the bundled traces say about a policy at a kv-fraction: the replay proxies, the real
// compressed runs' outcomes, and the per-(layer, KV head) kept counts that drive the physical
// memory (DESIGN.md "Trace-driven memory").

/// The replay of every bundled trace for one policy at one kv-fraction.
public struct TraceEvidence: Codable, Sendable, Equatable {
    public var policy: String
    public var kvFraction: Double
    /// The kv-fraction the traces were replayed at (mean over traces): the row's, unless that
    /// leaves a reference prompt less than the policy's window (`Budget.tokens`).
    public var replayedFraction: Double
    /// Traces replayed.
    public var traces: Int
    /// Mean attention mass kept during the recorded decode steps.
    public var attentionMass: Double
    /// Mean relative attention-output error.
    public var outputError: Double
    /// Real compressed runs that found the answer, of those recorded nearest this kv-fraction.
    public var correct: Int
    public var runs: Int
    /// The full cache's record on the same traces.
    public var fullCorrect: Int
    public var fullRuns: Int
    /// The kv-fractions the real runs were recorded at (nearest to `kvFraction` per trace).
    public var recordedFractions: [Double]
    /// Per-(layer, KV head) kept counts relative to their mean, pooled over the traces' global
    /// layers after mapping to the target model (`relativeShape`), as 32 quantiles.
    public var shapeQuantiles: [Double]

    enum CodingKeys: String, CodingKey {
        case policy, traces, correct, runs
        case kvFraction = "kv_fraction"
        case replayedFraction = "replayed_fraction"
        case attentionMass = "attention_mass"
        case outputError = "output_error"
        case fullCorrect = "full_correct"
        case fullRuns = "full_runs"
        case recordedFractions = "recorded_fractions"
        case shapeQuantiles = "shape_quantiles"
    }

    /// Relative accuracy loss of the real runs against the full cache (nil without runs).
    public var measuredLoss: Double? {
        guard runs > 0, fullRuns > 0, fullCorrect > 0 else { return nil }
        let full = Double(fullCorrect) / Double(fullRuns), here = Double(correct) / Double(runs)
        return max(0, (full - here) / full)
    }
}

/// The bundled traces, loaded once, replayed per policy × kv-fraction.
public final class TraceLibrary: @unchecked Sendable {
    public let replayers: [Replayer]
    public let profiles: [String: HeadProfile]

    /// Loads every `.ckvt` in `directory` (sorted by name) and the head profiles in `profiles`.
    /// - Throws: a one-line error naming the file that cannot be read.
    public init(directory: String, profiles profileDirectory: String? = nil) throws {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".ckvt") }.sorted()
        // Loaded side by side: reading and preparing a trace takes ~0.1 s.
        let loaded = Loaded(count: names.count)
        DispatchQueue.concurrentPerform(iterations: names.count) { i in
            loaded.set(i, Result { try Replayer(ReplayTrace(path: (directory as NSString).appendingPathComponent(names[i]))) })
        }
        replayers = try loaded.results.map { try $0!.get() }
        var found: [String: HeadProfile] = [:]
        if let profileDirectory {
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: profileDirectory)) ?? []).filter({ $0.hasSuffix(".json") }).sorted() {
                let path = (profileDirectory as NSString).appendingPathComponent(name)
                let p = try HeadProfile.load(path: path)
                found[p.model] = p
            }
        }
        profiles = found
    }

    private let lock = NSLock()
    private var cache: [String: ReplayResult] = [:]

    /// One trace's replay, computed once: rows whose kv-fractions floor to the same budget share it.
    private func replay(_ index: Int, _ policy: PolicyKind, _ budget: Int, _ profile: HeadProfile?) throws -> ReplayResult {
        let key = "\(index)|\(policy.rawValue)|\(budget)"
        lock.lock()
        let hit = cache[key]
        lock.unlock()
        if let hit { return hit }
        let result = try replayers[index].replay(policy, budget: budget, profile: profile)
        lock.lock()
        cache[key] = result
        lock.unlock()
        return result
    }

    /// The models the traces come from.
    public var models: [String] { Array(Set(replayers.map(\.trace.model.name))).sorted() }

    private var chosen: [String: TraceChoice] = [:]

    /// The traces that speak for `target`: the target's own when the library has any — recorded
    /// from its Hugging Face repository or from the very GGUF file it was read from, with its
    /// shape — else every trace, whose kept counts `relativeShape` maps onto the target.
    public func traces(for target: ModelSpec) -> TraceChoice {
        lock.lock()
        defer { lock.unlock() }
        let key = "\(target.name)|\(target.repository ?? "")|\(target.ggufPath ?? "")"
        if let hit = chosen[key] { return hit }
        var hash: String??
        func fileHash() -> String? {
            if hash == nil { hash = target.ggufPath.flatMap { try? GGUFFile(path: $0).sha256 } }
            return hash!
        }
        let own = replayers.indices.filter { i in
            let t = replayers[i].trace.model
            guard t.layers == target.layers, t.queryHeads == target.heads, t.kvHeads == target.kvHeads, t.headDim == target.headDim else { return false }
            if let id = t.hfID, let repository = target.repository, id.lowercased() == repository.lowercased() { return true }
            if let sha = t.ggufSHA256, target.ggufPath != nil, sha == fileHash() { return true }
            return false
        }
        let indices = own.isEmpty ? Array(replayers.indices) : own
        let choice = TraceChoice(indices: indices, exact: !own.isEmpty, models: Array(Set(indices.map { replayers[$0].trace.model.name })).sorted())
        chosen[key] = choice
        return choice
    }

    /// Replays `policy` at `fraction` on every trace that speaks for `target` (`traces(for:)`) and
    /// that it can run on (CompressKV needs its model's profile).
    public func evidence(_ policy: PolicyKind, fraction: Double, target: ModelSpec) throws -> TraceEvidence? {
        var mass = 0.0, error = 0.0, used = 0, correct = 0, runs = 0, fullCorrect = 0, fullRuns = 0
        var fractions: [Double] = [], replayed = 0.0
        var shape: [Double] = []
        for index in traces(for: target).indices {
            let r = replayers[index]
            let t = r.trace, n = t.promptLength
            let profile = profiles[t.model.name]
            if policy.needsProfile, profile == nil { continue }
            let budget = Budget.fraction(fraction).tokens(prompt: n, window: policy.window)
            let result = try replay(index, policy, budget, profile)
            used += 1
            replayed += Double(budget) / Double(n)
            mass += result.attentionMass
            error += result.outputError
            shape += relativeShape(counts: result.keptCounts, global: t.statistics.map(\.isGlobal), target: target)
            // The real run recorded nearest the replayed kv-fraction, if any.
            let target = Double(budget) / Double(n)
            let recorded = t.outcomes.compactMap { key, outcome -> (Double, RunOutcome)? in
                guard let run = PolicyKind.parseRunLabel(key), run.policy == policy, run.continual else { return nil }
                return (Double(run.budget) / Double(n), outcome)
            }.sorted { abs($0.0 - target) < abs($1.0 - target) || (abs($0.0 - target) == abs($1.0 - target) && $0.0 < $1.0) }
            if let (f, outcome) = recorded.first, let full = t.outcomes["full"] {
                runs += 1
                correct += outcome.correct ? 1 : 0
                fullRuns += 1
                fullCorrect += full.correct ? 1 : 0
                fractions.append(f)
            }
        }
        guard used > 0 else { return nil }
        return TraceEvidence(policy: policy.rawValue, kvFraction: fraction, replayedFraction: replayed / Double(used), traces: used, attentionMass: mass / Double(used),
                             outputError: error / Double(used), correct: correct, runs: runs, fullCorrect: fullCorrect, fullRuns: fullRuns,
                             recordedFractions: fractions, shapeQuantiles: quantiles(shape, count: 32))
    }
}

/// Which traces stand for a model (`TraceLibrary.traces(for:)`).
public struct TraceChoice: Sendable, Equatable {
    /// Indices into `TraceLibrary.replayers`.
    public var indices: [Int]
    /// The traces are the model's own (same weights and shape), not mapped from other models.
    public var exact: Bool
    /// The models they were recorded from.
    public var models: [String]
}

/// Results filled from several threads, one slot each.
private final class Loaded: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var results: [Result<Replayer, any Error>?]
    init(count: Int) { results = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<Replayer, any Error>) { lock.lock(); results[i] = r; lock.unlock() }
}

/// Maps a reference trace's kept counts onto the target model's global layers and KV heads and
/// returns them relative to their mean: target layer i takes reference layer
/// round(i·(L_ref − 1)/(L − 1)) among the reference's global layers (relative depth); within it,
/// target head h takes the reference heads' sorted counts at quantile (h + ½)/H.
public func relativeShape(counts: [[Int]], global: [Bool], target: ModelSpec) -> [Double] {
    let reference = counts.indices.filter { global[$0] }.map { counts[$0].sorted() }
    guard !reference.isEmpty else { return [] }
    let L = max(1, target.globalLayers), H = max(1, target.kvHeads)
    var mapped: [Double] = []
    for i in 0..<L {
        let layer = reference[L == 1 ? 0 : Int((Double(i) * Double(reference.count - 1) / Double(L - 1)).rounded())]
        for h in 0..<H {
            let q = (Double(h) + 0.5) / Double(H)
            mapped.append(Double(layer[min(layer.count - 1, Int(q * Double(layer.count)))]))
        }
    }
    let mean = mapped.reduce(0, +) / Double(mapped.count)
    return mean > 0 ? mapped.map { $0 / mean } : mapped.map { _ in 1 }
}

/// `count` quantiles of `xs` at the midpoints (i + ½)/count.
func quantiles(_ xs: [Double], count: Int) -> [Double] {
    guard !xs.isEmpty else { return Array(repeating: 1, count: count) }
    let s = xs.sorted()
    return (0..<count).map { i in s[min(s.count - 1, Int((Double(i) + 0.5) / Double(count) * Double(s.count)))] }
}
