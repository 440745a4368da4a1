import Foundation
import Hardware
import Reporting
import Simulator

/// What a serving measurement reports and the simulator predicts: the classes of figure that
/// carry an error band.
public enum ServingMetric: String, Codable, CaseIterable, Sendable {
    /// Output tokens per second (total tokens per second for an offline throughput run).
    case throughput
    case ttft
    case tpot
    case itl

    public var title: String {
        switch self {
        case .throughput: "throughput"
        case .ttft: "TTFT"
        case .tpot: "TPOT"
        case .itl: "ITL"
        }
    }
}

/// A published serving benchmark run (`vllm bench serve`, `benchmark_throughput`,
/// `sglang.bench_serving`) with the configuration it ran (`Sources/Validation/Data/serving.json`).
public struct ServingMeasurement: Codable, Sendable {
    public var id: String
    public var split: Split
    public var source: Provenance
    /// The engine and version as the source states them ("vllm 0.11.0").
    public var engine: String
    public var gpu: String
    public var model: String
    /// The settings the run gave (the engine's defaults fill the rest).
    public var serving: ServingSettings
    public var workload: Workload
    public var measured: Measured
    /// Metrics the source prints that must not be compared, and why.
    public var excluded: [String: String]?

    public struct Workload: Codable, Sendable {
        /// `batch` (every request at t = 0: request rate inf, or an offline run), `poisson`,
        /// `gamma` (`vllm bench serve --burstiness`: gaps with coefficient of variation `cv`) or
        /// `constant` (evenly spaced).
        public var arrivals: String
        public var rate: Double?
        /// The gamma gaps' coefficient of variation (1/√burstiness).
        public var cv: Double?
        /// The client's limit on outstanding requests (`--max-concurrency`, GuideLLM's streams).
        public var concurrency: Int?
        public var requests: Int
        public var prompt: Length
        public var output: Length
        /// (prompt, output) lengths of the run's requests when the file lists them (all of them, or
        /// a sample each simulated request draws from); `prompt` and `output` are then their means.
        public var pairs: [[Int]]?

        /// Fixed at `tokens`, or uniform in [`min`, `tokens`].
        public struct Length: Codable, Sendable {
            public var tokens: Int
            public var min: Int?
            var distribution: LengthDistribution { min.map { .uniform(min: $0, max: tokens) } ?? .fixed(tokens) }
        }
    }

    /// A latency as printed: its median and mean where given.
    public struct Statistic: Codable, Sendable {
        public var median: Double?
        public var mean: Double?
    }

    public struct Measured: Codable, Sendable {
        public var outputTokensPerSecond: Double?
        public var totalTokensPerSecond: Double?
        public var ttftMs: Statistic?
        public var tpotMs: Statistic?
        public var itlMs: Statistic?

        enum CodingKeys: String, CodingKey {
            case outputTokensPerSecond = "output_tokens_per_s", totalTokensPerSecond = "total_tokens_per_s"
            case ttftMs = "ttft_ms", tpotMs = "tpot_ms", itlMs = "itl_ms"
        }
    }

    /// The measurements committed with the build.
    public static func committed() throws -> [ServingMeasurement] { try committedData("serving") }

    /// Runs the simulator on this measurement's configuration with `constants`.
    /// - Throws: `MeasurementError` for a GPU or model the catalogue lacks or a setting that does
    ///   not resolve; `CapacityError` when it cannot serve.
    public func simulate(_ constants: CostConstants) throws -> SimulationResult {
        guard let g = GPUCatalog.named(gpu) else { throw MeasurementError("\(id): unknown GPU '\(gpu)'") }
        guard let m = ModelCatalog.named(model) else { throw MeasurementError("\(id): unknown model '\(model)'") }
        // The release the source names decides the rules that follow it (the sampler).
        var settings = self.serving
        settings.engineVersion = settings.engineVersion ?? EngineVersion(label: engine)
        let serving: ServingConfig
        do { serving = try settings.resolve(gpu: g, model: m) } catch let e as ServingError { throw MeasurementError("\(id): serving: \(e.description)") }
        return try simulate(gpu: g, model: m, serving: serving, coefficients: Coefficients(cost: constants))
    }

