import Foundation
import Hardware
import Policies
import Reporting
import Simulator

/// What the fleet sizing of a plan is asked for (`plan --target-rate`).
public struct FleetSettings: Sendable {
    /// Requests per second the fleet must carry within the SLOs.
    public var targetRate: Double
    public var router: RouterPolicy
    /// The GPU's price, USD per GPU-hour, and where it comes from (`GPUPrices.price`).
    public var usdPerGPUHour: Double
    public var priceSource: String
    /// No configuration may use more GPUs than this.
    public var maxGPUs: Int
    /// Also search disaggregated prefill and decode pools (vLLM V1), with the KV crossing the
    /// network at `kvLinkGBps` per GPU when the pools span nodes (nil: only splits within a node).
    public var disaggregate: Bool
    public var kvLinkGBps: Double?

    public init(targetRate: Double, router: RouterPolicy = .leastOutstanding, usdPerGPUHour: Double, priceSource: String, maxGPUs: Int = 256,
                disaggregate: Bool = false, kvLinkGBps: Double? = nil) {
        self.targetRate = targetRate
        self.router = router
        self.usdPerGPUHour = usdPerGPUHour
        self.priceSource = priceSource
        self.maxGPUs = maxGPUs
        self.disaggregate = disaggregate
        self.kvLinkGBps = kvLinkGBps
    }
}

/// How many replicas of one configuration carry the target load, found by simulating the
/// cluster at the target rate, and what they cost.
public struct FleetSizing: Codable, Sendable, Equatable {
    public var targetRate: Double
    public var replicas: Int
    public var gpus: Int
    public var usdPerGPUHour: Double
    public var priceSource: String
    public var usdPerHour: Double
    public var gpuHoursPerDay: Double
    /// USD per million output tokens, and per million tokens in and out, at the target rate.
    public var usdPerMillionOutputTokens: Double
    public var usdPerMillionTokens: Double
    /// The cluster run at the target rate with `replicas`.
    public var ttftP90Ms: Double
    public var tpotP99Ms: Double
    /// Requests per second meeting every SLO (TTFT and TPOT): the target rate times the share of
    /// the run's requests that met them all.
    public var goodput: Double
    public var outputTokensPerSecond: Double
    /// The fleet's prefix-cache hit rate (nil: no prefix cache in force).
    public var prefixHitRate: Double?
    /// Disaggregated: the prefill and decode pools (`replicas` is their sum) and the link the KV
    /// crosses, with the KV sent per request (nil: colocated replicas).
    public var split: DisaggregationSplit?
    public var kvLink: KVLink?
    public var kvBytesPerRequest: Double?

    enum CodingKeys: String, CodingKey {
        case replicas, gpus, goodput, split
        case prefixHitRate = "prefix_hit_rate"
        case kvLink = "kv_link"
        case kvBytesPerRequest = "kv_bytes_per_request"
        case targetRate = "target_rate"
        case usdPerGPUHour = "usd_per_gpu_hour"
        case priceSource = "price_source"
        case usdPerHour = "usd_per_hour"
        case gpuHoursPerDay = "gpu_hours_per_day"
        case usdPerMillionOutputTokens = "usd_per_million_output_tokens"
        case usdPerMillionTokens = "usd_per_million_tokens"
        case ttftP90Ms = "ttft_p90_ms"
        case tpotP99Ms = "tpot_p99_ms"
        case outputTokensPerSecond = "output_tokens_per_s"
    }

