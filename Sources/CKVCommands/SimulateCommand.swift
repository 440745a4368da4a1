import ArgumentParser
import Foundation
import Reporting
import Hardware
import Policies
import Simulator
import Validation

/// `--policy`, `--budget` / `--kv-fraction`, `--window`: one compression setting.
struct CompressionOptions: ParsableArguments {
    @Option(help: "Compression policy: full (none), \(PolicyKind.names.joined(separator: ", ")).")
    var policy = "full"

    @Option(parsing: .unconditional, help: "Tokens kept per layer per KV head, observation window included.")
    var budget: Int?

    @Option(name: .customLong("kv-fraction"), parsing: .unconditional, help: "Fraction of each prompt's KV kept (the other spelling of a budget).")
    var kvFraction: Double?

    @Option(help: "Observation window (default: the policy's own, as the engine and replay use it).")
    var window: Int?

    @Option(name: .customLong("reuse-group"), help: "ChunkKV layer-wise index reuse: layers sharing one selection.")
    var reuseGroup: Int?

    @Option(name: .customLong("decode-trigger"), help: "When a continual policy evicts during decode: every-step (the engine's and replay's) or on-pressure (KV-Compress's benchmark configuration).")
    var decodeTrigger: DecodeTrigger = .everyStep

    /// The policy, nil for the full cache.
    var kind: PolicyKind? {
        get throws { policy.lowercased() == "full" ? nil : try PolicyKind(parsing: policy) }
    }

    func validate() throws {
        let kind = try self.kind
        if budget != nil, kvFraction != nil { throw ValidationError("give --budget or --kv-fraction, not both") }
        if let kind, budget == nil, kvFraction == nil { throw ValidationError("--policy \(kind.rawValue) needs --budget or --kv-fraction") }
        if kind == nil, budget != nil || kvFraction != nil { throw ValidationError("--budget/--kv-fraction need a compressing --policy") }
        if let f = kvFraction, !(f > 0 && f <= 1) { throw ValidationError("--kv-fraction must be in (0, 1], found \(f)") }
        if let w = window, w < 0 { throw ValidationError("--window must be ≥ 0") }
        let w = window ?? kind?.window ?? 0
        if let b = budget, b < max(w, 1) {
            throw ValidationError("--budget \(b) is smaller than the observation window \(w): the budget includes the window")
        }
        if let reuseGroup, reuseGroup < 1 { throw ValidationError("--reuse-group must be ≥ 1") }
    }

    /// The compression setting, nil for the full cache.
    var spec: CompressionSpec? {
        get throws {
            guard let kind = try self.kind else { return nil }
            let b: Budget = budget.map { .tokens($0) } ?? .fraction(kvFraction!)
            return CompressionSpec(policy: kind, budget: b, window: window, reuseGroup: reuseGroup, decodeTrigger: decodeTrigger)
        }
    }
}

extension DecodeTrigger: ExpressibleByArgument {}

/// Output formats of `simulate`.
enum TableFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, csv
}