    /// Runs the simulator on this measurement's workload with a resolved deployment.
    /// - Throws: `MeasurementError` for a workload that does not describe arrivals; `CapacityError`.
    public func simulate(gpu g: GPU, model m: ModelSpec, serving: ServingConfig, coefficients: Coefficients) throws -> SimulationResult {
        func rate() throws -> Double {
            guard let rate = workload.rate, rate > 0, rate.isFinite else { throw MeasurementError("\(id): workload.rate: a \(workload.arrivals) workload needs a positive rate") }
            return rate
        }
        let arrivals: ArrivalProcess
        switch workload.arrivals {
        case "batch": arrivals = .batch
        case "poisson": arrivals = .poisson(rate: try rate())
        case "constant": arrivals = .constant(rate: try rate())
        case "gamma":
            guard let cv = workload.cv, cv > 0, cv.isFinite else { throw MeasurementError("\(id): workload.cv: a gamma workload needs a positive cv") }
            arrivals = .gamma(rate: try rate(), cv: cv)
        default: throw MeasurementError("\(id): workload.arrivals: expected batch, poisson, gamma or constant, found \(workload.arrivals)")
        }
        let pairs = workload.pairs?.map { (prompt: $0[0], output: $0[1]) }
        let source = SyntheticSource(arrivals: arrivals, prompt: workload.prompt.distribution, output: workload.output.distribution,
                                     count: workload.requests, seed: 1, pairs: pairs)
        let largest = pairs.map { p in (p.map(\.prompt).max() ?? 1, p.map(\.output).max() ?? 1) } ?? (workload.prompt.tokens, workload.output.tokens)
        return try Simulation.run(gpu: g, model: m, serving: serving, coefficients: coefficients, source: source,
                                  largest: largest, timeSeries: false, clientConcurrency: workload.concurrency)
    }

    /// The measured figure of `metric` (the median where printed, else the mean), nil when the
    /// source lacks it or it is excluded.
    public func measuredValue(_ metric: ServingMetric) -> Double? {
        if excluded?[metric.rawValue] != nil { return nil }
        func pick(_ s: Statistic?) -> Double? { s?.median ?? s?.mean }
        switch metric {
        case .throughput: return measured.outputTokensPerSecond ?? measured.totalTokensPerSecond
        case .ttft: return pick(measured.ttftMs)
        case .tpot: return pick(measured.tpotMs)
        case .itl: return pick(measured.itlMs)
        }
    }

    /// The simulated counterpart of `measuredValue(metric)` in `result`.
    public func predictedValue(_ metric: ServingMetric, _ result: SimulationResult) -> Double {
        func pick(_ s: Statistic?, _ p: Percentiles) -> Double { s?.median != nil ? p.p50 : p.mean }
        switch metric {
        case .throughput: return measured.outputTokensPerSecond != nil ? result.outputTokensPerSecond : result.totalTokensPerSecond
        case .ttft: return pick(measured.ttftMs, result.ttftMs)
        case .tpot: return pick(measured.tpotMs, result.tpotMs)
        case .itl: return pick(measured.itlMs, result.itlMs)
        }
    }
}

/// One measurement's comparison: per metric it reports, (measured, predicted).
public struct ServingComparison: Sendable {
    public var measurement: ServingMeasurement
    public var figures: [(metric: ServingMetric, measured: Double, predicted: Double)]

    public func errorPercent(_ metric: ServingMetric) -> Double? {
        figures.first { $0.metric == metric }.map { 100 * ($0.predicted - $0.measured) / $0.measured }
    }
}

extension Validation {
    /// Every serving measurement simulated with `constants`.
    public static func compareServing(_ measurements: [ServingMeasurement], constants: CostConstants) throws -> [ServingComparison] {
        try measurements.map { m in
            let r = try m.simulate(constants)
            let figures = ServingMetric.allCases.compactMap { metric in m.measuredValue(metric).map { (metric, $0, m.predictedValue(metric, r)) } }
            return ServingComparison(measurement: m, figures: figures)
        }
    }

    /// Absolute errors of `metric` over `comparisons`.
    public static func absoluteErrors(_ comparisons: [ServingComparison], _ metric: ServingMetric) -> [Double] {
        comparisons.compactMap { $0.errorPercent(metric).map(abs) }
    }
}

