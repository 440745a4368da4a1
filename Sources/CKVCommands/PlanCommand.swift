import ArgumentParser
import Foundation
import Hardware
import Planner
import Policies
import Replay
import Simulator
import Validation

/// `ckv-sim plan`: the sizing report.
struct PlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Size a deployment: per policy × budget, KV per request, capacity, throughput, the highest rate meeting the SLOs, latencies and accuracy evidence.",
        discussion: """
        Example: ckv-sim plan --gpu A100-80G --context 128k
        Every default is printed in the report. Accuracy figures always carry their source: [paper]
        (published, this model), [ref. runs] (real compressed runs of the reference models on the
        bundled traces), [replay] (attention proxies from those traces).
        """
    )

    @OptionGroup var hardware: HardwareOptions
    @OptionGroup var servingOptions: ServingOptions
    @OptionGroup var calibrationOptions: CalibrationOptions

    @Option(parsing: .unconditional, help: "Longest request in tokens: 131072, 128k, 32K.")
    var context: String

    @Option(name: .customLong("output-tokens"), parsing: .unconditional, help: "Fixed output length (default: the scenario's distribution).")
    var outputTokens: Int?

    @Option(help: "Workload and serving settings (default Scenarios/plan-default.yaml, prompts scaled to the context).")
    var scenario: String?

    @Option(name: .customLong("slo-ttft"), help: "TTFT p90 limit: 2s, 500ms.")
    var sloTTFT = "2s"

    @Option(name: .customLong("slo-tpot"), help: "TPOT p99 limit: 200ms, 0.1s.")
    var sloTPOT = "200ms"

    @Option(help: "Policies, comma-separated (\(PolicyKind.names.joined(separator: ", "))), or 'all'.")
    var policies = "all"

    @Option(help: "Budgets in tokens per layer per KV head, comma-separated.")
    var budgets: String?

    @Option(name: .customLong("kv-fractions"), help: "Budgets as fractions of each request's prompt (e.g. 1%,5%); the table shows the tokens at the longest prompt.")
    var kvFractions: String?

    @Option(name: .customLong("max-accuracy-loss"), help: "Largest relative accuracy loss the recommendation accepts: 3%.")
    var maxAccuracyLoss = "3%"

    @Option(help: "Directory of traces to replay (default: the bundled Traces/).")
    var traces: String?

    @Option(help: "Directory of accuracy-corpus results (*.jsonl from `ckv-sim corpus run`; default: the bundled Accuracy/).")
    var accuracy: String?

    @Option(name: .customLong("target-rate"), help: "Size a fleet for this load: requests per second (20, 20/s, 1200/min), simulated as Poisson arrivals over replicas behind a router; 'log': the --scenario log's own mean rate.")
    var targetRate: String?

    @Option(help: "With --target-rate: how the router spreads requests: \(RouterPolicy.allCases.map(\.rawValue).joined(separator: ", ")).")
    var router: RouterPolicy = .leastOutstanding

    @Option(name: .customLong("gpu-price"), help: "With --target-rate: USD per GPU-hour overrides, GPU=USD comma-separated (H100=3.10,L40S=1.2).")
    var gpuPrice: String?

    @Option(help: "With --target-rate: a price table in the bundled format (default: the bundled list prices, Sources/Planner/Data/gpu-prices.json).")
    var prices: String?

    @Option(name: .customLong("max-gpus"), help: "With --target-rate: the most GPUs a fleet may use.")
    var maxGPUs = 256

    @Flag(help: "With --target-rate: also propose disaggregated prefill and decode pools (xPyD, vLLM V1 with the NIXL connector) for each configuration.")
    var disaggregate = false

    @Option(name: .customLong("kv-link-gbps"), parsing: .unconditional, help: "With --disaggregate: GB/s per GPU between nodes for the KV (default: only splits within one 8-GPU node are tried, over the GPU's interconnect).")
    var kvLinkGBps: Double?

    @Option(help: "Output format: table, md, html, json, csv.")
    var format: PlanFormat = .table

    @Option(help: "Write the report to this file instead of standard output.")
    var out: String?

    enum PlanFormat: String, ExpressibleByArgument, CaseIterable {
        case table, md, html, json, csv
    }

    func validate() throws {
        if let outputTokens { guard outputTokens > 0 else { throw ValidationError("--output-tokens must be positive") } }
        guard maxGPUs > 0 else { throw ValidationError("--max-gpus must be positive") }
        if targetRate == nil, gpuPrice != nil || prices != nil { throw ValidationError("--gpu-price and --prices go with --target-rate") }
        if targetRate == nil, disaggregate { throw ValidationError("--disaggregate goes with --target-rate (it proposes pools for the load)") }
        if kvLinkGBps != nil, !disaggregate { throw ValidationError("--kv-link-gbps goes with --disaggregate") }
        if let g = kvLinkGBps, !(g > 0 && g.isFinite) { throw ValidationError("--kv-link-gbps must be positive, found \(g)") }
    }

    func run() async throws {
        let gpus = try hardware.resolveGPUs(), m = try hardware.resolveModel()
        let degrees = hardware.tensorParallelDegrees(for: m)
        let weightFormats = try hardware.weightFormats(), kvFormats = try hardware.kvFormats()
        let formats = weightFormats.flatMap { w in kvFormats.map { (w, $0) } }
        let scenarioPath = try scenario ?? resource("Scenarios/plan-default.yaml")
        let s = try Scenario.load(path: scenarioPath)
        let target = try targetRate.map { text -> Double in
            guard text.lowercased() == "log" else { return try parseRate(text, "--target-rate") }
            guard case .log = s.arrivals else { throw CLIError("--target-rate log: \(scenarioPath) is a synthetic scenario; give a rate, or a scenario replaying a request log") }
            guard let rate = (try s.source() as? LogSource)?.meanRate else { throw CLIError("--target-rate log: \(scenarioPath)'s log has too few requests to set a rate") }
            return rate
        }
        guard target != nil || (gpus.count == 1 && degrees.count == 1 && hardware.tp != .auto && formats.count == 1) else {
            throw CLIError("--gpu with several GPUs, --tp auto and lists of --weights or --kv-dtype search fleets: give --target-rate (requests per second to carry)")
        }
        guard !degrees.isEmpty else { throw CLIError("--tp auto: none of 1, 2, 4, 8 divides \(m.name)'s \(m.heads) attention and \(m.kvHeads) KV heads") }
        guard let n = parseTokenCount(context), n > 0 else { throw CLIError("--context: '\(context)' is not a token count (131072, 128k, 32K)") }
        guard n <= m.maxContext else { throw CLIError("--context \(n) exceeds \(m.name)'s maximum context of \(m.maxContext) tokens") }
        let profile = try calibrationOptions.profile()
        if profile != nil, gpus.count * degrees.count > 1 {
            throw CLIError("--calibration is one GPU's, model's and TP's: search without it, or plan its own GPU and TP")
        }
        var table: GPUPrices?
        if target != nil {
            var t = try prices.map { try GPUPrices.load(path: $0) } ?? GPUPrices.bundled()
            if let gpuPrice { try t.override(gpuPrice) }
            for g in gpus where t.price(g.name) == nil {
                throw CLIError("no price for \(g.name) in \(t.origin) (it has \(t.priced.joined(separator: ", "))): pass --gpu-price \(g.name)=USD")
            }
            table = t
        }
        let kinds = try parsePolicies(policies, haveProfile: true)
        var specs = try parseBudgets(tokens: budgets, fractions: kvFractions)
        if specs.isEmpty { specs = [256, 1024, 4096].map { .tokens($0) } }
        let library = try TraceLibrary(directory: try traces ?? resource("Traces"), profiles: try? resource("Profiles"))
        guard !library.replayers.isEmpty else { throw CLIError("no traces (.ckvt) in \(traces ?? "Traces/"): the accuracy and memory evidence needs them") }
        let corpus = try (accuracy ?? (try? resource("Accuracy"))).flatMap { try AccuracyCorpus.load(directory: $0) }
        if let accuracy, corpus == nil { throw CLIError("--accuracy \(accuracy): no corpus results (*.jsonl) there") }
        let sloT = try parseDuration(sloTTFT, "--slo-ttft"), sloP = try parseDuration(sloTPOT, "--slo-tpot")
        let maxLoss = try parseFraction(maxAccuracyLoss, "--max-accuracy-loss")
        let clock = ContinuousClock(), start = clock.now
        let terminal = isatty(2) != 0
        let searching = gpus.count * degrees.count * formats.count > 1
        /// A candidate's name: the GPU and TP, and its formats when several are searched.
        func label(_ g: String, _ tp: Int, _ w: WeightFormat, _ kv: KVFormat) -> String {
            "\(g) × \(tp)" + (formats.count > 1 ? " \(w.rawValue)/\(kv.rawValue)" : "")
        }
        var reports: [PlanReport] = [], skipped: [String] = []
        /// A candidate's inputs, or why it cannot be planned (only a search goes on without it).
        func candidate(_ g: GPU, _ tp: Int, _ w: WeightFormat, _ kv: KVFormat) throws -> PlanInputs {
            var overrides = calibrationOptions.settings(servingOptions.settings(over: hardware.settings), profile: profile)
            overrides.maxModelLen = n
            overrides.tensorParallel = tp
            overrides.weightFormat = w
            overrides.kvFormat = kv
            let serving = try s.serving(gpu: g, model: m, overrides: overrides)
            let (coefficients, calibration) = try calibrationOptions.coefficients(profile, gpu: g, model: m, serving: serving)
            var inputs = PlanInputs(gpu: g, model: m, serving: serving, scenario: s, context: n, outputTokens: outputTokens,
                                    sloTTFT: sloT, sloTPOT: sloP, policies: kinds, budgets: specs, maxAccuracyLoss: maxLoss)
            inputs.coefficients = coefficients
            inputs.calibration = calibration
            inputs.accuracyCorpus = corpus
            if let target, let table, let price = table.price(g.name) {
                inputs.fleet = FleetSettings(targetRate: target, router: router, usdPerGPUHour: price.usd, priceSource: price.source, maxGPUs: maxGPUs,
                                             disaggregate: disaggregate, kvLinkGBps: kvLinkGBps)
            }
            return inputs
        }
        func skip(_ label: String, _ body: () async throws -> Void) async throws {
            do { try await body() } catch where searching && (error is PlanError || error is CapacityError || error is ServingError) {
                skipped.append("\(label): \(error)")
            }
        }
        // A search plans the candidates in the order of the least a fleet of them can cost (no
        // N replicas carry more than N × 1.5 × one replica's best saturated rate), and skips those
        // whose least cost is above the cheapest fleet within the accuracy loss found so far.
        var order: [(inputs: PlanInputs, bound: Double, gpus: Int)] = []
        for g in gpus {
            for tp in degrees {
                for (w, kv) in formats {
                    try await skip(label(g.name, tp, w, kv)) {
                    let inputs = try candidate(g, tp, w, kv)
                    guard searching, let f = inputs.fleet else { order.append((inputs, 0, 0)); return }
                    if terminal { FileHandle.standardError.write(Data("\rbounding \(label(g.name, tp, w, kv))\u{1B}[K".utf8)) }
                    let top = try await Planner.bestSaturatedRate(inputs, library: library)
                    let replicas = Fleet.leastReplicas(targetRate: f.targetRate, saturatedRate: top)
                    let least = replicas * tp
                    order.append((inputs, Double(least) * f.usdPerGPUHour, least))
                    }
                }
            }
        }
        func key(_ i: PlanInputs) -> (String, Int, String, String) { (i.gpu.name, i.serving.tensorParallel, i.serving.weightFormat.rawValue, i.serving.kvFormat.rawValue) }
        order.sort { $0.bound != $1.bound ? $0.bound < $1.bound : key($0.inputs) < key($1.inputs) }
        var cheapest = Double.infinity
        for c in order {
            let label = label(c.inputs.gpu.name, c.inputs.serving.tensorParallel, c.inputs.serving.weightFormat, c.inputs.serving.kvFormat)
            if c.bound > cheapest {
                skipped.append(String(format: "%@: pruned: a fleet of it needs at least %d GPUs ($%.2f/h) by its best saturated rate, more than the cheapest one found ($%.2f/h)",
                                      label, c.gpus, c.bound, cheapest))
                continue
            }
            try await skip(label) {
                let r = try await Planner.plan(c.inputs, library: library) { done, total in
                    guard terminal, clock.now - start > .seconds(1) else { return }
                    FileHandle.standardError.write(Data("\rplanning\(searching ? " \(label)" : ""): \(done)/\(total) configurations\u{1B}[K".utf8))
                }
                reports.append(r)
                for row in r.rows where (row.accuracy.loss ?? .infinity) <= maxLoss {
                    if let f = row.fleet { cheapest = min(cheapest, f.usdPerHour) }
                }
            }
        }
        if terminal, clock.now - start > .seconds(1) { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        guard !reports.isEmpty else { throw CLIError("no GPU × TP candidate could be planned: \(skipped.joined(separator: "; "))") }
        var report = reports[0]
        if let target, let table {
            let fleet = try FleetReport.rank(reports, skipped: skipped, targetRate: target, router: router, maxGPUs: maxGPUs,
                                             prices: table.origin + (gpuPrice.map { ", overridden by --gpu-price \($0)" } ?? ""),
                                             maxLoss: maxLoss, models: [m.name: m])
            if let pick = fleet.recommended, let best = reports.first(where: { fleet.options[pick].planned(by: $0) }) {
                report = best
            }
            report.fleet = fleet
        }
        let text: String
        switch format {
        case .table: text = report.text
        case .md: text = report.markdown
        case .html: text = report.html
        case .json: text = try report.json() + "\n"
        case .csv: text = report.csv
        }
        if let out {
            guard FileManager.default.createFile(atPath: out, contents: Data(text.utf8)) else { throw CLIError("\(out): cannot write the report") }
        } else {
            print(text, terminator: "")
        }
    }
}

