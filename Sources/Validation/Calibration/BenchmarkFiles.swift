import Foundation
import Hardware
import Simulator

/// Why a calibration input cannot be used: one line naming the file and the field.
public struct CalibrationError: LocalizedError, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

/// The kinds of file `ckv-sim calibrate` reads (formats and their versions: Docs/calibration.md).
public enum BenchmarkFileKind: String, Codable, Sendable, CaseIterable {
    /// `vllm bench serve --save-result` / `benchmarks/benchmark_serving.py --save-result` (one
    /// object, or one per line with `--append-result`; vLLM 0.4 and later).
    case vllmBenchServe = "vllm-bench-serve"
    /// `vllm bench throughput --output-json` / `benchmarks/benchmark_throughput.py --output-json`.
    case vllmThroughput = "vllm-throughput"
    /// GuideLLM's report (`guidellm benchmark … --output-path x.json`), 0.2 to 0.7.
    case guidellm
    /// A vLLM server's or `LLM()`'s start-up log (0.4 to 0.11: V0 and V1).
    case vllmStartupLog = "vllm-startup-log"

    public var title: String {
        switch self {
        case .vllmBenchServe: "vllm bench serve result"
        case .vllmThroughput: "vllm benchmark_throughput result"
        case .guidellm: "GuideLLM report"
        case .vllmStartupLog: "vLLM start-up log"
        }
    }
}

/// One benchmark run read from a file: what the client measured and the load it offered.
public struct BenchmarkRun: Sendable {
    public var file: String
    public var kind: BenchmarkFileKind
    /// Which run of the file ("line 2", "benchmark 3 (concurrent, 4 streams)"); empty for a file of one run.
    public var label: String
    /// The model the client asked for (`model_id`, GuideLLM's backend model); nil when the file has none.
    public var modelID: String?
    /// The run as the simulator replays it (workload and measured figures; the serving settings
    /// are the deployment's, given to `calibrate`).
    public var measurement: ServingMeasurement
    /// How the lengths were taken, for the report.
    public var lengthsNote: String
}

/// What a vLLM start-up log says about the deployment and its KV cache.
public struct StartupLog: Sendable, Equatable {
    public var file: String
    public var engine: ServingEngine
    /// vLLM's version as the log prints it.
    public var version: String?
    /// The served model (`model='…'` of the engine's config line, its last path component).
    public var model: String?
    /// What the log states of the settings (the rest are the engine's defaults).
    public var settings: ServingSettings
    public var pipelineParallel: Int
    /// KV cache memory per GPU, GiB (V1 "Available KV cache memory", V0 "the rest of the memory
    /// reserved for KV Cache" / "kv_cache_size"), or nil when only a block count is printed.
    public var kvGiB: Double?
    /// V1 "GPU KV cache size: N tokens".
    public var kvTokens: Int?
    /// V0 "# GPU blocks: N" (also "# CUDA blocks", "# cuda blocks").
    public var gpuBlocks: Int?
    /// `total_gpu_memory` (V0 0.6.4 and later), GiB.
    public var totalGiB: Double?
    /// "Loading model weights took" / "Model loading took", GiB.
    public var weightsGiB: Double?
    /// The line each figure came from (1-based), for messages.
    public var lines: [String: Int]
}

/// A calibration input: benchmark runs or a start-up log.
public enum CalibrationInput: Sendable {
    case runs([BenchmarkRun])
    case log(StartupLog)
}

