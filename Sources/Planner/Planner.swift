import Foundation
import Hardware
import Reporting
import Validation
import Policies
import Replay
import Simulator

// `plan`: for the full cache and every policy × budget, memory per request (nominal and
// physical, from the traces), capacity, saturated throughput, the highest arrival rate that
// meets the SLOs with its latencies, and the accuracy evidence — then the cheapest
// configuration within the accuracy loss the user accepts.

/// Why a plan cannot be made.
public struct PlanError: LocalizedError, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

/// Everything a plan depends on (every default is printed in the report).
public struct PlanInputs: Sendable {
    public var gpu: GPU
    public var model: ModelSpec
    public var serving: ServingConfig
    public var scenario: Scenario
    /// Longest request (prompt + output) in tokens; synthetic prompt lengths are scaled so the
    /// longest prompt is `context − output`.
    public var context: Int
    /// Fixed output length (nil: the scenario's distribution).
    public var outputTokens: Int?
    /// SLOs: TTFT p90 and TPOT p99, seconds.
    public var sloTTFT: Double
    public var sloTPOT: Double
    public var policies: [PolicyKind]
    public var budgets: [Budget]
    /// Largest acceptable relative accuracy loss for the recommendation.
    public var maxAccuracyLoss: Double
    /// Requests per simulated run.
    public var requests: Int
    /// The simulator's coefficients: the defaults, or a calibration profile's.
    public var coefficients = Coefficients()
    /// The calibration profile they come from, as the report names it (nil: the defaults).
    public var calibration: String?
    /// Size a fleet for a target load (nil: one replica only).
    public var fleet: FleetSettings?
    /// The accuracy corpus the rows read their accuracy curves from (nil: none).
    public var accuracyCorpus: AccuracyCorpus?

    public init(gpu: GPU, model: ModelSpec, serving: ServingConfig, scenario: Scenario, context: Int, outputTokens: Int?,
                sloTTFT: Double, sloTPOT: Double, policies: [PolicyKind], budgets: [Budget], maxAccuracyLoss: Double, requests: Int = 300) {
        self.gpu = gpu
        self.model = model
        self.serving = serving
        self.scenario = scenario
        self.context = context
        self.outputTokens = outputTokens
        self.sloTTFT = sloTTFT
        self.sloTPOT = sloTPOT
        self.policies = policies
        self.budgets = budgets
        self.maxAccuracyLoss = maxAccuracyLoss
        self.requests = requests
    }
}

/// Latency percentiles at one arrival rate, milliseconds.
public struct LatencyAtRate: Codable, Sendable, Equatable {
    public var rate: Double
    public var ttft: Percentiles
    public var tpot: Percentiles
    public var e2e: Percentiles
    /// Prompt tokens found in vLLM V1's prefix cache ÷ prompt tokens, at that rate (nil: no prefix
    /// cache in force: caching off, or a policy whose kept cache is specific to each request).
    public var prefixHitRate: Double?

    enum CodingKeys: String, CodingKey {
        case rate, ttft, tpot, e2e
        case prefixHitRate = "prefix_hit_rate"
    }
}

/// One configuration: full cache, or a policy at a budget.
public struct PlanRow: Codable, Sendable, Equatable {
    public var policy: String
    /// Tokens per layer per KV head at the longest prompt (nil for full cache).
    public var budget: Int?
    /// The budget as the user gave it: tokens ("1024") or a kv-fraction of each prompt ("5%").
    public var budgetAsGiven: String?
    /// Tokens every selection keeps whatever the budget, and the block layout the policy is
    /// charged in (nil for the full cache).
    public var window: Int?
    public var layout: BlockLayout?
    /// The kv-fraction kept of the longest prompt.
    public var kvFraction: Double
    /// The kv-fraction the workload's requests keep, averaged over the requests: where the
    /// accuracy evidence is taken.
    public var requestWeightedFraction: Double
    /// KV bytes of the longest request during its prefill (everything is held then).
    public var peakBytes: Double
    /// KV bytes after compression at the end of the longest request, as a uniform kept count would hold.
    public var nominalBytes: Double
    /// The same, in the blocks the policy's kept counts (from the traces) really occupy.
    public var physicalBytes: Double
    /// Longest requests that fit at once (capped by max_num_seqs).
    public var maxConcurrent: Int
    public var saturation: Saturation
    /// Highest Poisson rate meeting the SLOs (0 if none does) and the latencies there.
    public var sloRate: Double
    public var latency: LatencyAtRate?
    /// TTFT p90 and TPOT p99 (ms) at every rate the search simulated, by rate.
    public var curve: [RatePoint]
    public var accuracy: AccuracyEstimate
    /// The replicas that carry the target load and their cost (nil: no target, or the
    /// configuration meets the SLOs at no rate).
    public var fleet: FleetSizing? = nil
    /// Why no fleet within the GPU limit carries it.
    public var fleetShortfall: FleetShortfall? = nil
    /// The fewest disaggregated prefill and decode replicas that carry the target load (nil: not
    /// searched, or none within the GPU limit does).
    public var disaggregatedFleet: FleetSizing? = nil
    /// The GPUs colocated replicas of this configuration need at fractions of the target rate
    /// and at the target (`Fleet.curveShares`; empty without a fleet).
    public var gpusByRate: [GPUsAtRate] = []

