import Foundation
import Hardware
import Reporting
import Yams

/// A workload and serving settings, read from `Scenarios/*.yaml` (schema in `Docs/simulator.md`).
public struct Scenario: Sendable {
    public var path: String
    public var name: String
    public var description: String
    public var seed: UInt64
    public var arrivals: Arrivals
    /// The most requests one run simulates (a scenario's `requests`, `--requests`): about a minute
    /// at the simulator's speed.
    public static let maxRequests = 10_000_000
    /// The longest prompt or output a length distribution may ask for (16 M tokens, beyond every
    /// model's context).
    public static let maxTokens = 1 << 24

    /// Synthetic: number of requests. Log: at most this many (nil: the whole log).
    public var requests: Int?
    public var prompt: LengthDistribution?
    public var output: LengthDistribution?
    /// Synthetic: a system prompt shared by groups of requests before each one's own `prompt`.
    public var sharedPrefix: SharedPrefix?
    /// Synthetic: multi-turn sessions, each turn's prompt its session's history and its own `prompt`.
    public var sessions: Sessions?
    /// The serving settings the scenario gives; the rest are the engine's defaults (`ServingSettings.resolve`).
    public var serving: ServingSettings

    /// Where requests come from.
    public enum Arrivals: Sendable, Equatable {
        case synthetic(ArrivalProcess)
        case log(path: String, format: LogFormat, timeScale: Double, offset: Int)
    }

    /// Reads and checks a scenario file.
    /// - Throws: `WorkloadError` naming the file, the line or key, and what was expected.
    public static func load(path: String) throws -> Scenario {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw WorkloadError("\(path): cannot read the scenario file")
        }
        let file: ScenarioFile
        do {
            file = try YAMLDecoder().decode(ScenarioFile.self, from: data)
        } catch let error as DecodingError {
            throw WorkloadError("\(path): \(describe(error))")
        } catch let error as YamlError {
            throw WorkloadError("\(path): \(describe(error))")
        } catch {
            throw WorkloadError("\(path): \(error)")
        }
        return try file.scenario(path: path)
    }

    /// The request stream, with arrivals sped up by `rateScale` (2 = twice the rate) or slowed by
    /// `timeScale` (2 = gaps twice as long) and the request count overridden by `requests`.
    public func source(rateScale: Double = 1, timeScale: Double = 1, requests override: Int? = nil) throws -> any RequestSource {
        let scale = timeScale / rateScale
        switch arrivals {
        case let .synthetic(process):
            let scaled: ArrivalProcess
            switch process {
            case .batch: scaled = .batch
            case let .poisson(rate): scaled = .poisson(rate: rate / scale)
            case let .gamma(rate, cv): scaled = .gamma(rate: rate / scale, cv: cv)
            case let .constant(rate): scaled = .constant(rate: rate / scale)
            }
            return SyntheticSource(arrivals: scaled, prompt: prompt!, output: output!, count: override ?? requests ?? 1000, seed: seed,
                                   sharedPrefix: sharedPrefix, sessions: sessions)
        case let .log(logPath, format, logScale, offset):
            return try LogSource(path: logPath, format: format, timeScale: logScale * scale, offset: offset, limit: override ?? requests)
        }
    }

    /// The scenario's serving settings, overridden by `overrides` (the command line's), resolved
    /// for `model` on `gpu`.
    /// - Throws: `WorkloadError` naming the file and the setting.
    public func serving(gpu: GPU, model: ModelSpec, overrides: ServingSettings = ServingSettings()) throws -> ServingConfig {
        do { return try serving.overridden(by: overrides).resolve(gpu: gpu, model: model) } catch let error as ServingError {
            throw WorkloadError(overrides == ServingSettings() ? "\(path): serving: \(error.description)"
                                : "serving settings (\((path as NSString).lastPathComponent)'s, with the command line's over them): \(error.description)")
        }
    }

    /// The longest synthetic prompt and output (nil for a log): a last turn's history and its own
    /// prompt after the shared prefix.
    public var longestSynthetic: (prompt: Int, output: Int)? {
        guard let prompt, let output else { return nil }
        return (longestPrompt(ownPrompt: prompt.maximum, output: output.maximum), output.maximum)
    }

    /// The longest prompt a request of this scenario sends when its own prompt is at most
    /// `ownPrompt` tokens and each answer at most `output`: the shared prefix, then a last turn's
    /// history (the earlier turns' prompts and answers) and its own prompt.
    public func longestPrompt(ownPrompt: Int, output: Int) -> Int {
        let turns = sessions?.turns ?? 1
        return (sharedPrefix?.tokens ?? 0) + turns * ownPrompt + (turns - 1) * output
    }

    /// Checks the synthetic lengths against the model's maximum (a log's overlong requests are
    /// rejected one by one at run time, as vLLM does).
    public func validate(model: ModelSpec, serving: ServingConfig) throws {
        let maxLen = serving.modelLen(for: model)
        let shared = sharedPrefix?.tokens ?? 0, turns = sessions?.turns ?? 1
        if let prompt, let output, let longest = longestSynthetic, longest.prompt + longest.output > maxLen {
            var what = shared > 0 ? "shared prefix \(shared) + prompt up to \(prompt.maximum)" : "prompt up to \(prompt.maximum)"
            what += " + output up to \(output.maximum) tokens"
            if turns > 1 { what += ", \(turns) turns of them," }
            throw WorkloadError("\(path): \(what) exceeds max_model_len \(maxLen) of \(model.name)")
        }
    }
}

