import ArgumentParser
import Foundation
import Hardware
import Planner
import Policies
import Replay
import Simulator

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

    @Option(help: "Output format: table, md, html, json, csv.")
    var format: PlanFormat = .table

    @Option(help: "Write the report to this file instead of standard output.")
    var out: String?

    enum PlanFormat: String, ExpressibleByArgument, CaseIterable {
        case table, md, html, json, csv
    }

    func validate() throws {
        if let outputTokens { guard outputTokens > 0 else { throw ValidationError("--output-tokens must be positive") } }
    }

    func run() async throws {
        let g = try hardware.resolveGPU(), m = try hardware.resolveModel()
        guard let n = parseTokenCount(context), n > 0 else { throw CLIError("--context: '\(context)' is not a token count (131072, 128k, 32K)") }
        guard n <= m.maxContext else { throw CLIError("--context \(n) exceeds \(m.name)'s maximum context of \(m.maxContext) tokens") }
        let scenarioPath = try scenario ?? resource("Scenarios/plan-default.yaml")
        let s = try Scenario.load(path: scenarioPath)
        let profile = try calibrationOptions.profile()
        var overrides = calibrationOptions.settings(servingOptions.settings(over: hardware.settings), profile: profile)
        overrides.maxModelLen = n
        let serving = try s.serving(gpu: g, model: m, overrides: overrides)
        let (coefficients, calibration) = try calibrationOptions.coefficients(profile, gpu: g, model: m, serving: serving)
        let kinds = try parsePolicies(policies, haveProfile: true)
        var specs = try parseBudgets(tokens: budgets, fractions: kvFractions)
        if specs.isEmpty { specs = [256, 1024, 4096].map { .tokens($0) } }
        let library = try TraceLibrary(directory: try traces ?? resource("Traces"), profiles: try? resource("Profiles"))
        guard !library.replayers.isEmpty else { throw CLIError("no traces (.ckvt) in \(traces ?? "Traces/"): the accuracy and memory evidence needs them") }
        var inputs = PlanInputs(gpu: g, model: m, serving: serving, scenario: s, context: n, outputTokens: outputTokens,
                                sloTTFT: try parseDuration(sloTTFT, "--slo-ttft"), sloTPOT: try parseDuration(sloTPOT, "--slo-tpot"),
                                policies: kinds, budgets: specs, maxAccuracyLoss: try parseFraction(maxAccuracyLoss, "--max-accuracy-loss"))
        inputs.coefficients = coefficients
        inputs.calibration = calibration
        let clock = ContinuousClock(), start = clock.now
        let terminal = isatty(2) != 0
        let report = try await Planner.plan(inputs, library: library) { done, total in
            guard terminal, clock.now - start > .seconds(1) else { return }
            FileHandle.standardError.write(Data("\rplanning: \(done)/\(total) configurations\u{1B}[K".utf8))
        }
        if terminal, clock.now - start > .seconds(1) { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
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

/// "3%" or "0.03" → 0.03.
func parseFraction(_ text: String, _ flag: String) throws -> Double {
    let t = text.trimmingCharacters(in: .whitespaces)
    let value = t.hasSuffix("%") ? Double(t.dropLast()).map { $0 / 100 } : Double(t)
    guard let value, (0...1).contains(value) else { throw CLIError("\(flag): '\(text)' is not a fraction (3% or 0.03)") }
    return value
}