/// Reads the files `ckv-sim calibrate` takes, recognising each by its content.
public enum BenchmarkFiles {
    /// Reads `path` (displayed as its last component in every message and in the profile).
    /// - Parameter lengths: (prompt, output) tokens per request of a `benchmark_throughput` run,
    ///   which does not record them.
    /// - Throws: `CalibrationError` naming the file and the field or line.
    public static func read(path: String, data: Data, lengths: (prompt: Int, output: Int)?) throws -> CalibrationInput {
        let name = (path as NSString).lastPathComponent
        let text = String(decoding: data, as: UTF8.self)
        let trimmed = text.drop { $0.isWhitespace }
        guard let first = trimmed.first else { throw CalibrationError("\(name): the file is empty") }
        if first == "{" || first == "[" {
            let objects = try jsonObjects(text, name)
            guard let top = objects.first else { throw CalibrationError("\(name): no JSON object") }
            if top["benchmarks"] != nil { return .runs(try GuideLLMReport.runs(top, file: name)) }
            if top["elapsed_time"] != nil || top["tokens_per_second"] != nil {
                return .runs([try throughputRun(top, file: name, lengths: lengths)])
            }
            if top["num_prompts"] != nil || top["request_throughput"] != nil || top["completed"] != nil {
                return .runs(try objects.enumerated().map { i, o in
                    try benchServeRun(o, file: name, label: objects.count > 1 ? "line \(i + 1)" : "")
                })
            }
            let keys = top.keys.sorted().prefix(8).joined(separator: ", ")
            throw CalibrationError("\(name): a JSON object with keys \(keys)\(top.count > 8 ? ", …" : "") is none of the formats calibrate reads (vllm bench serve --save-result, benchmark_throughput --output-json, a GuideLLM report)")
        }
        return .log(try StartupLogParser.parse(text, file: name))
    }

    /// One JSON object, or one per non-empty line (vLLM's `--append-result`). Python's `NaN` and
    /// `Infinity`, which `json.dump` writes, read as null.
    static func jsonObjects(_ text: String, _ name: String) throws -> [[String: Any]] {
        func parse(_ s: Substring) -> Any? {
            if let v = try? JSONSerialization.jsonObject(with: Data(s.utf8)) { return v }
            let cleaned = s.replacingOccurrences(of: "-Infinity", with: "null").replacingOccurrences(of: "Infinity", with: "null")
                .replacingOccurrences(of: "NaN", with: "null")
            return try? JSONSerialization.jsonObject(with: Data(cleaned.utf8))
        }
        if let whole = parse(Substring(text)) {
            if let o = whole as? [String: Any] { return [o] }
            if let list = whole as? [Any] {
                return try list.enumerated().map { i, v in
                    guard let o = v as? [String: Any] else { throw CalibrationError("\(name): element \(i) of the top-level list is not an object") }
                    return o
                }
            }
            throw CalibrationError("\(name): the top level is not a JSON object")
        }
        var objects: [[String: Any]] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.allSatisfy(\.isWhitespace) {
            guard let o = parse(line) as? [String: Any] else { throw CalibrationError("\(name):\(i + 1): not a JSON object (the file is neither one JSON document nor one object per line)") }
            objects.append(o)
        }
        return objects
    }

    // MARK: vllm bench serve