extension ErrorBand {
    /// The validated band of a serving figure: the fitted constants on the `check` split of the
    /// serving measurements.
    public static func serving(_ metric: ServingMetric, comparisons: [ServingComparison]) -> ErrorBand? {
        let check = comparisons.filter { $0.measurement.split == .check }
        let errors = Validation.absoluteErrors(check, metric)
        guard let median = ErrorStatistics.median(errors), let p90 = ErrorStatistics.percentile90(errors) else { return nil }
        return ErrorBand(kind: metric.rawValue, corpus: "published vLLM and SGLang serving runs held out of the fit (Sources/Validation/Data/serving.json, split check)",
                         points: errors.count, medianPercent: (median * 10).rounded() / 10, p90Percent: (p90 * 10).rounded() / 10)
    }
}

extension Validation {
    /// The serving section of Docs/validation.md: per class and split, median and 90th-percentile
    /// absolute error with `before` and `after`, then every measurement.
    public static func servingMarkdown(before: CostConstants, after: CostConstants, beforeLabel: String, afterLabel: String) throws -> String {
        let corpus = try ServingMeasurement.committed()
        let b = try compareServing(corpus, constants: before), a = try compareServing(corpus, constants: after)
        var summary = Table(columns: ["class", "split", "points", "median |error| before", "after", "90th percentile before", "after"], rightAligned: [2, 3, 4, 5, 6])
        func pct(_ x: Double?) -> String { x.map { Format.fixed($0, 1) + " %" } ?? "—" }
        for metric in ServingMetric.allCases {
            for split in [Split.fit, .check] {
                let eb = absoluteErrors(b.filter { $0.measurement.split == split }, metric)
                let ea = absoluteErrors(a.filter { $0.measurement.split == split }, metric)
                guard !ea.isEmpty else { continue }
                summary.append([metric.title, split.rawValue, "\(ea.count)", pct(ErrorStatistics.median(eb)), pct(ErrorStatistics.median(ea)),
                                pct(ErrorStatistics.percentile90(eb)), pct(ErrorStatistics.percentile90(ea))])
            }
        }
        var rows = Table(columns: ["measurement", "split", "engine", "GPU", "model", "workload"] + ServingMetric.allCases.map { "\($0.title) measured → \(afterLabel)" })
        for ca in a {
            let m = ca.measurement
            let w = m.workload
            let lengths = "\(w.prompt.min.map { "\($0)–" } ?? "")\(w.prompt.tokens) in / \(w.output.min.map { "\($0)–" } ?? "")\(w.output.tokens) out"
            let load = w.arrivals == "batch" ? "\(w.requests) at once" : "\(w.requests) at \(Format.fixed(w.rate ?? 0, 1))/s"
            let tp = (m.serving.tensorParallel ?? 1) > 1 ? " × \(m.serving.tensorParallel!)" : ""
            let cells = ServingMetric.allCases.map { metric -> String in
                guard let f = ca.figures.first(where: { $0.metric == metric }), let e = ca.errorPercent(metric) else { return "—" }
                return "\(Format.figure(f.measured)) → \(Format.figure(f.predicted)) (\(e >= 0 ? "+" : "")\(Format.fixed(e, 0)) %)"
            }
            rows.append([m.id, m.split.rawValue, m.engine, m.gpu + tp, m.model + (m.serving.weightFormat == .fp8 ? " (FP8)" : ""), "\(lengths), \(load)"] + cells)
        }
        return """
        \(corpus.count) published serving runs (`Sources/Validation/Data/serving.json`: each with its source, the printed figures, and how the unstated settings follow from the engine's defaults) are simulated with their configuration. Throughput is output tokens per second (total tokens for an offline run); TTFT, TPOT and ITL are the medians where the run prints them, else the means. **Before**: \(beforeLabel). **After**: \(afterLabel). The `fit` split chose the constants; the `check` split is used for nothing but this table and the error bands the planner prints.

        \(summary.markdown)

        \(rows.markdown)
        """
    }
}