    /// The cost figures of `replicas` replicas of `tp` GPUs at `usdPerGPUHour` serving
    /// `outputTokensPerSecond` (and `totalTokensPerSecond` in and out), with the latencies of that
    /// run and `good` of its `requests` meeting every SLO.
    init(targetRate: Double, replicas: Int, tp: Int, usdPerGPUHour: Double, priceSource: String, outputTokensPerSecond: Double,
         totalTokensPerSecond: Double, ttftP90Ms: Double, tpotP99Ms: Double, good: Int, requests: Int) {
        self.targetRate = targetRate
        self.replicas = replicas
        gpus = replicas * tp
        self.usdPerGPUHour = usdPerGPUHour
        self.priceSource = priceSource
        usdPerHour = Double(gpus) * usdPerGPUHour
        gpuHoursPerDay = Double(gpus) * 24
        let perMillion = { (tokensPerSecond: Double) in tokensPerSecond > 0 ? Double(replicas * tp) * usdPerGPUHour / (tokensPerSecond * 3600) * 1e6 : .infinity }
        usdPerMillionOutputTokens = perMillion(outputTokensPerSecond)
        usdPerMillionTokens = perMillion(totalTokensPerSecond)
        self.ttftP90Ms = ttftP90Ms
        self.tpotP99Ms = tpotP99Ms
        // In steady state the share of requests meeting every SLO, times the rate they arrive at
        // (a finite run's span includes its drain, which would understate it).
        goodput = requests > 0 ? targetRate * Double(good) / Double(requests) : 0
        self.outputTokensPerSecond = outputTokensPerSecond
    }

    /// The same from the cluster run at the target rate.
    init(targetRate: Double, replicas: Int, tp: Int, usdPerGPUHour: Double, priceSource: String, cluster run: SimulationResult) {
        self.init(targetRate: targetRate, replicas: replicas, tp: tp, usdPerGPUHour: usdPerGPUHour, priceSource: priceSource,
                  outputTokensPerSecond: run.outputTokensPerSecond, totalTokensPerSecond: run.totalTokensPerSecond,
                  ttftP90Ms: run.ttftMs.p90, tpotP99Ms: run.tpotMs.p99, good: run.goodput?.requests ?? 0, requests: run.requests)
        prefixHitRate = run.prefixCache?.hitRate
        kvBytesPerRequest = run.kvTransfer?.meanBytes
    }

    /// How the replicas are arranged: "3", or "1P2D".
    public var arrangement: String { split?.description ?? String(replicas) }
}

/// Why a configuration has no fleet: the most replicas allowed still miss an SLO.
public struct FleetShortfall: Codable, Sendable, Equatable {
    public var maxReplicas: Int
    /// The first SLO the largest cluster misses, in words.
    public var failing: String

    enum CodingKeys: String, CodingKey {
        case failing
        case maxReplicas = "max_replicas"
    }
}

public enum Fleet {
    /// The fewest replicas for which `meets` holds, starting from `estimate` (one replica's
    /// SLO-meeting rate divides the target) and stepping down while it still holds, or up until
    /// it does; nil when not even `maxReplicas` do. `meets` is monotone in practice (more
    /// replicas behind a load-aware router never serve a given stream worse); the search relies
    /// on it only near the estimate.
    public static func replicasNeeded(estimate: Int, maxReplicas: Int, meets: (Int) throws -> Bool) rethrows -> Int? {
        guard maxReplicas >= 1 else { return nil }
        var n = min(max(1, estimate), maxReplicas)
        if try meets(n) {
            while n > 1, try meets(n - 1) { n -= 1 }
            return n
        }
        while n < maxReplicas {
            n += 1
            if try meets(n) { return n }
        }
        return nil
    }

    /// How far a replica's steady Poisson rate within the SLOs may exceed the rate it drains a
    /// burst at (`Planner.bestSaturatedRate`: a finite burst's span includes the tail of its last,
    /// longest requests). Measured on the default workload at 32k and 128k on the L40S, A100 and
    /// H100, every configuration: at most 1.19 (`slo_rate` ÷ `saturation.requestsPerSecond` in
    /// `plan --format json`); 1.5 leaves room.
    static let steadyOverSaturated = 1.5

    /// The fewest replicas that could carry `targetRate` when one drains a burst at `saturatedRate`:
    /// a search's lower bound on a candidate's fleet (a candidate whose bound costs more than the
    /// cheapest fleet found is not planned).
    public static func leastReplicas(targetRate: Double, saturatedRate: Double) -> Int {
        saturatedRate > 0 ? max(1, Int((targetRate / (steadyOverSaturated * saturatedRate)).rounded(.up))) : Int.max / 64
    }

    /// The fractions of the target rate a fleet is also sized at, for the GPUs-against-rate chart.
    static let curveShares = [0.25, 0.5]