/// A file or directory shipped with ckv-sim: looked up from the working directory, then beside
/// the executable's build directory (`.build/release/ckv-sim` → the checkout).
func resource(_ relative: String) throws -> String {
    if FileManager.default.fileExists(atPath: relative) { return relative }
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent(relative).path
        if FileManager.default.fileExists(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    throw CLIError("cannot find \(relative) (run from the ckv-sim checkout, or pass its path)")
}

/// "2s", "200ms", "1.5" (seconds) → seconds.
func parseDuration(_ text: String, _ flag: String) throws -> Double {
    let t = text.trimmingCharacters(in: .whitespaces).lowercased()
    let value: Double?
    if t.hasSuffix("ms") { value = Double(t.dropLast(2)).map { $0 / 1000 } }
    else if t.hasSuffix("s") { value = Double(t.dropLast()) }
    else { value = Double(t) }
    guard let value, value > 0, value.isFinite else { throw CLIError("\(flag): '\(text)' is not a duration (2s, 200ms)") }
    return value
}

/// "20", "20/s", "1200/min", "72000/h" → requests per second.
func parseRate(_ text: String, _ flag: String) throws -> Double {
    let t = text.trimmingCharacters(in: .whitespaces).lowercased()
    let parts = t.split(separator: "/", maxSplits: 1).map(String.init)
    let per: Double? = parts.count == 1 ? 1 : ["s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hour": 3600][parts[1]]
    guard let per, let value = Double(parts[0]), value > 0, value.isFinite else {
        throw CLIError("\(flag): '\(text)' is not a rate (20, 20/s, 1200/min)")
    }
    return value / per
}

/// "3%" or "0.03" → 0.03.
func parseFraction(_ text: String, _ flag: String) throws -> Double {
    let t = text.trimmingCharacters(in: .whitespaces)
    let value = t.hasSuffix("%") ? Double(t.dropLast()).map { $0 / 100 } : Double(t)
    guard let value, (0...1).contains(value) else { throw CLIError("\(flag): '\(text)' is not a fraction (3% or 0.03)") }
    return value
}
