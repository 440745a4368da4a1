import Foundation
import Simulator

/// The plan's request mix: the scenario's lengths fitted to the context (synthetic scenarios
/// scale their prompt distribution so the longest prompt is `context − output`), and arrivals
/// at the rate under test (a log replays its own gaps, scaled to that rate).
struct Workload: Sendable, CustomStringConvertible {
    var prompt: LengthDistribution?
    var output: LengthDistribution
    /// The scenario's shared system prompts, before each synthetic prompt, and its sessions.
    var sharedPrefix: SharedPrefix?
    var sessions: Sessions?
    var seed: UInt64
    var scenario: Scenario
    /// A log's own mean rate, req/s (nil for synthetic).
    var logRate: Double?
    var longestPrompt: Int
    var longestOutput: Int
    /// Whether requests carry prefix hashes (a shared system prompt, or a log's hash_ids).
    var namesPrefixes: Bool

    init(inputs: PlanInputs) throws {
        let s = inputs.scenario
        scenario = s
        seed = s.seed
        switch s.arrivals {
        case .synthetic:
            let out = inputs.outputTokens.map { .fixed($0) } ?? s.output ?? .fixed(256)
            let longestOut = out.maximum
            guard longestOut < inputs.context else {
                throw PlanError("the output length (\(longestOut) tokens) leaves no room for a prompt in a context of \(inputs.context)")
            }
            let shared = s.sharedPrefix?.tokens ?? 0, turns = s.sessions?.turns ?? 1
            // Each turn's own prompt gets an equal share of what the shared prefix and the turns' outputs leave.
            let room = (inputs.context - shared - turns * longestOut) / turns
            guard room > 0 else {
                throw PlanError("the shared prefix (\(shared) tokens) and \(turns) output\(turns == 1 ? "" : "s") of up to \(longestOut) leave no room for a prompt in a context of \(inputs.context)")
            }
            let p = s.prompt ?? .fixed(room)
            let scale = Double(room) / Double(p.maximum)
            prompt = Self.scaled(p, by: scale)
            output = out
            sharedPrefix = s.sharedPrefix
            sessions = s.sessions
            longestPrompt = s.longestPrompt(ownPrompt: prompt!.maximum, output: longestOut)
            longestOutput = longestOut
            namesPrefixes = shared > 0 || s.sessions != nil
        case .log:
            guard let log = try s.source() as? LogSource, let rate = log.meanRate else {
                throw PlanError("\(s.path): the log has too few requests to set a rate")
            }
            var longestP = 0, longestO = 0, hashed = false
            for r in log.requests {
                hashed = hashed || !r.blockHashes.isEmpty
                longestP = max(longestP, min(r.promptTokens, inputs.context))
                longestO = max(longestO, r.outputTokens)
            }
            logRate = rate
            prompt = nil
            output = .fixed(0)
            longestPrompt = min(longestP, inputs.context - 1)
            longestOutput = min(longestO, inputs.context - longestPrompt)
            namesPrefixes = hashed
        }
    }

    static func scaled(_ d: LengthDistribution, by k: Double) -> LengthDistribution {
        func r(_ x: Int) -> Int { max(1, Int((Double(x) * k).rounded(.down))) }
        switch d {
        case let .fixed(n): return .fixed(r(n))
        case let .uniform(lo, hi): return .uniform(min: r(lo), max: r(hi))
        case let .lognormal(median, sigma, lo, hi): return .lognormal(median: median * k, sigma: sigma, min: r(lo), max: r(hi))
        case let .normal(mean, sd, lo, hi): return .normal(mean: mean * k, sd: sd * k, min: r(lo), max: r(hi))
        }
    }

    /// Requests arriving by `arrivals` (nil: all at once, for the saturated throughput).
    func source(arrivals: ArrivalProcess?, count: Int) throws -> any RequestSource {
        if let prompt {
            return SyntheticSource(arrivals: arrivals ?? .batch, prompt: prompt, output: output, count: count, seed: seed, sharedPrefix: sharedPrefix,
                                   sessions: sessions)
        }
        let rateScale: Double
        switch arrivals {
        case let .poisson(rate)?, let .gamma(rate, _)?: rateScale = rate / logRate!
        default: rateScale = 1e6 // effectively all at once
        }
        return try scenario.source(rateScale: rateScale, requests: count)
    }

    /// Poisson arrivals at `rate` for a cluster of `replicas` (`Fleet.requests` of them).
    func clusterSource(rate: Double, replicas: Int, base: Int) throws -> any RequestSource {
        try source(arrivals: .poisson(rate: rate), count: Fleet.requests(replicas: replicas, base: base))
    }

    /// The prompt lengths of the first `count` requests (the ones the rate probes simulate).
    func promptLengths(count: Int) throws -> [Int] {
        var source = try self.source(arrivals: nil, count: count)
        var lengths: [Int] = []
        while let r = source.next() { lengths.append(r.promptTokens) }
        return lengths
    }

    var description: String {
        guard let prompt else { return "\(scenario.name) (replayed log)" }
        let shared = sharedPrefix.map { " after one of \($0.variants) shared \($0.tokens)-token prefixes" } ?? ""
        let turns = sessions.map { "; sessions of \($0.turns) turns (\($0.concurrent) open at once), each turn's prompt its session's history and its own" } ?? ""
        return "prompts \(Self.describe(prompt))\(shared)\(turns), outputs \(Self.describe(output)) tokens"
    }

    static func describe(_ d: LengthDistribution) -> String {
        switch d {
        case let .fixed(n): "\(n)"
        case let .uniform(lo, hi): "uniform \(lo)–\(hi)"
        case let .lognormal(median, sigma, lo, hi): "log-normal median \(Int(median.rounded())) (σ \(sigma), \(lo)–\(hi))"
        case let .normal(mean, sd, lo, hi): "normal \(Int(mean.rounded()))±\(Int(sd.rounded())) (\(lo)–\(hi))"
        }
    }
}