    public struct GPUsAtRate: Codable, Sendable, Equatable {
        public var rate: Double
        public var gpus: Int
    }

    public struct RatePoint: Codable, Sendable, Equatable {
        public var rate: Double
        public var ttftP90: Double
        public var tpotP99: Double

        enum CodingKeys: String, CodingKey {
            case rate
            case ttftP90 = "ttft_p90"
            case tpotP99 = "tpot_p99"
        }
    }

    public struct Saturation: Codable, Sendable, Equatable {
        public var requestsPerSecond: Double
        public var outputTokensPerSecond: Double
        public var meanBatch: Double
        public var preemptions: Int
    }

    enum CodingKeys: String, CodingKey {
        case policy, budget, window, layout, saturation, latency, accuracy, curve, fleet
        case fleetShortfall = "fleet_shortfall"
        case disaggregatedFleet = "disaggregated_fleet"
        case gpusByRate = "gpus_by_rate"
        case kvFraction = "kv_fraction"
        case budgetAsGiven = "budget_as_given"
        case requestWeightedFraction = "request_weighted_kv_fraction"
        case peakBytes = "peak_bytes"
        case nominalBytes = "nominal_bytes"
        case physicalBytes = "physical_bytes"
        case maxConcurrent = "max_concurrent"
        case sloRate = "slo_rate"
    }
}

/// What is known about a configuration's accuracy, each figure with its source.
public struct AccuracyEstimate: Codable, Sendable, Equatable {
    /// Replay and real runs on the bundled traces (reference models), at the row's request-weighted kv-fraction.
    public var traces: TraceEvidence?
    /// The accuracy corpus's curve at the row's request-weighted kv-fraction (reference models,
    /// every task kind and length where the full cache succeeds).
    public var corpus: CorpusEvidence? = nil
    /// The papers' figures for this model, policy and budget.
    public var published: [PublishedScore]
    /// The loss used for the recommendation, and where it comes from.
    public var loss: Double?
    public var lossSource: String

    enum CodingKeys: String, CodingKey {
        case traces, published, loss, corpus
        case lossSource = "loss_source"
    }
}

public struct PlanReport: Codable, Sendable, Equatable {
    public var version = 1
    public var gpu: String
    public var model: String
    public var tensorParallel: Int
    public var context: Int
    public var scenario: String
    public var workload: String
    public var serving: ServingConfig
    public var sloTTFTSeconds: Double
    public var sloTPOTSeconds: Double
    public var maxAccuracyLoss: Double
    public var kvCapacityBytes: Double
    public var rows: [PlanRow]
    public var recommendation: String
    public var notes: [String]
    public var traceModels: [String]
    /// The traces are the planned model's own (recorded from its weights), not mapped from
    /// reference models (`TraceLibrary.traces(for:)`).
    public var tracesExact: Bool
    /// Where the step times come from (`CostSource`: measured kernel tables or the roofline, per part).
    public var costModel: CostSource
    /// The validated error of the KV capacity (and so of every memory figure and max concurrency).
    public var kvCapacityBand: ErrorBand
    /// The validated errors of the throughput, TTFT, TPOT and ITL figures (`ErrorBand.servingBands`).
    public var servingBands: [ErrorBand]
    /// The calibration profile whose coefficients applied, as `CalibrationProfile.summary` names it (nil: the defaults).
    public var calibration: String?
    /// The fleet for a target load, over every GPU × TP searched (nil: no `--target-rate`).
    public var fleet: FleetReport?
    /// Whether the workload names its prompts' prefixes (a log's hash_ids, a scenario's
    /// shared_prefix): the report then shows the prefix cache's hit rate.
    public var namesPrefixes: Bool