    static func benchServeRun(_ o: [String: Any], file: String, label: String) throws -> BenchmarkRun {
        let at = label.isEmpty ? file : "\(file) (\(label))"
        let f = Fields(o, at)
        if o["total_input_sequences"] != nil, o["output_throughput"] == nil {
            throw CalibrationError("\(at): a pooling (embedding) benchmark: calibrate needs a generation run")
        }
        let completed = try f.int("completed")
        let failed = try f.optionalInt("failed") ?? 0
        let errors = (o["errors"] as? [Any])?.compactMap { $0 as? String }.filter { !$0.isEmpty }.count ?? 0
        guard completed > 0 else { throw CalibrationError("\(at): completed is 0\(failed > 0 ? " and \(failed) requests failed" : ""): the run measured nothing") }
        guard failed == 0, errors == 0 else {
            throw CalibrationError("\(at): \(max(failed, errors)) requests failed: the figures describe a partial run (fix the run, or drop the file)")
        }
        let duration = try f.positive("duration")
        let input = try f.int("total_input_tokens"), output = try f.int("total_output_tokens")
        guard output > 0 else { throw CalibrationError("\(at): total_output_tokens is 0") }
        var w = ServingMeasurement.Workload(arrivals: "batch", rate: nil, cv: nil, concurrency: nil, requests: completed,
                                            prompt: .init(tokens: max(1, Int((Double(input) / Double(completed)).rounded())), min: nil),
                                            output: .init(tokens: max(1, Int((Double(output) / Double(completed)).rounded())), min: nil), pairs: nil)
        switch o["request_rate"] {
        case let s as String where s.lowercased() == "inf": break
        case nil, is NSNull: throw CalibrationError("\(at): key request_rate: missing")
        case let n as NSNumber where n.doubleValue.isInfinite: break
        case let n as NSNumber:
            guard n.doubleValue > 0 else { throw CalibrationError("\(at): key request_rate: expected a positive rate or \"inf\", found \(n)") }
            w.rate = n.doubleValue
            let burstiness = (o["burstiness"] as? NSNumber)?.doubleValue ?? 1
            guard burstiness > 0, burstiness.isFinite else { throw CalibrationError("\(at): key burstiness: expected a positive number, found \(burstiness)") }
            if burstiness == 1 { w.arrivals = "poisson" } else {
                w.arrivals = "gamma"
                w.cv = 1 / burstiness.squareRoot()
            }
        default: throw CalibrationError("\(at): key request_rate: expected a number or \"inf\"")
        }
        if let c = try f.optionalInt("max_concurrency") {
            guard c > 0 else { throw CalibrationError("\(at): key max_concurrency: expected a positive count, found \(c)") }
            w.concurrency = c
        }
        var note = "means of total_input_tokens and total_output_tokens over the completed requests"
        if let ins = o["input_lens"] as? [Any], let outs = o["output_lens"] as? [Any], !ins.isEmpty, ins.count == outs.count {
            let pairs = zip(ins, outs).compactMap { a, b -> [Int]? in
                guard let p = (a as? NSNumber)?.intValue, let q = (b as? NSNumber)?.intValue, p > 0, q > 0 else { return nil }
                return [p, q]
            }
            if pairs.count == completed {
                w.pairs = pairs
                note = "the \(completed) requests' own lengths (input_lens, output_lens)"
            } else if pairs.count == ins.count {
                // A sample of the requests (a trimmed file): draw from it, scaled so that its means
                // are the whole run's (total tokens over completed requests).
                let n = Double(pairs.count)
                let inScale = Double(input) / Double(completed) / (Double(pairs.map { $0[0] }.reduce(0, +)) / n)
                let outScale = Double(output) / Double(completed) / (Double(pairs.map { $0[1] }.reduce(0, +)) / n)
                w.pairs = pairs.map { [max(1, Int((Double($0[0]) * inScale).rounded())), max(1, Int((Double($0[1]) * outScale).rounded()))] }
                note = "drawn from the \(pairs.count) of \(completed) requests the file lists (input_lens, output_lens), scaled to the run's mean lengths"
            }
        }
        var measured = ServingMeasurement.Measured()
        measured.outputTokensPerSecond = (o["output_throughput"] as? NSNumber)?.doubleValue ?? Double(output) / duration
        measured.ttftMs = try f.statistic("ttft")
        measured.tpotMs = try f.statistic("tpot")
        measured.itlMs = try f.statistic("itl")
        let model = o["model_id"] as? String
        // A server that keeps up with a finite rate serves what is offered: its throughput is the
        // client's random arrivals, not the GPU's speed, and is not fitted.
        var excluded: [String: String]?
        if let rate = w.rate, Double(completed) / duration >= 0.9 * rate {
            excluded = [ServingMetric.throughput.rawValue: "the server kept up with request_rate \(rate)/s: throughput is the offered load"]
        }
        let m = ServingMeasurement(id: label.isEmpty ? file : "\(file) \(label)", split: .fit,
                                   source: Provenance(url: nil, quote: file, note: nil), engine: (o["backend"] as? String) ?? "vllm",
                                   gpu: "", model: model ?? "", serving: ServingSettings(), workload: w, measured: measured, excluded: excluded)
        return BenchmarkRun(file: file, kind: .vllmBenchServe, label: label, modelID: model, measurement: m, lengthsNote: note)
    }

    // MARK: benchmark_throughput