// MARK: - File schema

private struct ScenarioFile: Decodable {
    var name: String
    var description: String?
    var seed: UInt64?
    var arrivals: ArrivalsFile
    var requests: Int?
    var prompt: LengthFile?
    var output: LengthFile?
    var sharedPrefix: SharedPrefixFile?
    var sessions: SessionsFile?
    var serving: ServingSettings?

    enum CodingKeys: String, CodingKey {
        case name, description, seed, arrivals, requests, prompt, output, serving, sessions
        case sharedPrefix = "shared_prefix"
    }

    struct SessionsFile: Decodable {
        var turns: Int?
        var concurrent: Int?
    }

    struct SharedPrefixFile: Decodable {
        var tokens: Int?
        var variants: Int?
    }

    struct ArrivalsFile: Decodable {
        var process: String
        var rate: Double?
        var cv: Double?
        var log: String?
        var format: LogFormat?
        var timeScale: Double?
        var offset: Int?

        enum CodingKeys: String, CodingKey {
            case process, rate, cv, log, format, offset
            case timeScale = "time_scale"
        }
    }

    struct LengthFile: Decodable {
        var distribution: String
        var tokens: Int?
        var min: Int?
        var max: Int?
        var median: Double?
        var sigma: Double?
        var mean: Double?
        var sd: Double?
    }

    func scenario(path: String) throws -> Scenario {
        func bad(_ key: String, _ what: String) -> WorkloadError { WorkloadError("\(path): key \(key): \(what)") }
        let arrivalsValue: Scenario.Arrivals
        switch arrivals.process {
        case "batch":
            arrivalsValue = .synthetic(.batch)
        case "poisson", "gamma":
            guard let rate = arrivals.rate else { throw bad("arrivals.rate", "a \(arrivals.process) process needs a rate (requests/s)") }
            guard rate >= 1e-6, rate <= 1e6 else { throw bad("arrivals.rate", "must be between 0.000001 and 1000000 requests per second, found \(rate)") }
            if arrivals.process == "gamma" {
                let cv = arrivals.cv ?? 1
                guard cv > 0, cv <= 100 else { throw bad("arrivals.cv", "must be in (0, 100], found \(cv)") }
                arrivalsValue = .synthetic(.gamma(rate: rate, cv: cv))
            } else {
                arrivalsValue = .synthetic(.poisson(rate: rate))
            }
        case "log":
            guard let log = arrivals.log else { throw bad("arrivals.log", "a log process needs the log's path") }
            guard let format = arrivals.format else { throw bad("arrivals.format", "expected one of \(LogFormat.allCases.map(\.rawValue).joined(separator: ", "))") }
            let scale = arrivals.timeScale ?? 1
            guard scale > 0, scale.isFinite else { throw bad("arrivals.time_scale", "must be positive, found \(scale)") }
            let offset = arrivals.offset ?? 0
            guard offset >= 0 else { throw bad("arrivals.offset", "must be ≥ 0") }
            let resolved = log.hasPrefix("/") ? log : URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(log).path
            arrivalsValue = .log(path: resolved, format: format, timeScale: scale, offset: offset)
        default:
            throw bad("arrivals.process", "expected batch, poisson, gamma or log, found \(arrivals.process)")
        }
        if let requests, requests <= 0 || requests > Scenario.maxRequests {
            throw bad("requests", "must be between 1 and \(Scenario.maxRequests) (about a minute of simulation), found \(requests)")
        }
        var promptValue: LengthDistribution?
        var outputValue: LengthDistribution?
        if case .synthetic = arrivalsValue {
            guard let prompt else { throw bad("prompt", "synthetic arrivals need a prompt length distribution") }
            guard let output else { throw bad("output", "synthetic arrivals need an output length distribution") }
            promptValue = try length(prompt, key: "prompt", bad)
            outputValue = try length(output, key: "output", bad)
        }
        var shared: SharedPrefix?
        if let sharedPrefix {
            guard case .synthetic = arrivalsValue else { throw bad("shared_prefix", "applies to synthetic arrivals (a log's requests carry their own hash_ids)") }
            guard let tokens = sharedPrefix.tokens, (1...Scenario.maxTokens).contains(tokens) else {
                throw bad("shared_prefix.tokens", "must be a token count between 1 and \(Scenario.maxTokens)")
            }
            guard let variants = sharedPrefix.variants, (1...1_000_000).contains(variants) else {
                throw bad("shared_prefix.variants", "must be the number of distinct shared prompts, between 1 and 1000000")
            }
            shared = SharedPrefix(tokens: tokens, variants: variants)
        }
        var sessionsValue: Sessions?
        if let sessions {
            guard case .synthetic = arrivalsValue else { throw bad("sessions", "applies to synthetic arrivals (a log's requests carry their own hash_ids)") }
            guard let turns = sessions.turns, (1...1000).contains(turns) else { throw bad("sessions.turns", "must be the turns per session, between 1 and 1000") }
            let concurrent = sessions.concurrent ?? 16
            guard (1...1_000_000).contains(concurrent) else { throw bad("sessions.concurrent", "must be the sessions open at once, between 1 and 1000000") }
            sessionsValue = Sessions(turns: turns, concurrent: concurrent)
        }
        let serving = self.serving ?? ServingSettings()
        return Scenario(path: path, name: name, description: description ?? "", seed: seed ?? 1, arrivals: arrivalsValue,
                        requests: requests, prompt: promptValue, output: outputValue, sharedPrefix: shared, sessions: sessionsValue, serving: serving)
    }