/// `ckv-sim simulate`: one discrete-event run.
struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Simulate serving a scenario on a GPU: throughput, TTFT/TPOT/E2E percentiles, batch, KV use, preemptions."
    )

    @OptionGroup var hardware: HardwareOptions
    @OptionGroup var servingOptions: ServingOptions
    @OptionGroup var calibrationOptions: CalibrationOptions
    @OptionGroup var compression: CompressionOptions

    @Option(help: "Workload and serving settings (Scenarios/*.yaml).")
    var scenario: String

    @Option(name: .customLong("rate-scale"), parsing: .unconditional, help: "Multiply the arrival rate (2 = twice as many requests per second).")
    var rateScale: Double = 1

    @Option(name: .customLong("time-scale"), parsing: .unconditional, help: "Stretch the time between arrivals (0.5 = replay twice as fast).")
    var timeScale: Double = 1

    @Option(parsing: .unconditional, help: "Number of requests (synthetic) or the most to replay (logs), overriding the scenario (at most \(Scenario.maxRequests)).")
    var requests: Int?

    @Option(help: "Output format: table, json, csv.")
    var format: TableFormat = .table

    @Option(name: .customLong("slo-ttft"), help: "Goodput: a request counts only with TTFT at most this (2s, 500ms).")
    var sloTTFT: String?

    @Option(name: .customLong("slo-tpot"), help: "Goodput: … and TPOT at most this (200ms).")
    var sloTPOT: String?

    @Option(name: .customLong("slo-e2e"), help: "Goodput: … and end-to-end latency at most this (30s).")
    var sloE2E: String?

    @Option(help: "Replicas of the deployment behind a router (1: one replica, no router).")
    var replicas: Int = 1

    @Option(help: "With --replicas or --disaggregate: how the router spreads requests: \(RouterPolicy.allCases.map(\.rawValue).joined(separator: ", ")).")
    var router: RouterPolicy = .leastOutstanding

    @Option(help: "Disaggregated prefill and decode pools, xPyD (1P3D: one prefill and three decode replicas; vLLM V1).")
    var disaggregate: String?

    @Option(name: .customLong("kv-link-gbps"), parsing: .unconditional, help: "With --disaggregate: GB/s per GPU the KV crosses between the pools (default: the GPU's interconnect, when both pools fit one 8-GPU node).")
    var kvLinkGBps: Double?

    func validate() throws {
        guard rateScale > 0, rateScale.isFinite else { throw ValidationError("--rate-scale must be positive") }
        guard timeScale > 0, timeScale.isFinite else { throw ValidationError("--time-scale must be positive") }
        if let requests, requests <= 0 || requests > Scenario.maxRequests {
            throw ValidationError("--requests must be between 1 and \(Scenario.maxRequests) (about a minute of simulation), found \(requests)")
        }
        guard (1...4096).contains(replicas) else { throw ValidationError("--replicas must be between 1 and 4096, found \(replicas)") }
        if disaggregate != nil, replicas != 1 { throw ValidationError("give --replicas or --disaggregate (whose pools are its replicas), not both") }
        if let g = kvLinkGBps, !(g > 0 && g.isFinite) { throw ValidationError("--kv-link-gbps must be positive, found \(g)") }
        if kvLinkGBps != nil, disaggregate == nil { throw ValidationError("--kv-link-gbps applies to --disaggregate") }
    }

    func run() async throws {
        let gpu = try hardware.resolveGPU(), model = try hardware.resolveModel()
        let scenario = try Scenario.load(path: scenario)
        let profile = try calibrationOptions.profile()
        let serving = try scenario.serving(gpu: gpu, model: model,
                                           overrides: calibrationOptions.settings(servingOptions.settings(over: hardware.settings), profile: profile))
        try scenario.validate(model: model, serving: serving)
        let (coefficients, calibration) = try calibrationOptions.coefficients(profile, gpu: gpu, model: model, serving: serving)
        let source = try scenario.source(rateScale: rateScale, timeScale: timeScale, requests: requests)
        let largest = scenario.longestSynthetic
        let started = ContinuousClock.now
        let spec = try compression.spec
        let slo = try goodputSLO
        var result: SimulationResult
        var fleet: SimulateRun.Fleet?
        if replicas == 1, disaggregate == nil {
            result = try Simulation.run(gpu: gpu, model: model, serving: serving, compression: spec, coefficients: coefficients,
                                        source: source, largest: largest, goodput: slo)
        } else {
            let split = try disaggregate.map { try DisaggregationSplit(parsing: $0) }
            if let split, serving.engine != .vllmV1 {
                throw ValidationError("--disaggregate \(split) is modelled for vLLM V1 only (--engine vllm-v1), not \(serving.engine.displayName)")
            }
            let (plan, cost) = try Simulation.replica(gpu: gpu, model: model, serving: serving, compression: spec, coefficients: coefficients, largest: largest)
            var cluster: ClusterSimulation
            var link: KVLink?
            if let split {
                link = try split.link(gpu: gpu, tensorParallel: serving.tensorParallel, networkGBps: kvLinkGBps)
                cluster = ClusterSimulation(prefill: split.prefill, decode: split.decode, plan: plan, cost: cost, compression: spec, router: router,
                                            link: link!, source: source, goodput: slo)
            } else {
                cluster = ClusterSimulation(replicas: replicas, plan: plan, cost: cost, compression: spec, router: router, source: source, goodput: slo)
            }
            let r = cluster.run()
            result = r.fleet
            fleet = SimulateRun.Fleet(router: router, disaggregation: split, link: link, replicas: r.replicas)
        }
        let wall = (ContinuousClock.now - started).seconds
        let described = spec.map { SimulateRun.Compression($0, longestPrompt: largest?.0, blockSize: serving.blockSize) }
        let run = SimulateRun(scenario: scenario.name, gpu: gpu.name, model: model.name, serving: serving, compression: described,
                              policy: spec?.policy.rawValue ?? "full", budget: spec.map { Self.describe($0.budget) } ?? "full",
                              costModel: CostModel(gpu: gpu, model: model, serving: serving).source, calibration: calibration,
                              servingBands: try ErrorBand.servingBands(), result: result, fleet: fleet)
        switch format {
        case .json: print(try JSONOutput.string(run))
        case .csv: print(run.csv, terminator: "")
        case .table:
            print(run.text)
            printError(String(format: "simulated %d requests in %.2f s wall", result.requests, wall))
        }
    }
}