    static func throughputRun(_ o: [String: Any], file: String, lengths: (prompt: Int, output: Int)?) throws -> BenchmarkRun {
        let f = Fields(o, file)
        let requests = try f.int("num_requests")
        guard requests > 0 else { throw CalibrationError("\(file): key num_requests: expected a positive count, found \(requests)") }
        let elapsed = try f.positive("elapsed_time")
        let total = try f.int("total_num_tokens")
        let perSecond = try f.positive("tokens_per_second")
        guard let lengths else {
            throw CalibrationError("\(file): a benchmark_throughput result does not record its lengths: give --input-len and --output-len (its total_num_tokens is \(total) over \(requests) requests)")
        }
        let expected = requests * (lengths.prompt + lengths.output)
        guard abs(Double(expected - total)) <= 0.02 * Double(total) else {
            throw CalibrationError("\(file): key total_num_tokens: \(total) tokens, but \(requests) requests of --input-len \(lengths.prompt) + --output-len \(lengths.output) make \(expected)")
        }
        guard abs(perSecond * elapsed - Double(total)) <= 0.02 * Double(total) else {
            throw CalibrationError("\(file): key tokens_per_second: \(perSecond) × elapsed_time \(elapsed) s is not total_num_tokens \(total)")
        }
        let w = ServingMeasurement.Workload(arrivals: "batch", rate: nil, cv: nil, concurrency: nil, requests: requests,
                                            prompt: .init(tokens: lengths.prompt, min: nil), output: .init(tokens: lengths.output, min: nil), pairs: nil)
        var measured = ServingMeasurement.Measured()
        measured.totalTokensPerSecond = perSecond
        let m = ServingMeasurement(id: file, split: .fit, source: Provenance(url: nil, quote: file, note: nil), engine: "vllm", gpu: "", model: "",
                                   serving: ServingSettings(), workload: w, measured: measured, excluded: nil)
        return BenchmarkRun(file: file, kind: .vllmThroughput, label: "", modelID: nil, measurement: m,
                            lengthsNote: "--input-len \(lengths.prompt), --output-len \(lengths.output)")
    }
}

/// Typed access to a JSON object's keys, with errors naming the file and key.
struct Fields {
    let o: [String: Any]
    let at: String
    init(_ o: [String: Any], _ at: String) {
        self.o = o
        self.at = at
    }

    func number(_ key: String) throws -> Double {
        guard let v = o[key], !(v is NSNull) else { throw CalibrationError("\(at): key \(key): missing") }
        guard let n = v as? NSNumber else {
            throw CalibrationError("\(at): key \(key): expected a number, found \(String(describing: v).prefix(40))")
        }
        guard n.doubleValue.isFinite else { throw CalibrationError("\(at): key \(key): expected a finite number") }
        return n.doubleValue
    }

    func int(_ key: String) throws -> Int {
        let x = try number(key)
        guard x >= 0, x < 1e15, x == x.rounded() else { throw CalibrationError("\(at): key \(key): expected a count, found \(x)") }
        return Int(x)
    }

    func optionalInt(_ key: String) throws -> Int? {
        guard let v = o[key], !(v is NSNull) else { return nil }
        guard v is NSNumber else { throw CalibrationError("\(at): key \(key): expected a count, found \(String(describing: v).prefix(40))") }
        return try int(key)
    }

    func positive(_ key: String) throws -> Double {
        let x = try number(key)
        guard x > 0 else { throw CalibrationError("\(at): key \(key): expected a positive number, found \(x)") }
        return x
    }

    /// `median_{m}_ms` and `mean_{m}_ms` where printed and positive (nil when neither is).
    func statistic(_ metric: String) throws -> ServingMeasurement.Statistic? {
        func read(_ key: String) throws -> Double? {
            guard let v = o[key], !(v is NSNull) else { return nil }
            let x = try number(key)
            guard x >= 0 else { throw CalibrationError("\(at): key \(key): expected a duration, found \(x)") }
            return x > 0 ? x : nil
        }
        let median = try read("median_\(metric)_ms"), mean = try read("mean_\(metric)_ms")
        return median == nil && mean == nil ? nil : ServingMeasurement.Statistic(median: median, mean: mean)
    }
}
