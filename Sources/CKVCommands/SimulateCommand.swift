import ArgumentParser
import Foundation
import Hardware
import Simulator

extension PolicyName: ExpressibleByArgument {}

/// `--policy`, `--budget` / `--kv-fraction`, `--window`: one compression setting.
struct CompressionOptions: ParsableArguments {
    @Option(help: "Compression policy: \(PolicyName.allCases.map(\.rawValue).joined(separator: ", ")).")
    var policy: PolicyName = .full

    @Option(help: "Tokens kept per layer per KV head, observation window included.")
    var budget: Int?

    @Option(name: .customLong("kv-fraction"), help: "Fraction of the prompt's KV kept (the other spelling of a budget).")
    var kvFraction: Double?

    @Option(help: "Observation window (default: the policy's reference default).")
    var window: Int?

    @Option(name: .customLong("reuse-group"), help: "ChunkKV layer-wise index reuse: layers sharing one selection.")
    var reuseGroup: Int = 1

    func validate() throws {
        if budget != nil, kvFraction != nil { throw ValidationError("give --budget or --kv-fraction, not both") }
        if policy != .full, budget == nil, kvFraction == nil { throw ValidationError("--policy \(policy.rawValue) needs --budget or --kv-fraction") }
        if policy == .full, budget != nil || kvFraction != nil { throw ValidationError("--budget/--kv-fraction need a compressing --policy") }
        if let f = kvFraction, !(f > 0 && f <= 1) { throw ValidationError("--kv-fraction must be in (0, 1], found \(f)") }
        let w = window ?? policy.defaultWindow
        if let b = budget, b < max(w, 1) {
            throw ValidationError("--budget \(b) is smaller than the observation window \(w): the budget includes the window")
        }
        if let w = window, w < 0 { throw ValidationError("--window must be ≥ 0") }
        guard reuseGroup >= 1 else { throw ValidationError("--reuse-group must be ≥ 1") }
    }

    var spec: CompressionSpec {
        guard policy != .full else { return .none }
        let b: Budget = budget.map { .tokens($0) } ?? .fraction(kvFraction!)
        return CompressionSpec(policy: policy, budget: b, window: window, reuseGroup: reuseGroup)
    }
}

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
    @OptionGroup var compression: CompressionOptions

    @Option(help: "Workload and serving settings (Scenarios/*.yaml).")
    var scenario: String

    @Option(name: .customLong("rate-scale"), help: "Multiply the arrival rate (2 = twice as many requests per second).")
    var rateScale: Double = 1

    @Option(name: .customLong("time-scale"), help: "Stretch the time between arrivals (0.5 = replay twice as fast).")
    var timeScale: Double = 1

    @Option(help: "Number of requests (synthetic) or the most to replay (logs), overriding the scenario.")
    var requests: Int?

    @Option(help: "Output format: table, json, csv.")
    var format: TableFormat = .table

    func validate() throws {
        guard rateScale > 0, rateScale.isFinite else { throw ValidationError("--rate-scale must be positive") }
        guard timeScale > 0, timeScale.isFinite else { throw ValidationError("--time-scale must be positive") }
        if let requests, requests <= 0 { throw ValidationError("--requests must be positive") }
    }

    func run() async throws {
        let gpu = try hardware.resolveGPU(), model = try hardware.resolveModel()
        let scenario = try Scenario.load(path: scenario)
        var serving = scenario.serving
        hardware.apply(to: &serving)
        try scenario.validate(model: model, serving: serving)
        let source = try scenario.source(rateScale: rateScale, timeScale: timeScale, requests: requests)
        let largest = scenario.prompt.map { ($0.maximum, scenario.output!.maximum) }
        let started = ContinuousClock.now
        let result = try Simulation.run(gpu: gpu, model: model, serving: serving, compression: compression.spec,
                                        source: source, largest: largest)
        let wall = (ContinuousClock.now - started).seconds
        let run = SimulateRun(scenario: scenario.name, gpu: gpu.name, model: model.name, serving: serving,
                              policy: compression.policy.rawValue, budget: compression.spec.compresses ? compression.spec.budget.description : "full",
                              result: result)
        switch format {
        case .json: print(try jsonString(run))
        case .csv: print(run.csv)
        case .table:
            print(run.text)
            printError(String(format: "simulated %d requests in %.2f s wall", result.requests, wall))
        }
    }
}