extension SimulateCommand {
    /// The goodput objectives given (nil: none).
    var goodputSLO: GoodputSLO? {
        get throws {
            func ms(_ text: String?, _ flag: String) throws -> Double? { try text.map { try parseDuration($0, flag) * 1000 } }
            let slo = GoodputSLO(ttftMs: try ms(sloTTFT, "--slo-ttft"), tpotMs: try ms(sloTPOT, "--slo-tpot"), e2eMs: try ms(sloE2E, "--slo-e2e"))
            return slo == GoodputSLO() ? nil : slo
        }
    }

    /// How `simulate` names a budget in its output.
    static func describe(_ budget: Budget) -> String {
        switch budget {
        case let .tokens(b): "\(b) tokens"
        case let .fraction(f): "kv-fraction \(f)"
        }
    }
}

/// A simulation's settings and result, rendered as text, JSON or CSV.
struct SimulateRun: Encodable {
    var scenario, gpu, model: String
    var serving: ServingConfig
    /// The policy as the simulator applied it (nil: the full cache).
    var compression: Compression?
    var policy, budget: String
    /// Where the step times come from.
    var costModel: CostSource
    /// The calibration profile whose coefficients applied (nil: the defaults).
    var calibration: String?
    /// The validated errors of throughput, TTFT, TPOT and ITL (`ErrorBand.servingBands`).
    var servingBands: [ErrorBand]
    /// The fleet's result with several replicas (`fleet` has each replica's).
    var result: SimulationResult
    var fleet: Fleet?

    /// Several replicas: the router, the pools of a disaggregated deployment and each replica's result.
    struct Fleet: Encodable {
        var router: RouterPolicy
        var disaggregation: DisaggregationSplit?
        var link: KVLink?
        var replicas: [SimulationResult]

        enum CodingKeys: String, CodingKey {
            case router, disaggregation, replicas
            case link = "kv_link"
        }
    }

    /// " ±x %" for serving class `metric`, empty when it has no band.
    func band(_ metric: ServingMetric) -> String {
        servingBands.band(metric).map { " \($0.label)" } ?? ""
    }

    enum CodingKeys: String, CodingKey {
        case scenario, gpu, model, serving, compression, policy, budget, result, calibration, fleet
        case servingBands = "serving_error_bands"
        case costModel = "cost_model"
    }

