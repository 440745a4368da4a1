import Foundation
import Hardware

/// GuideLLM's benchmark report: 0.2–0.3 (each benchmark has `args`, `run_stats`, `worker`), 0.4–0.6
/// (`config`, `scheduler_state`, top-level `args`) and 0.7 (`metadata.version` 2, top-level `config`).
/// Each benchmark becomes one run.
///
/// What maps onto the simulator's figures: throughput is the benchmark's output tokens over its
/// duration (`metrics.output_tokens_per_second` is a distribution over iterations, not the run's
/// rate); TTFT is `time_to_first_token_ms`; GuideLLM's `inter_token_latency_ms` is, per request,
/// (last token − first token) / (output − 1), which is vLLM's TPOT. GuideLLM's own
/// `time_per_output_token_ms` counts the first token's wait too and has no vLLM counterpart, so it
/// is not compared.
enum GuideLLMReport {
    static func runs(_ top: [String: Any], file: String) throws -> [BenchmarkRun] {
        guard let benchmarks = top["benchmarks"] as? [[String: Any]] else { throw CalibrationError("\(file): key benchmarks: expected a list of objects") }
        guard !benchmarks.isEmpty else { throw CalibrationError("\(file): key benchmarks: the report holds no benchmark") }
        let version = (top["metadata"] as? [String: Any])?["guidellm_version"] as? String
        let topModel = ((top["args"] as? [String: Any])?["model"] as? String) ?? ((top["config"] as? [String: Any])?["model"] as? String)
        return try benchmarks.enumerated().map { i, b in
            try run(b, index: i, file: file, topModel: topModel, version: version)
        }
    }

    static func run(_ b: [String: Any], index: Int, file: String, topModel: String?, version: String?) throws -> BenchmarkRun {
        let at = "\(file) (benchmarks[\(index)])"
        guard let metrics = b["metrics"] as? [String: Any] else { throw CalibrationError("\(at): key metrics: missing") }
        let config = (b["config"] as? [String: Any]) ?? (b["args"] as? [String: Any])
        guard let strategy = config?["strategy"] as? [String: Any], let type = strategy["type_"] as? String else {
            throw CalibrationError("\(at): key \(b["config"] != nil ? "config" : "args").strategy.type_: missing")
        }
        // Request counts: `metrics.request_totals` (0.4+) or the benchmark's `request_totals` (0.2–0.3).
        let totals = (metrics["request_totals"] as? [String: Any]) ?? (b["request_totals"] as? [String: Any])
        let successful = (totals?["successful"] as? NSNumber)?.intValue ?? 0
        let errored = (totals?["errored"] as? NSNumber)?.intValue ?? 0
        guard successful > 0 else { throw CalibrationError("\(at): key request_totals.successful: no successful request") }
        guard errored == 0 else { throw CalibrationError("\(at): \(errored) requests errored: the figures describe a partial run") }
        let duration = try Fields(b, at).positive("duration")

        func summary(_ key: String) throws -> [String: Any] {
            guard let m = metrics[key] as? [String: Any], let s = m["successful"] as? [String: Any] else {
                throw CalibrationError("\(at): key metrics.\(key).successful: missing")
            }
            return s
        }
        func value(_ key: String, _ field: String) throws -> Double {
            let s = try summary(key)
            guard let x = (s[field] as? NSNumber)?.doubleValue, x.isFinite, x >= 0 else {
                throw CalibrationError("\(at): key metrics.\(key).successful.\(field): expected a number")
            }
            return x
        }
        let promptMean = try value("prompt_token_count", "mean"), outputTotal = try value("output_token_count", "total_sum")
        let outputMean = try value("output_token_count", "mean")
        guard outputTotal > 0 else { throw CalibrationError("\(at): key metrics.output_token_count.successful.total_sum: no output tokens") }

        var w = ServingMeasurement.Workload(arrivals: "batch", rate: nil, cv: nil, concurrency: nil, requests: successful,
                                            prompt: .init(tokens: max(1, Int(promptMean.rounded())), min: nil),
                                            output: .init(tokens: max(1, Int(outputMean.rounded())), min: nil), pairs: nil)
        let rate = (strategy["rate"] as? NSNumber)?.doubleValue
        var described = type
        switch type {
        case "synchronous":
            w.concurrency = 1
        case "concurrent":
            guard let streams = (strategy["streams"] as? NSNumber)?.intValue, streams > 0 else {
                throw CalibrationError("\(at): key strategy.streams: a concurrent benchmark needs a positive stream count")
            }
            w.concurrency = streams
            described = "concurrent, \(streams) streams"
        case "throughput":
            if let c = (strategy["max_concurrency"] as? NSNumber)?.intValue, c > 0 { w.concurrency = c }
        case "constant", "poisson", "async":
            guard let rate, rate > 0, rate.isFinite else { throw CalibrationError("\(at): key strategy.rate: a \(type) benchmark needs a positive rate") }
            w.arrivals = type == "constant" ? "constant" : "poisson"
            w.rate = rate
            if let c = (strategy["max_concurrency"] as? NSNumber)?.intValue, c > 0 { w.concurrency = c }
            described = "\(type), \(rate)/s"
        default:
            throw CalibrationError("\(at): key strategy.type_: '\(type)' is not a GuideLLM profile calibrate knows (synchronous, concurrent, throughput, constant, poisson)")
        }
        var note = "means of metrics.prompt_token_count and output_token_count"
        if let requests = (b["requests"] as? [String: Any])?["successful"] as? [[String: Any]], requests.count == successful {
            let pairs = requests.compactMap { r -> [Int]? in
                guard let p = (r["prompt_tokens"] as? NSNumber)?.intValue, let o = (r["output_tokens"] as? NSNumber)?.intValue, p > 0, o > 0 else { return nil }
                return [p, o]
            }
            if pairs.count == successful {
                w.pairs = pairs
                note = "the \(successful) requests' own lengths (requests.successful)"
            }
        }
        var measured = ServingMeasurement.Measured()
        measured.outputTokensPerSecond = outputTotal / duration
        let ttft = try summary("time_to_first_token_ms"), itl = try summary("inter_token_latency_ms")
        func statistic(_ s: [String: Any]) -> ServingMeasurement.Statistic? {
            let median = (s["median"] as? NSNumber)?.doubleValue, mean = (s["mean"] as? NSNumber)?.doubleValue
            let m = median.flatMap { $0 > 0 ? $0 : nil }, a = mean.flatMap { $0 > 0 ? $0 : nil }
            return m == nil && a == nil ? nil : ServingMeasurement.Statistic(median: m, mean: a)
        }
        measured.ttftMs = statistic(ttft)
        measured.tpotMs = statistic(itl)
        let backend = (config?["backend"] as? [String: Any]) ?? (b["worker"] as? [String: Any])
        let model = (backend?["model"] as? String) ?? (backend?["backend_model"] as? String) ?? topModel
        let label = "benchmarks[\(index)] (\(described))"
        let m = ServingMeasurement(id: "\(file) \(label)", split: .fit, source: Provenance(url: nil, quote: file, note: version.map { "GuideLLM \($0)" }),
                                   engine: "guidellm", gpu: "", model: model ?? "", serving: ServingSettings(), workload: w, measured: measured,
                                   excluded: nil)
        return BenchmarkRun(file: file, kind: .guidellm, label: label, modelID: model, measurement: m, lengthsNote: note)
    }
}