extension Validation {
    /// The serving coefficients fitted to the `fit` split of the serving runs: vLLM V1's and
    /// SGLang's host time per step and per sequence (one pair for both), each one's API-server
    /// time per request, and the sustained-compute scale of measured kernels. A coordinate search
    /// (passes over each coefficient's grid, the others held, until one changes nothing) minimising the mean
    /// |log(predicted / measured)| over every figure the runs print (throughput, TTFT, TPOT, ITL).
    /// Returns the constants and the median absolute error (per cent) of the fit split's figures.
    public static func fitServingOverheads(_ measurements: [ServingMeasurement], base: CostConstants = CostConstants()) throws -> (CostConstants, Double) {
        let fit = measurements.filter { $0.split == .fit }
        func figures(_ c: CostConstants) throws -> [(Double, Double)] {
            try compareServing(fit, constants: c).flatMap { $0.figures.map { ($0.measured, $0.predicted) } }
        }
        func loss(_ c: CostConstants) throws -> Double {
            let f = try figures(c)
            guard !f.isEmpty else { throw MeasurementError("the serving corpus has no fit-split figures") }
            return f.map { abs(Foundation.log(max($0.1, 1e-9) / $0.0)) }.reduce(0, +) / Double(f.count)
        }
        typealias Axis = (values: [Double], set: (inout CostConstants, Double) -> Void)
        /// An axis setting one field of `engines`' overheads.
        func overhead(_ engines: [ServingEngine], _ field: WritableKeyPath<EngineOverhead, Double>, _ values: [Double]) -> Axis {
            (values, { c, v in
                for e in engines {
                    var o = c.overhead(for: e)
                    o[keyPath: field] = v
                    c.engineOverheads[e.rawValue] = o
                }
            })
        }
        let both = [ServingEngine.vllmV1, .sglang]
        let axes: [Axis] = [
            ([1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 2.0], { c, v in c.sustainedComputeScale = v }),
            overhead([.vllmV1], \.perRequest, [0, 0.002, 0.005, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.050]),
            overhead([.sglang], \.perRequest, [0, 0.002, 0.004, 0.006, 0.008, 0.010, 0.015]),
            overhead(both, \.step, [0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.006]),
            overhead(both, \.perSequence, [0.0, 0.000_02, 0.000_05, 0.000_1, 0.000_2, 0.000_4]),
        ] + Set(fit.map(\.gpu)).sorted().map { gpu in
            ([0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8], { c, v in c.gpuTimeScales[gpu] = v == 1 ? nil : v })
        }
        var best = base, bestLoss = try loss(base)
        // Passes until one moves nothing: the result is a coordinate-wise optimum, so a search
        // started from it returns it (the test that the defaults are the fit relies on this).
        for _ in 0..<8 {
            var moved = false
            for axis in axes {
                for v in axis.values {
                    var c = best
                    axis.set(&c, v)
                    let l = try loss(c)
                    if l < bestLoss - 1e-12 { best = c; bestLoss = l; moved = true }
                }
            }
            if !moved { break }
        }
        let errors = try figures(best).map { abs(100 * ($0.1 - $0.0) / $0.0) }
        return (best, ErrorStatistics.median(errors) ?? 0)
    }
}

extension ErrorBand {
    /// The bands of every serving class: the committed corpus's `check` split simulated with the
    /// default constants.
    public static func servingBands() throws -> [ErrorBand] {
        let check = try ServingMeasurement.committed().filter { $0.split == .check }
        let comparisons = try Validation.compareServing(check, constants: CostConstants())
        return ServingMetric.allCases.compactMap { serving($0, comparisons: comparisons) }
    }
}

extension Array where Element == ErrorBand {
    /// The band of serving class `metric`, nil when there is none.
    public func band(_ metric: ServingMetric) -> ErrorBand? { first { $0.kind == metric.rawValue } }

    /// How reports list the serving bands: "throughput ±x %, TTFT ±y %, … (90th percentile error on
    /// N published serving runs held out of the fit[; citing])".
    public func servingSummary(citing: String? = nil) -> String {
        map { "\(ServingMetric(rawValue: $0.kind)?.title ?? $0.kind) \($0.label)" }.joined(separator: ", ")
            + " (90th percentile error on \(map(\.points).max() ?? 0) published serving runs held out of the fit\(citing.map { "; \($0)" } ?? ""))"
    }
}