    /// The policy's traits as the simulator used them.
    struct Compression: Encodable {
        var policy: String
        var budget: String
        var window: Int
        var layout: BlockLayout
        var timing: Timing
        var decodeTrigger: DecodeTrigger
        /// Tokens kept per global layer and KV head of the longest prompt (synthetic scenarios).
        var keptAtLongestPrompt: Int?

        init(_ spec: CompressionSpec, longestPrompt: Int?, blockSize: Int) {
            policy = spec.policy.rawValue
            budget = spec.budget.description
            window = spec.window
            layout = spec.policy.layout
            timing = spec.policy.timing
            decodeTrigger = spec.decodeTrigger
            keptAtLongestPrompt = longestPrompt.map { spec.kept(prompt: $0, blockSize: blockSize) }
        }

        enum CodingKeys: String, CodingKey {
            case policy, budget, window, layout, timing
            case decodeTrigger = "decode_trigger"
            case keptAtLongestPrompt = "kept_at_longest_prompt"
        }
    }

    var text: String {
        let r = result
        func p(_ x: Percentiles) -> String { "\(Format.fixed(x.p50, 1)) / \(Format.fixed(x.p90, 1)) / \(Format.fixed(x.p99, 1)) ms" }
        let settings = serving.summary
        return Table(pairs: [
            ("scenario", scenario),
            ("deployment", "\(model) on \(gpu); \(settings)"),
            ("cost model", costModel.description + (calibration.map { "; calibrated by \($0)" } ?? "")),
            ("compression", policy == "full" ? "none (full cache)" : "\(policy), \(budget)"),
        ] + fleetRows + [
            ("requests", "\(r.completed) completed, \(r.rejected) rejected, of \(r.requests)"),
            ("duration", "\(Format.fixed(r.durationSeconds, 1)) s simulated, \(r.steps) engine steps"),
            ("throughput", "\(Format.fixed(r.requestsPerSecond, 2)) req/s, \(Format.fixed(r.outputTokensPerSecond, 0)) output tok/s, \(Format.fixed(r.totalTokensPerSecond, 0)) total tok/s\(band(.throughput))"),
        ] + goodputRow + [
            ("TTFT p50/p90/p99", p(r.ttftMs) + band(.ttft)),
            ("TPOT p50/p90/p99", p(r.tpotMs) + band(.tpot)),
            ("E2E p50/p90/p99", p(r.e2eMs)),
            ("ITL p50/p90/p99", p(r.itlMs) + band(.itl)),
            ("batch", "p50/p90/p99 \(Format.fixed(r.batchPercentiles.p50, 0)) / \(Format.fixed(r.batchPercentiles.p90, 0)) / \(Format.fixed(r.batchPercentiles.p99, 0)), time-weighted mean \(Format.fixed(r.meanBatch, 1)), max \(r.maxBatch) sequences per step"),
            ("KV utilisation", "mean \(Format.fixed(100 * r.meanKVUtilisation, 1)) %, peak \(Format.fixed(100 * r.peakKVUtilisation, 1)) %"),
            ("preemptions", "\(r.preemptions)"),
            ("compressions", "\(r.compressions)"),
        ] + cacheRows + [
            ("error bands", servingBands.servingSummary(citing: "Docs/validation.md")),
        ]).text
    }

    /// The replicas and router, with several.
    var fleetRows: [(String, String)] {
        guard let f = fleet else { return [] }
        if let split = f.disaggregation {
            let p = f.replicas[..<split.prefill], d = f.replicas[split.prefill...]
            return [("replicas", "\(split): \(split.prefill) prefill and \(split.decode) decode replicas, arrivals by the \(f.router.rawValue) router to the prefill pool, each prefilled request to the least loaded decode replica"),
                    ("KV link", f.link.map { "\($0.kind): \(Format.figure($0.gbPerSecond)) GB/s per replica" } ?? "—"),
                    ("requests per replica", "prefill \(p.map { String($0.requests) }.joined(separator: ", ")); decode \(d.map { String($0.completed) }.joined(separator: ", ")) completed")]
        }
        return [("replicas", "\(f.replicas.count) behind the \(f.router.rawValue) router"),
                ("requests per replica", f.replicas.map { String($0.requests) }.joined(separator: ", "))]
    }