    /// Requests a cluster run of `replicas` simulates: enough for each replica to reach its
    /// steady state and for the fleet's p99.
    static func requests(replicas: Int, base: Int) -> Int { max(base, 60 * replicas) }

    /// The first SLO `r` misses, in words (nil: it meets them): the plan's one test of its SLOs,
    /// for a single replica's rate search and for a cluster at the target rate.
    static func failing(_ r: SimulationResult, sloTTFT: Double, sloTPOT: Double) -> String? {
        if r.completed < r.requests { return "\(r.requests - r.completed) of \(r.requests) requests could not be served" }
        if r.ttftMs.p90 > sloTTFT * 1000 { return String(format: "TTFT p90 %.2f s > %@ s", r.ttftMs.p90 / 1000, Format.figure(sloTTFT)) }
        if r.tpotMs.p99 > sloTPOT * 1000 { return String(format: "TPOT p99 %.0f ms > %@ ms", r.tpotMs.p99, Format.figure(sloTPOT * 1000)) }
        return nil
    }
}

/// One way to carry the target load: a GPU, its TP degree, a configuration and its fleet.
public struct FleetOption: Codable, Sendable, Equatable {
    public var gpu: String
    public var tensorParallel: Int
    public var weights: WeightFormat
    public var kvFormat: KVFormat
    public var policy: String
    public var budget: Int?
    public var budgetAsGiven: String?
    public var kvFraction: Double
    public var accuracyLoss: Double?
    public var lossSource: String
    public var sizing: FleetSizing

    /// Whether `report` is the plan of this option's GPU, TP and formats.
    public func planned(by report: PlanReport) -> Bool {
        report.gpu == gpu && report.tensorParallel == tensorParallel && report.serving.weightFormat == weights && report.serving.kvFormat == kvFormat
    }

    /// "bf16/bf16": weights and KV.
    public var formats: String { "\(weights.rawValue)/\(kvFormat.rawValue)" }

    enum CodingKeys: String, CodingKey {
        case gpu, policy, budget, sizing, weights
        case kvFormat = "kv_format"
        case tensorParallel = "tensor_parallel"
        case budgetAsGiven = "budget_as_given"
        case kvFraction = "kv_fraction"
        case accuracyLoss = "accuracy_loss"
        case lossSource = "loss_source"
    }
}

/// The fleet answer of a plan: every option that carries the target load, cheapest first, the
/// recommendation, and the command that deploys it.
public struct FleetReport: Codable, Sendable, Equatable {
    public var targetRate: Double
    public var router: RouterPolicy
    public var maxGPUs: Int
    /// The GPU × TP candidates searched, and those that could not be planned, with why.
    public var candidates: [String]
    public var skipped: [String]
    public var prices: String
    /// Cheapest first (cost per hour, then accuracy loss).
    public var options: [FleetOption]
    public var recommendation: String
    /// The recommended option (an index into `options`), its serve command and where its policy runs.
    public var recommended: Int?
    public var serveCommand: String?
    public var implementation: String?

    enum CodingKeys: String, CodingKey {
        case router, candidates, skipped, prices, options, recommendation, recommended, implementation
        case targetRate = "target_rate"
        case maxGPUs = "max_gpus"
        case serveCommand = "serve_command"
    }