    enum CodingKeys: String, CodingKey {
        case version, gpu, model, context, scenario, workload, serving, rows, recommendation, notes
        case costModel = "cost_model", calibration, fleet
        case kvCapacityBand = "kv_capacity_error_band"
        case servingBands = "serving_error_bands"
        case tensorParallel = "tensor_parallel"
        case sloTTFTSeconds = "slo_ttft_p90_s"
        case sloTPOTSeconds = "slo_tpot_p99_s"
        case maxAccuracyLoss = "max_accuracy_loss"
        case kvCapacityBytes = "kv_capacity_bytes"
        case traceModels = "trace_models"
        case tracesExact = "traces_exact"
        case namesPrefixes = "names_prefixes"
    }
}

public enum Planner {
    /// Runs the whole grid, configurations in parallel; `progress` sees (done, total).
    /// - Throws: `PlanError` (impossible SLOs, model does not fit) or a trace error.
    public static func plan(_ inputs: PlanInputs, library: TraceLibrary,
                            progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in }) async throws -> PlanReport {
        let model = inputs.model, n = inputs.context
        guard n <= model.maxContext else {
            throw PlanError("context \(n) exceeds \(model.name)'s maximum of \(model.maxContext) tokens")
        }
        let serving = { var s = inputs.serving; s.maxModelLen = n; return s }()
        let plan = try MemoryPlan(gpu: inputs.gpu, model: model, serving: serving, constants: inputs.coefficients.memory)
        let workload = try Workload(inputs: inputs)
        let configs = try configurations(policies: inputs.policies, budgets: inputs.budgets, longestPrompt: workload.longestPrompt)
        let prompts = try workload.promptLengths(count: inputs.requests)
        // Every configuration in parallel; the full cache's row throws when no rate meets the SLOs.
        let total = configs.count
        let counter = Counter()
        let rows = try await withThrowingTaskGroup(of: (Int, PlanRow).self) { group in
            for (i, config) in configs.enumerated() {
                group.addTask {
                    let r = try row(policy: config.0, budget: config.1, inputs: inputs, serving: serving, plan: plan, workload: workload,
                                    prompts: prompts, library: library)
                    progress(counter.increment(), total)
                    return (i, r)
                }
            }
            var out = [PlanRow?](repeating: nil, count: configs.count)
            for try await (i, r) in group { out[i] = r }
            return out.compactMap { $0 }
        }
        let traces = library.traces(for: model)
        let report = PlanReport(
            gpu: inputs.gpu.name, model: model.name, tensorParallel: serving.tensorParallel, context: n, scenario: inputs.scenario.name,
            workload: workload.description, serving: serving, sloTTFTSeconds: inputs.sloTTFT, sloTPOTSeconds: inputs.sloTPOT,
            maxAccuracyLoss: inputs.maxAccuracyLoss, kvCapacityBytes: plan.kvBytes, rows: rows,
            recommendation: recommend(rows, maxLoss: inputs.maxAccuracyLoss),
            notes: notes(inputs, library: library), traceModels: traces.models, tracesExact: traces.exact,
            costModel: CostModel(gpu: inputs.gpu, model: model, serving: serving).source,
            kvCapacityBand: try ErrorBand.kvCapacity(),
            servingBands: try ErrorBand.servingBands(),
            calibration: inputs.calibration,
            namesPrefixes: workload.namesPrefixes
        )
        return report
    }

    /// The mean over the requests' `prompts` of the kv-fraction each keeps.
    static func requestWeightedFraction(_ spec: CompressionSpec, prompts: [Int], blockSize: Int) -> Double {
        guard !prompts.isEmpty else { return 1 }
        return prompts.reduce(0) { $0 + Double(spec.kept(prompt: $1, blockSize: blockSize)) / Double($1) } / Double(prompts.count)
    }

    /// The configurations of a plan: the full cache (nil, nil), then every policy × budget in the
    /// order given, skipping a budget that keeps the whole longest prompt.
    /// - Throws: `PlanError` for a token budget below a policy's window.
    static func configurations(policies: [PolicyKind], budgets: [Budget], longestPrompt prompt: Int) throws -> [(PolicyKind?, Budget?)] {
        var configs: [(PolicyKind?, Budget?)] = [(nil, nil)]
        for p in policies {
            for spec in budgets {
                if case let .tokens(b) = spec, b < p.window { throw PlanError("budget \(b) is below \(p.rawValue)'s window of \(p.window) tokens") }
                if spec.tokens(prompt: prompt, window: p.window) < prompt { configs.append((p, spec)) }
            }
        }
        return configs
    }

    /// The outcome of the rate search.
    enum RateSearch<Result> {
        /// The highest rate found meeting the SLOs, and the run there.
        case met(rate: Double, Result)
        /// Nothing met them, not even a rate near zero (its run).
        case unmet(atLowest: Result)
    }

    /// The highest Poisson rate meeting the SLOs, by bisection on (0, `top`]: 7 halvings leave a
    /// bracket of top/128 (0.9 % of the saturated rate when top is 1.2× it), below the
    /// recommendation's 2 % margin. A near-zero rate (top/1000) is probed only when nothing above
    /// it met them, to tell "a very low rate" from "no rate at all".
    static func highestRate<R>(below top: Double, halvings: Int = 7, probe: (Double) throws -> R, meets: (R) -> Bool) rethrows -> RateSearch<R> {
        let lowest = top / 1000
        var lo = lowest, hi = top, best: R?
        for _ in 0..<halvings {
            let mid = (lo + hi) / 2
            let r = try probe(mid)
            if meets(r) { lo = mid; best = r } else { hi = mid }
        }
        if let best { return .met(rate: lo, best) }
        let atLowest = try probe(lowest)
        return meets(atLowest) ? .met(rate: lowest, atLowest) : .unmet(atLowest: atLowest)
    }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func increment() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value }
    }

    /// A configuration as the simulator runs it: the pool with the policy's metadata, the policy
    /// at its budget with the footprint its traces give, and that evidence.
    struct RowSetup {
        var plan: MemoryPlan
        var compression: CompressionSpec?
        var evidence: TraceEvidence?
        /// Tokens kept at the longest prompt, its kv-fraction, and the requests' mean kv-fraction.
        var budget: Int?
        var fraction: Double
        var weighted: Double
    }

    static func setup(policy: PolicyKind?, budget spec: Budget?, inputs: PlanInputs, serving: ServingConfig, plan: MemoryPlan,
                      workload: Workload, prompts: [Int], library: TraceLibrary) throws -> RowSetup {
        let prompt = workload.longestPrompt
        let plan = try plan.with(metadata: policy?.poolMetadata)
        var compression: CompressionSpec?
        if let policy, let spec { compression = CompressionSpec(policy: policy, budget: spec) }
        // The budget at the longest prompt (the row's memory figures), and the kv-fraction the
        // workload's requests keep on average (where the accuracy evidence is taken).
        let budget = compression.map { $0.budget.tokens(prompt: prompt, window: $0.window) }
        let fraction = budget.map { Double($0) / Double(prompt) } ?? 1
        let weighted = compression.map { requestWeightedFraction($0, prompts: prompts, blockSize: serving.blockSize) } ?? 1
        var evidence: TraceEvidence?
        if let policy, var spec = compression {
            evidence = try library.evidence(policy, fraction: weighted, target: inputs.model)
            spec.footprint = TraceFootprint(shape: evidence?.shapeQuantiles ?? [], layout: policy.layout)
            compression = spec
        }
        return RowSetup(plan: plan, compression: compression, evidence: evidence, budget: budget, fraction: fraction, weighted: weighted)
    }

    /// The saturated run of a configuration: every request at once, enough of them to fill it.
    static func saturated(_ setup: RowSetup, inputs: PlanInputs, serving: ServingConfig, workload: Workload) throws -> SimulationResult {
        let concurrent = setup.plan.maxConcurrency(setup.compression, prompt: workload.longestPrompt, output: workload.longestOutput)
        let source = try workload.source(arrivals: nil, count: max(inputs.requests, min(1000, 2 * concurrent)))
        return try Simulation.run(gpu: inputs.gpu, model: inputs.model, serving: serving, compression: setup.compression, coefficients: inputs.coefficients,
                                  source: source, largest: (workload.longestPrompt, workload.longestOutput), timeSeries: false)
    }

    /// The highest saturated request rate of any configuration of `inputs`: what one replica can
    /// carry at most, so that no fleet of N replicas carries more than N times it (the fleet
    /// search's lower bound on a GPU × TP candidate's cost).
    public static func bestSaturatedRate(_ inputs: PlanInputs, library: TraceLibrary) async throws -> Double {
        let n = inputs.context
        let serving = { var s = inputs.serving; s.maxModelLen = n; return s }()
        let plan = try MemoryPlan(gpu: inputs.gpu, model: inputs.model, serving: serving, constants: inputs.coefficients.memory)
        let workload = try Workload(inputs: inputs)
        let configs = try configurations(policies: inputs.policies, budgets: inputs.budgets, longestPrompt: workload.longestPrompt)
        let prompts = try workload.promptLengths(count: inputs.requests)
        return try await withThrowingTaskGroup(of: Double.self) { group in
            for config in configs {
                group.addTask {
                    let s = try setup(policy: config.0, budget: config.1, inputs: inputs, serving: serving, plan: plan, workload: workload, prompts: prompts, library: library)
                    return try saturated(s, inputs: inputs, serving: serving, workload: workload).requestsPerSecond
                }
            }
            var best = 0.0
            for try await r in group { best = max(best, r) }
            return best
        }
    }

    static func row(policy: PolicyKind?, budget spec: Budget?, inputs: PlanInputs, serving: ServingConfig, plan: MemoryPlan,
                    workload: Workload, prompts: [Int], library: TraceLibrary) throws -> PlanRow {
        let model = inputs.model, prompt = workload.longestPrompt, output = workload.longestOutput
        let configured = try setup(policy: policy, budget: spec, inputs: inputs, serving: serving, plan: plan, workload: workload, prompts: prompts, library: library)
        let plan = configured.plan, compression = configured.compression, evidence = configured.evidence
        let budget = configured.budget, fraction = configured.fraction, weighted = configured.weighted
        let bytesPerPHB = plan.phbBytes
        let tokens = prompt + output
        let keptEnd = compression.keptAtEnd(prompt: prompt, output: output, blockSize: serving.blockSize)
        let uniform = NominalFootprint(layout: .perSequence)
        let peak = Double(uniform.phb(tokens: prompt, kept: prompt, plan: plan)) * bytesPerPHB
        let nominal = Double(uniform.phb(tokens: tokens, kept: keptEnd, plan: plan)) * bytesPerPHB
        let physical = Double(max(1, compression.footprint.phb(tokens: tokens, kept: keptEnd, plan: plan))) * bytesPerPHB
        let concurrent = plan.maxConcurrency(compression, prompt: prompt, output: output)

        func simulate(_ arrivals: ArrivalProcess?, count: Int) throws -> SimulationResult {
            let source = try workload.source(arrivals: arrivals, count: count)
            return try Simulation.run(gpu: inputs.gpu, model: model, serving: serving, compression: compression, coefficients: inputs.coefficients, source: source,
                                      largest: (prompt, output), timeSeries: false)
        }
        let saturated = try Self.saturated(configured, inputs: inputs, serving: serving, workload: workload)
        func meets(_ r: SimulationResult) -> Bool { Fleet.failing(r, sloTTFT: inputs.sloTTFT, sloTPOT: inputs.sloTPOT) == nil }
        // The highest Poisson rate meeting the SLOs, by bisection below the saturated rate.
        let top = saturated.requestsPerSecond * 1.2
        var curve: [PlanRow.RatePoint] = []
        func probe(_ rate: Double) throws -> SimulationResult {
            let r = try simulate(.poisson(rate: rate), count: inputs.requests)
            curve.append(.init(rate: rate, ttftP90: r.ttftMs.p90, tpotP99: r.tpotMs.p99))
            return r
        }
        var sloRate = 0.0
        var latency: LatencyAtRate?
        switch try highestRate(below: top, probe: probe, meets: meets) {
        case let .met(rate, best):
            sloRate = rate
            latency = LatencyAtRate(rate: rate, ttft: best.ttftMs, tpot: best.tpotMs, e2e: best.e2eMs, prefixHitRate: best.prefixCache?.hitRate)
        case let .unmet(atLow):
            if policy == nil {
                let ttft = atLow.ttftMs.p90 / 1000, tpot = atLow.tpotMs.p99
                let which = atLow.ttftMs.p90 > inputs.sloTTFT * 1000
                    ? "TTFT p90 is \(String(format: "%.2f", ttft)) s > \(inputs.sloTTFT) s"
                    : "TPOT p99 is \(String(format: "%.1f", tpot)) ms > \(inputs.sloTPOT * 1000) ms"
                throw PlanError("the SLOs cannot be met even as the arrival rate goes to 0 with the full cache: \(which) for \(workload.description) on \(inputs.gpu.name)")
            }
        }
        curve.sort { $0.rate < $1.rate }
        // The fleet for the target load: clusters of this configuration at the target rate.
        var sizing: FleetSizing?, shortfall: FleetShortfall?, disaggregated: FleetSizing?
        var gpusByRate: [PlanRow.GPUsAtRate] = []
        if let f = inputs.fleet, sloRate > 0 {
            let tp = serving.tensorParallel, maxReplicas = f.maxGPUs / tp
            let cost = CostModel(gpu: inputs.gpu, model: model, serving: serving, constants: inputs.coefficients.cost)
            let slo = GoodputSLO(ttftMs: inputs.sloTTFT * 1000, tpotMs: inputs.sloTPOT * 1000)
            var runs: [Int: SimulationResult] = [:]
            func cluster(_ n: Int, rate: Double) throws -> SimulationResult {
                let source = try workload.clusterSource(rate: rate, replicas: n, base: inputs.requests)
                var c = ClusterSimulation(replicas: n, plan: plan, cost: cost, compression: compression, router: f.router, source: source, goodput: slo)
                return c.run().fleet
            }
            func cluster(_ n: Int) throws -> SimulationResult {
                if let r = runs[n] { return r }
                let r = try cluster(n, rate: f.targetRate)
                runs[n] = r
                return r
            }
            let estimate = Int((f.targetRate / sloRate).rounded(.up))
            if let n = try Fleet.replicasNeeded(estimate: estimate, maxReplicas: maxReplicas, meets: { meets(try cluster($0)) }) {
                sizing = FleetSizing(targetRate: f.targetRate, replicas: n, tp: tp, usdPerGPUHour: f.usdPerGPUHour, priceSource: f.priceSource, cluster: runs[n]!)
                // GPUs at lower loads (for the chart of GPUs against the rate), each found the same way.
                for share in Fleet.curveShares {
                    let rate = f.targetRate * share
                    let m = try Fleet.replicasNeeded(estimate: max(1, Int((rate / sloRate).rounded(.up))), maxReplicas: n,
                                                     meets: { meets(try cluster($0, rate: rate)) })
                    if let m { gpusByRate.append(.init(rate: rate, gpus: m * tp)) }
                }
                gpusByRate.append(.init(rate: f.targetRate, gpus: n * tp))
            } else if maxReplicas >= 1 {
                let largest = try cluster(maxReplicas)
                shortfall = FleetShortfall(maxReplicas: maxReplicas, failing: Fleet.failing(largest, sloTTFT: inputs.sloTTFT, sloTPOT: inputs.sloTPOT) ?? "")
            } else {
                shortfall = FleetShortfall(maxReplicas: 0, failing: "one replica needs \(tp) GPUs, more than the \(f.maxGPUs) allowed")
            }
            if f.disaggregate, serving.engine == .vllmV1, maxReplicas >= 2 {
                disaggregated = try Self.split(f, colocated: sizing?.replicas, maxReplicas: maxReplicas, inputs: inputs, serving: serving, plan: plan,
                                               cost: cost, compression: compression, workload: workload, slo: slo, meets: meets)
            }
        }
        let published = policy.map { Published.matching(model: model.name, policy: $0.rawValue, budget: spec!) } ?? []
        let corpus = policy.flatMap { inputs.accuracyCorpus?.evidence($0, fraction: weighted) }
        let loss: Double?, source: String
        if policy == nil {
            loss = 0; source = "full cache"
        } else if let c = corpus {
            // The interval's pessimistic end: what the evidence cannot rule out.
            loss = c.pessimisticLoss
            source = "accuracy corpus (\(c.models.joined(separator: ", "))): the lower end of the 95 % interval at kv-fraction \(formatPercent((weighted * 1000).rounded() / 1000)), \(c.samples) samples"
        } else if let p = published.first {
            loss = p.loss; source = "\(p.benchmark), \(p.source)"
        } else if let m = evidence?.measuredLoss {
            let traces = library.traces(for: inputs.model)
            loss = m; source = "real compressed runs on the \(traces.exact ? "model's own" : "bundled") traces (\(traces.models.joined(separator: ", "))), nearest recorded kv-fraction"
        } else {
            loss = nil; source = "no measurement at this configuration"
        }
        return PlanRow(
            policy: policy?.rawValue ?? "full", budget: budget, budgetAsGiven: spec?.description, window: compression?.window,
            layout: compression?.policy.layout, kvFraction: fraction,
            requestWeightedFraction: weighted, peakBytes: peak, nominalBytes: nominal,
            physicalBytes: physical, maxConcurrent: concurrent,
            saturation: .init(requestsPerSecond: saturated.requestsPerSecond, outputTokensPerSecond: saturated.outputTokensPerSecond,
                              meanBatch: saturated.meanBatch, preemptions: saturated.preemptions),
            sloRate: sloRate, latency: latency, curve: curve,
            accuracy: AccuracyEstimate(traces: evidence, corpus: corpus, published: published, loss: loss, lossSource: source),
            fleet: sizing, fleetShortfall: shortfall, disaggregatedFleet: disaggregated, gpusByRate: gpusByRate
        )
    }

    /// The fewest disaggregated replicas of one configuration that carry the target load. TTFT
    /// is the prefill pool's and TPOT the decode pool's, so the search is two short ones: the
    /// fewest prefill replicas whose TTFT meets its SLO beside an ample decode pool (as many
    /// replicas as the colocated fleet, within the limit), then the fewest decode replicas beside
    /// them meeting both SLOs. Without a network bandwidth (`FleetSettings.kvLinkGBps`, or the
    /// catalogue's `GPU.network`) the pools must fit one node (`DisaggregationSplit.gpusPerNode`).
    /// nil when no split within the limits carries the load.
    static func split(_ f: FleetSettings, colocated: Int?, maxReplicas: Int, inputs: PlanInputs, serving: ServingConfig, plan: MemoryPlan,
                      cost: CostModel, compression: CompressionSpec?, workload: Workload, slo: GoodputSLO,
                      meets: (SimulationResult) -> Bool) throws -> FleetSizing? {
        let tp = serving.tensorParallel
        let cap = f.kvLinkGBps == nil && inputs.gpu.network == nil ? min(maxReplicas, DisaggregationSplit.gpusPerNode / tp) : maxReplicas
        guard cap >= 2 else { return nil }
        var runs: [DisaggregationSplit: (SimulationResult, KVLink)] = [:]
        func run(_ p: Int, _ d: Int) throws -> (SimulationResult, KVLink) {
            let split = DisaggregationSplit(prefill: p, decode: d)
            if let r = runs[split] { return r }
            let link = try split.link(gpu: inputs.gpu, tensorParallel: tp, networkGBps: f.kvLinkGBps)
            let source = try workload.clusterSource(rate: f.targetRate, replicas: p + d, base: inputs.requests)
            var c = ClusterSimulation(prefill: p, decode: d, plan: plan, cost: cost, compression: compression, router: f.router, link: link,
                                      source: source, goodput: slo)
            let r = (c.run().fleet, link)
            runs[split] = r
            return r
        }
        let ample = { (p: Int) in max(1, min(colocated ?? cap / 2, cap - p)) }
        func ttftMet(_ r: SimulationResult) -> Bool { Fleet.failing(r, sloTTFT: inputs.sloTTFT, sloTPOT: .infinity) == nil }
        guard let p = try Fleet.replicasNeeded(estimate: max(1, (colocated ?? 2) / 2), maxReplicas: cap - 1, meets: { try ttftMet(run($0, ample($0)).0) }),
              let d = try Fleet.replicasNeeded(estimate: max(1, (colocated ?? 2) - p), maxReplicas: cap - p, meets: { try meets(run(p, $0).0) })
        else { return nil }
        let (result, link) = try run(p, d)
        var sizing = FleetSizing(targetRate: f.targetRate, replicas: p + d, tp: tp, usdPerGPUHour: f.usdPerGPUHour, priceSource: f.priceSource, cluster: result)
        sizing.split = DisaggregationSplit(prefill: p, decode: d)
        sizing.kvLink = link
        return sizing
    }

    /// The cheapest configuration (highest SLO rate per GPU) within the loss, and what the full cache would need.
    static func recommend(_ rows: [PlanRow], maxLoss: Double) -> String {
        guard let full = rows.first else { return "" }
        let eligible = rows.dropFirst().filter { ($0.accuracy.loss ?? .infinity) <= maxLoss && $0.sloRate > 0 }
        // Highest SLO rate; among rates within 2 % of it (the bisection's resolution and the
        // simulator's noise), the one with the least predicted loss, then the largest budget.
        let bestRate = eligible.map(\.sloRate).max() ?? 0
        let best = eligible.filter { $0.sloRate >= bestRate * 0.98 }
            .min { ($0.accuracy.loss ?? 1, -($0.budget ?? 0)) < ($1.accuracy.loss ?? 1, -($1.budget ?? 0)) }
        let rate = { (r: Double) in String(format: "%.3g", r) }
        guard let best, full.sloRate == 0 || best.sloRate > full.sloRate * 1.02 else {
            // Policies meet the SLOs within the loss, but the one chosen among the fastest (the
            // least loss within 2 % of the best rate) is not 2 % faster than the full cache.
            let why = full.sloRate > 0 && best != nil
                ? "no policy within \(formatPercent(maxLoss)) accuracy loss raises the highest SLO-meeting rate by more than 2 % (\(rate(full.sloRate)) req/s per replica with the full cache): at that rate the SLOs, not KV memory, are the limit"
                : "no policy meets the SLOs within \(formatPercent(maxLoss)) accuracy loss"
            return "Full cache: \(why)."
        }
        let gpus = full.sloRate > 0
            ? "the full cache would need \(String(format: "%.1f", best.sloRate / full.sloRate))× more GPUs for the same load"
            : "the full cache cannot meet the SLOs at any rate"
        let fraction = formatPercent((best.kvFraction * 10000).rounded() / 10000)
        let loss = formatPercent(((best.accuracy.loss ?? 0) * 1000).rounded() / 1000)
        return "\(best.policy) at budget \(best.budget!) (kv-fraction \(fraction)): \(rate(best.sloRate)) req/s per replica within the SLOs, predicted accuracy loss \(loss) (\(best.accuracy.lossSource)); \(gpus)."
    }

    static func notes(_ inputs: PlanInputs, library: TraceLibrary) -> [String] {
        let traces = library.traces(for: inputs.model)
        var notes = [
            traces.exact
                ? "Physical KV per request comes from replaying \(traces.indices.count) trace\(traces.indices.count == 1 ? "" : "s") of \(inputs.model.name) itself (recorded from the same \(inputs.model.ggufPath != nil ? "GGUF file" : "Hugging Face weights") and shape; other models' traces are not used): its own per-(layer, KV head) kept counts, no mapping."
                : "Physical KV per request comes from replaying the bundled traces of \(traces.models.joined(separator: ", ")) and mapping their per-(layer, KV head) kept counts to \(inputs.model.name) by relative layer depth and head quantile: an extrapolation from small reference models (traces of \(inputs.model.name) itself, recorded with Recorders/huggingface, would be used instead: Docs/recording-on-gpu.md).",
            "Throughput, TTFT and TPOT carry the 90th percentile of the absolute error the simulator makes on published vLLM and SGLang serving runs held out of its fit (Docs/validation.md, \"Serving runs without compression\"); the compression multipliers are checked separately (\"Serving results\").",
            "Latency and throughput come from the discrete-event simulator: \(CostModel(gpu: inputs.gpu, model: inputs.model, serving: inputs.serving).source.description), \(inputs.calibration.map { "with the coefficients of the calibration profile \($0) (Docs/calibration.md)" } ?? "with its default scheduler constants") (Docs/simulator.md; Docs/validation.md for its measured error).",
            "Accuracy from the bundled traces is measured on short (1–2k token) synthetic retrieval tasks at each row's request-weighted kv-fraction (the mean over the workload's requests of the share of each prompt the budget keeps); published figures are the papers' own, on their models and benchmarks.",
            inputs.accuracyCorpus.map { c in "[corpus]: the accuracy corpus (\(c.models.joined(separator: ", ")); kinds \(c.kinds.joined(separator: ", ")); lengths \(c.lengths.map(String.init).joined(separator: ", ")) tokens): of the samples the full cache solves, the share the policy still solves at the row's request-weighted kv-fraction, interpolated between recorded kv-fractions, with its Wilson 95 % interval; the recommendation takes the interval's lower end as the loss. No evidence below the smallest recorded kv-fraction." } ?? "No accuracy corpus was read (Accuracy/*.jsonl; ckv-sim corpus run).",
        ]
        let missing = inputs.policies.filter { p in p.needsProfile && !library.replayers.contains { library.profiles[$0.trace.model.name] != nil } }
        if !missing.isEmpty {
            notes.append("\(missing.map(\.rawValue).joined(separator: ", ")): no head profile for the trace models, so no trace-driven memory or accuracy (ckv-sim heads identify).")
        }
        return notes
    }
}