    /// The prefix cache's hits and the KV sent between pools, when there are any.
    var cacheRows: [(String, String)] {
        var rows: [(String, String)] = []
        if let c = result.prefixCache {
            rows.append(("prefix cache", "\(Format.percent(c.hitRate)) of prompt tokens found cached (\(c.hitTokens) of \(c.promptTokens), first admissions)"))
        }
        if let t = result.kvTransfer {
            rows.append(("KV transfer", "\(t.requests) requests, \(Format.gib(t.bytes)) in all, \(Format.gib(t.meanBytes)) per request"))
        }
        return rows
    }

    /// The goodput line, when objectives were given.
    var goodputRow: [(String, String)] {
        guard let g = result.goodput else { return [] }
        var objectives: [String] = []
        if let t = g.slo.ttftMs { objectives.append("TTFT ≤ \(Format.figure(t)) ms") }
        if let t = g.slo.tpotMs { objectives.append("TPOT ≤ \(Format.figure(t)) ms") }
        if let t = g.slo.e2eMs { objectives.append("E2E ≤ \(Format.figure(t)) ms") }
        return [("goodput", "\(Format.fixed(g.requestsPerSecond, 2)) req/s: \(g.requests) of \(result.completed) completed requests meet \(objectives.joined(separator: " and "))")]
    }

    static let csvColumns = ["scenario", "gpu", "model", "policy", "budget", "requests", "completed", "rejected", "duration_s", "requests_per_s",
                             "output_tokens_per_s", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p90_ms", "tpot_p99_ms",
                             "e2e_p50_ms", "e2e_p90_ms", "e2e_p99_ms", "itl_p50_ms", "itl_p90_ms", "itl_p99_ms",
                             "batch_p50", "batch_p90", "batch_p99", "mean_batch", "max_batch", "mean_kv_utilisation", "peak_kv_utilisation",
                             "preemptions", "compressions", "goodput_requests", "goodput_requests_per_s",
                             "throughput_error_p90_percent", "ttft_error_p90_percent", "tpot_error_p90_percent", "itl_error_p90_percent"]

    var csvRow: [String] {
        let r = result
        return [scenario, gpu, model, policy, budget, "\(r.requests)", "\(r.completed)", "\(r.rejected)",
                Format.fixed(r.durationSeconds, 3), Format.fixed(r.requestsPerSecond, 4), Format.fixed(r.outputTokensPerSecond, 2),
                Format.fixed(r.ttftMs.p50, 3), Format.fixed(r.ttftMs.p90, 3), Format.fixed(r.ttftMs.p99, 3),
                Format.fixed(r.tpotMs.p50, 3), Format.fixed(r.tpotMs.p90, 3), Format.fixed(r.tpotMs.p99, 3),
                Format.fixed(r.e2eMs.p50, 3), Format.fixed(r.e2eMs.p90, 3), Format.fixed(r.e2eMs.p99, 3),
                Format.fixed(r.itlMs.p50, 3), Format.fixed(r.itlMs.p90, 3), Format.fixed(r.itlMs.p99, 3),
                Format.fixed(r.batchPercentiles.p50, 0), Format.fixed(r.batchPercentiles.p90, 0), Format.fixed(r.batchPercentiles.p99, 0),
                Format.fixed(r.meanBatch, 3), "\(r.maxBatch)", Format.fixed(r.meanKVUtilisation, 4), Format.fixed(r.peakKVUtilisation, 4),
                "\(r.preemptions)", "\(r.compressions)", r.goodput.map { "\($0.requests)" } ?? "", r.goodput.map { Format.fixed($0.requestsPerSecond, 4) } ?? ""]
            + ServingMetric.allCases.map { m in servingBands.band(m).map { Format.fixed($0.p90Percent, 1) } ?? "" }
    }

    var csv: String { Table(columns: Self.csvColumns, rows: [csvRow]).csv }
}