    /// Ranks every fleet the `reports` (one per GPU × TP candidate) found and recommends the
    /// cheapest within `maxLoss` of accuracy, against the cheapest full cache.
    /// - Throws: `PlanError` when no configuration carries the load: which SLO the largest
    ///   allowed cluster still misses, and the most one replica of the best carries.
    public static func rank(_ reports: [PlanReport], skipped: [String], targetRate: Double, router: RouterPolicy, maxGPUs: Int, prices: String,
                            maxLoss: Double, models: [String: ModelSpec]) throws -> FleetReport {
        var options: [FleetOption] = []
        for report in reports {
            for row in report.rows {
                for s in [row.fleet, row.disaggregatedFleet].compactMap({ $0 }) {
                    options.append(FleetOption(gpu: report.gpu, tensorParallel: report.tensorParallel, weights: report.serving.weightFormat,
                                               kvFormat: report.serving.kvFormat, policy: row.policy, budget: row.budget,
                                               budgetAsGiven: row.budgetAsGiven, kvFraction: row.kvFraction, accuracyLoss: row.accuracy.loss,
                                               lossSource: row.accuracy.lossSource, sizing: s))
                }
            }
        }
        let rate = Format.figure(targetRate)
        guard !options.isEmpty else {
            // The best single replica, and what the largest allowed cluster of it misses.
            let rows = reports.flatMap { r in r.rows.map { (r, $0) } }
            guard let (report, best) = rows.max(by: { $0.1.sloRate < $1.1.sloRate }), best.sloRate > 0 else {
                throw PlanError("no configuration meets the SLOs at any rate on \(reports.map { "\($0.gpu) × \($0.tensorParallel)" }.joined(separator: ", "))")
            }
            let miss = best.fleetShortfall.map { " with \($0.maxReplicas) replicas: \($0.failing)" } ?? ""
            throw PlanError("no configuration carries \(rate) req/s within \(maxGPUs) GPUs: the best, \(best.policy)\(best.budget.map { " at budget \($0)" } ?? "") on \(report.gpu) × \(report.tensorParallel), meets the SLOs at up to \(Format.figure(best.sloRate)) req/s per replica (a burst of requests all at once drains at \(Format.figure(best.saturation.requestsPerSecond)) req/s) and misses them\(miss) (raise --max-gpus or relax the SLOs)")
        }
        // Cheapest first; at the same cost the full cache (nothing to risk), then the least loss,
        // the largest budget, and the names.
        // Colocated before disaggregated at the same cost (one pool to run).
        func first(_ o: FleetOption) -> (Double, Int, Double, Int, Int) {
            (o.sizing.usdPerHour, o.policy == "full" ? 0 : 1, o.accuracyLoss ?? 1, -(o.budget ?? Int.max), o.sizing.split == nil ? 0 : 1)
        }
        func then(_ o: FleetOption) -> (String, Int, String, String, String) { (o.gpu, o.tensorParallel, o.formats, o.policy, o.sizing.arrangement) }
        options.sort { a, b in first(a) != first(b) ? first(a) < first(b) : then(a) < then(b) }
        let eligible = options.indices.filter { (options[$0].accuracyLoss ?? .infinity) <= maxLoss }
        let money = { (x: Double) in String(format: "$%.2f", x) }
        let formatsSearched = Set(reports.map { "\($0.serving.weightFormat.rawValue)/\($0.serving.kvFormat.rawValue)" }).count > 1
        func describe(_ o: FleetOption) -> String {
            let what = o.policy == "full" ? "the full cache" : "\(o.policy) at budget \(o.budget!) (kv-fraction \(formatPercent((o.kvFraction * 10000).rounded() / 10000)))"
            let replicas = o.sizing.split.map { "\($0.prefill) prefill + \($0.decode) decode replicas of" } ?? "\(o.sizing.replicas) ×"
            let formats = formatsSearched ? " (\(o.weights.rawValue) weights, \(o.kvFormat.rawValue) KV)" : ""
            return "\(what) on \(replicas) \(o.gpu)\(o.tensorParallel > 1 ? " × \(o.tensorParallel) (TP)" : "")\(formats) = \(o.sizing.gpus) GPU\(o.sizing.gpus == 1 ? "" : "s"), \(money(o.sizing.usdPerHour))/h, \(money(o.sizing.usdPerMillionOutputTokens)) per million output tokens"
        }
        var report = FleetReport(targetRate: targetRate, router: router, maxGPUs: maxGPUs,
                                 candidates: reports.map { "\($0.gpu) × \($0.tensorParallel)" + (formatsSearched ? " \($0.serving.weightFormat.rawValue)/\($0.serving.kvFormat.rawValue)" : "") },
                                 skipped: skipped, prices: prices,
                                 options: options, recommendation: "", recommended: nil, serveCommand: nil, implementation: nil)
        guard let pick = eligible.first else {
            report.recommendation = "No option within \(formatPercent(maxLoss)) accuracy loss carries \(rate) req/s."
            return report
        }
        let chosen = options[pick]
        let full = options.first { $0.policy == "full" }
        var text = "For \(rate) req/s: \(describe(chosen))"
        if chosen.policy == "full", options.contains(where: { $0.policy != "full" }) {
            text += "; no compression within \(formatPercent(maxLoss)) accuracy loss carries it for less"
        }
        if chosen.policy != "full" {
            text += ", predicted accuracy loss \(formatPercent(((chosen.accuracyLoss ?? 0) * 1000).rounded() / 1000)) (\(chosen.lossSource))"
            if let full {
                text += "; the cheapest full cache is \(describe(full))"
                text += String(format: " (%.0f %% more per hour)", 100 * (full.sizing.usdPerHour / chosen.sizing.usdPerHour - 1))
            } else {
                text += "; no full-cache fleet carries it within \(maxGPUs) GPUs"
            }
        }
        report.recommendation = text + "."
        report.recommended = pick
        if let r = reports.first(where: { chosen.planned(by: $0) }), let m = models[r.model] {
            report.serveCommand = ServeCommand.line(model: m, serving: r.serving, context: r.context, disaggregated: chosen.sizing.split != nil)
            report.implementation = chosen.policy == "full" ? nil : (try? PolicyKind(parsing: chosen.policy))?.implementations
        }
        return report
    }
}