    private func length(_ f: LengthFile, key: String, _ bad: (String, String) -> WorkloadError) throws -> LengthDistribution {
        func positive(_ v: Int?, _ name: String) throws -> Int {
            guard let v else { throw bad("\(key).\(name)", "missing; \(f.distribution) needs it") }
            guard v > 0, v <= Scenario.maxTokens else { throw bad("\(key).\(name)", "must be a token count between 1 and \(Scenario.maxTokens), found \(v)") }
            return v
        }
        func ordered(_ lo: Int, _ hi: Int) throws {
            guard lo <= hi else { throw bad("\(key).min", "min \(lo) exceeds max \(hi)") }
        }
        func finite(_ v: Double, _ name: String, upTo limit: Double) throws {
            guard v.isFinite, v <= limit else { throw bad("\(key).\(name)", "must be at most \(Format.figure(limit)), found \(v)") }
        }
        switch f.distribution {
        case "fixed":
            return .fixed(try positive(f.tokens, "tokens"))
        case "uniform":
            let lo = try positive(f.min, "min"), hi = try positive(f.max, "max")
            try ordered(lo, hi)
            return .uniform(min: lo, max: hi)
        case "lognormal":
            guard let median = f.median, median > 0 else { throw bad("\(key).median", "a lognormal needs a positive median") }
            guard let sigma = f.sigma, sigma >= 0 else { throw bad("\(key).sigma", "a lognormal needs sigma ≥ 0") }
            try finite(median, "median", upTo: Double(Scenario.maxTokens))
            // σ of log-length: 10 already spans e^±20; more only piles every draw onto min or max.
            try finite(sigma, "sigma", upTo: 10)
            let lo = try positive(f.min ?? 1, "min"), hi = try positive(f.max, "max")
            try ordered(lo, hi)
            return .lognormal(median: median, sigma: sigma, min: lo, max: hi)
        case "normal":
            guard let mean = f.mean, mean > 0 else { throw bad("\(key).mean", "a normal needs a positive mean") }
            guard let sd = f.sd, sd >= 0 else { throw bad("\(key).sd", "a normal needs sd ≥ 0") }
            try finite(mean, "mean", upTo: Double(Scenario.maxTokens))
            try finite(sd, "sd", upTo: Double(Scenario.maxTokens))
            let lo = try positive(f.min ?? 1, "min"), hi = try positive(f.max, "max")
            try ordered(lo, hi)
            return .normal(mean: mean, sd: sd, min: lo, max: hi)
        default:
            throw bad("\(key).distribution", "expected fixed, uniform, lognormal or normal, found \(f.distribution)")
        }
    }
}

private func describe(_ error: DecodingError) -> String {
    Diagnostics.describe(decoding: error) { ($0 as? YamlError).map(describe) }
}

private func describe(_ error: YamlError) -> String {
    switch error {
    case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _):
        return "line \(mark.line), column \(mark.column): \(problem)\(context.map { " (\($0.text))" } ?? "")"
    default:
        return "\(error)"
    }
}