/// A simulation's settings and result, rendered as text, JSON or CSV.
struct SimulateRun: Encodable {
    var scenario, gpu, model: String
    var serving: ServingConfig
    var policy, budget: String
    var result: SimulationResult

    var text: String {
        let r = result
        func p(_ x: Percentiles) -> String { "\(Units.fixed(x.p50, 1)) / \(Units.fixed(x.p90, 1)) / \(Units.fixed(x.p99, 1)) ms" }
        let settings = "max_num_seqs \(serving.maxNumSeqs), chunked prefill \(serving.chunkedPrefill ? "on" : "off"), gpu_memory_utilization \(serving.gpuMemoryUtilization), TP \(serving.tensorParallel), weights \(serving.weightFormat.rawValue), KV \(serving.kvFormat.rawValue)"
        return keyValueLines([
            ("scenario", scenario),
            ("deployment", "\(model) on \(gpu); \(settings)"),
            ("compression", policy == "full" ? "none (full cache)" : "\(policy), \(budget)"),
            ("requests", "\(r.completed) completed, \(r.rejected) rejected, of \(r.requests)"),
            ("duration", "\(Units.fixed(r.durationSeconds, 1)) s simulated, \(r.steps) engine steps"),
            ("throughput", "\(Units.fixed(r.requestsPerSecond, 2)) req/s, \(Units.fixed(r.outputTokensPerSecond, 0)) output tok/s, \(Units.fixed(r.totalTokensPerSecond, 0)) total tok/s"),
            ("TTFT p50/p90/p99", p(r.ttftMs)),
            ("TPOT p50/p90/p99", p(r.tpotMs)),
            ("E2E p50/p90/p99", p(r.e2eMs)),
            ("batch", "mean \(Units.fixed(r.meanBatch, 1)), max \(r.maxBatch) sequences per step"),
            ("KV utilisation", "mean \(Units.fixed(100 * r.meanKVUtilisation, 1)) %, peak \(Units.fixed(100 * r.peakKVUtilisation, 1)) %"),
            ("preemptions", "\(r.preemptions)"),
            ("compressions", "\(r.compressions)"),
        ])
    }

    static let csvHeader = "scenario,gpu,model,policy,budget,requests,completed,rejected,duration_s,requests_per_s,output_tokens_per_s,ttft_p50_ms,ttft_p90_ms,ttft_p99_ms,tpot_p50_ms,tpot_p90_ms,tpot_p99_ms,e2e_p50_ms,e2e_p90_ms,e2e_p99_ms,mean_batch,max_batch,mean_kv_utilisation,peak_kv_utilisation,preemptions,compressions"

    var csvRow: String {
        let r = result
        let fields: [String] = [scenario, gpu, model, policy, budget, "\(r.requests)", "\(r.completed)", "\(r.rejected)",
                                Units.fixed(r.durationSeconds, 3), Units.fixed(r.requestsPerSecond, 4), Units.fixed(r.outputTokensPerSecond, 2),
                                Units.fixed(r.ttftMs.p50, 3), Units.fixed(r.ttftMs.p90, 3), Units.fixed(r.ttftMs.p99, 3),
                                Units.fixed(r.tpotMs.p50, 3), Units.fixed(r.tpotMs.p90, 3), Units.fixed(r.tpotMs.p99, 3),
                                Units.fixed(r.e2eMs.p50, 3), Units.fixed(r.e2eMs.p90, 3), Units.fixed(r.e2eMs.p99, 3),
                                Units.fixed(r.meanBatch, 3), "\(r.maxBatch)", Units.fixed(r.meanKVUtilisation, 4), Units.fixed(r.peakKVUtilisation, 4),
                                "\(r.preemptions)", "\(r.compressions)"]
        return fields.map { $0.contains(",") || $0.contains("\"") ? "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : $0 }.joined(separator: ",")
    }

    var csv: String { Self.csvHeader + "\n" + csvRow }
}