/// The command line that starts the chosen engine with a plan's settings.
public enum ServeCommand {
    /// The model's Hugging Face id where the catalogue has it (its config's source), else its name.
    static func modelID(_ m: ModelSpec) -> String {
        let first = m.source.split(separator: " ").first.map(String.init) ?? ""
        return first.contains("/") && !first.hasSuffix(".json") && !first.hasSuffix(".gguf") ? first : m.name
    }

    /// `vllm serve …` or `python -m sglang.launch_server …` with every setting the plan assumed.
    /// Disaggregated, both pools run it with vLLM's NIXL connector (the proxy in front of them,
    /// llm-d's or vLLM's example one, routes prefill then decode).
    public static func line(model: ModelSpec, serving s: ServingConfig, context: Int, disaggregated: Bool = false) -> String {
        let id = modelID(model)
        let tokens = s.batchedTokens(for: model)
        switch s.engine {
        case .sglang:
            var parts = ["python -m sglang.launch_server --model-path \(id) --tp \(s.tensorParallel) --context-length \(context)",
                         "--max-running-requests \(s.maxNumSeqs) --chunked-prefill-size \(s.chunkedPrefill ? tokens : -1)"]
            if let f = s.memFractionStatic { parts.append("--mem-fraction-static \(f)") }
            if s.kvFormat == .fp8 { parts.append("--kv-cache-dtype fp8_e5m2") }
            if s.weightFormat == .fp8 { parts.append("--quantization fp8") }
            if !s.cudaGraphs { parts.append("--disable-cuda-graph") }
            return parts.joined(separator: " ")
        case .vllmV0, .vllmV1:
            var parts = ["vllm serve \(id) --tensor-parallel-size \(s.tensorParallel) --max-model-len \(context)",
                         "--max-num-seqs \(s.maxNumSeqs) --gpu-memory-utilization \(s.gpuMemoryUtilization) --max-num-batched-tokens \(tokens)"]
            if s.engine == .vllmV0 {
                parts.append(s.chunkedPrefill ? "--enable-chunked-prefill" : "--no-enable-chunked-prefill")
                if s.numSchedulerSteps > 1 { parts.append("--num-scheduler-steps \(s.numSchedulerSteps)") }
            } else if !s.prefixCaching {
                parts.append("--no-enable-prefix-caching")
            }
            if s.kvFormat == .fp8 { parts.append("--kv-cache-dtype fp8") }
            if s.weightFormat == .fp8 { parts.append("--quantization fp8") }
            if !s.cudaGraphs { parts.append("--enforce-eager") }
            if disaggregated { parts.append(#"--kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'"#) }
            return parts.joined(separator: " ")
        }
    }
}
