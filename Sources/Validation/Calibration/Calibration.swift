import Crypto
import Foundation
import Hardware
import Reporting
import Simulator

/// A calibration profile: the simulator's free coefficients fitted to a team's own runs of one
/// GPU, model, engine and tensor-parallel degree, with the inputs' hashes and the fit's residuals.
/// `ckv-sim calibrate` writes it; `plan`, `simulate` and `memory` take it with `--calibration`.
public struct CalibrationProfile: Codable, Equatable, Sendable {
    public static let formatName = "ckv-sim calibration profile"
    public static let currentVersion = 1

    public var format: String
    public var version: Int
    public var gpu: String
    public var model: String
    public var engine: ServingEngine
    /// The engine's release the inputs ran (`--engine-version`, else their logs'; nil when neither
    /// names one): a deployment planned with the profile takes it, since the memory rules follow it.
    public var engineVersion: EngineVersion?
    public var tensorParallel: Int
    public var inputs: [Input]
    public var coefficients: Fitted
    public var residuals: [Residual]
    public var runs: [RunResidual]

    public struct Input: Codable, Equatable, Sendable {
        public var file: String
        public var sha256: String
        public var kind: BenchmarkFileKind
        /// Benchmark runs the file holds (0 for a start-up log).
        public var runs: Int
    }

    /// The fitted values, and which were fitted (the rest keep the defaults).
    public struct Fitted: Codable, Equatable, Sendable {
        /// Multiplies every kernel's time (`CostConstants.deviceTimeScale`).
        public var deviceTimeScale: Double
        /// The engine's host time per step, seconds (`EngineOverhead.step`).
        public var stepOverheadSeconds: Double
        /// Per sequence in the step, seconds (`EngineOverhead.perSequence`; the default's, not fitted).
        public var perSequenceOverheadSeconds: Double
        /// Added to the KV pool the memory rules give, GiB (`MemoryConstants.kvAdjustmentGiB`).
        public var kvAdjustmentGiB: Double
        /// "timing" when benchmark runs were fitted, "memory" when start-up logs were.
        public var fitted: [String]

        /// `base` with these values in place, `engine`'s API-server time kept.
        func applied(to base: Coefficients, engine: ServingEngine) -> Coefficients {
            var c = base
            c.cost.deviceTimeScale = deviceTimeScale
            var o = c.cost.overhead(for: engine)
            o.step = stepOverheadSeconds
            o.perSequence = perSequenceOverheadSeconds
            c.cost.engineOverheads[engine.rawValue] = o
            c.memory.kvAdjustmentGiB = kvAdjustmentGiB
            return c
        }

        enum CodingKeys: String, CodingKey {
            case deviceTimeScale = "device_time_scale", stepOverheadSeconds = "step_overhead_s"
            case perSequenceOverheadSeconds = "per_sequence_overhead_s", kvAdjustmentGiB = "kv_adjustment_gib", fitted
        }
    }

    /// One metric's absolute error over the inputs, before (the defaults) and after the fit.
    public struct Residual: Codable, Equatable, Sendable {
        /// throughput, ttft, tpot, itl or kv_capacity.
        public var metric: String
        public var points: Int
        public var medianBeforePercent: Double
        public var medianAfterPercent: Double
        public var maxAfterPercent: Double

        /// The residual of `metric` from the absolute errors (per cent) before and after the fit.
        init(metric: String, before: [Double], after: [Double]) {
            func round1(_ x: Double) -> Double { (x * 10).rounded() / 10 }
            self.metric = metric
            points = after.count
            medianBeforePercent = round1(ErrorStatistics.median(before) ?? 0)
            medianAfterPercent = round1(ErrorStatistics.median(after) ?? 0)
            maxAfterPercent = round1(after.max() ?? 0)
        }

        enum CodingKeys: String, CodingKey {
            case metric, points
            case medianBeforePercent = "median_before_percent", medianAfterPercent = "median_after_percent", maxAfterPercent = "max_after_percent"
        }
    }

    /// One figure of one input: measured, predicted with the defaults, predicted with the fit.
    public struct RunResidual: Codable, Equatable, Sendable {
        public var input: String
        public var metric: String
        public var measured: Double
        public var before: Double
        public var after: Double
    }

    enum CodingKeys: String, CodingKey {
        case format, version, gpu, model, engine, inputs, coefficients, residuals, runs
        case engineVersion = "engine_version"
        case tensorParallel = "tensor_parallel"
    }

    /// The simulator's coefficients with this profile applied over `base`.
    public func applied(to base: Coefficients = Coefficients()) -> Coefficients {
        coefficients.applied(to: base, engine: engine)
    }

    /// Reads a profile.
    /// - Throws: `CalibrationError` naming the file and the key for anything else: another file,
    ///   another version, a missing or mistyped key.
    public static func load(path: String) throws -> CalibrationProfile {
        let name = (path as NSString).lastPathComponent
        guard let data = FileManager.default.contents(atPath: path) else { throw CalibrationError("\(path): cannot read the calibration profile") }
        guard let top = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CalibrationError("\(name): not a JSON object (a calibration profile is what `ckv-sim calibrate --out` writes)")
        }
        guard top["format"] as? String == formatName else {
            throw CalibrationError("\(name): key format: expected \"\(formatName)\" (written by `ckv-sim calibrate`), found \(top["format"].map { "\($0)" } ?? "none")")
        }
        guard let version = top["version"] as? Int, version == currentVersion else {
            throw CalibrationError("\(name): key version: this ckv-sim reads version \(currentVersion) profiles, found \(top["version"].map { "\($0)" } ?? "none"): re-run `ckv-sim calibrate`")
        }
        do { return try JSONDecoder().decode(CalibrationProfile.self, from: data) } catch let e as DecodingError {
            throw CalibrationError("\(name): \(Diagnostics.describe(decoding: e))")
        }
    }

    /// Checks that the profile describes this deployment.
    /// - Throws: `CalibrationError` naming the field that differs and both values.
    public func check(gpu: GPU, model: ModelSpec, serving: ServingConfig, file: String) throws {
        let name = (file as NSString).lastPathComponent
        func differ(_ key: String, _ mine: String, _ theirs: String, _ flag: String) -> CalibrationError {
            CalibrationError("\(name): \(key): the profile is for \(mine), this run is for \(theirs) (\(flag), or calibrate for it)")
        }
        if self.gpu != gpu.name { throw differ("gpu", self.gpu, gpu.name, "--gpu \(self.gpu)") }
        if self.model != model.name { throw differ("model", self.model, model.name, "--model \(self.model)") }
        if engine != serving.engine { throw differ("engine", engine.rawValue, serving.engine.rawValue, "--engine \(engine.rawValue)") }
        if let v = engineVersion, v != serving.release { throw differ("engine_version", "\(v)", "\(serving.release)", "--engine-version \(v)") }
        if tensorParallel != serving.tensorParallel { throw differ("tensor_parallel", "TP \(tensorParallel)", "TP \(serving.tensorParallel)", "--tp \(tensorParallel)") }
    }

    /// How reports name the profile: "FILE (N benchmark runs, M start-up logs; throughput ±x %)".
    public func summary(file: String) -> String {
        let runs = inputs.map(\.runs).reduce(0, +), logs = inputs.filter { $0.kind == .vllmStartupLog }.count
        var parts = ["\(runs) benchmark run\(runs == 1 ? "" : "s")", "\(logs) start-up log\(logs == 1 ? "" : "s")"]
        if let t = residuals.first(where: { $0.metric == ServingMetric.throughput.rawValue }) {
            parts.append("throughput residual \(Format.fixed(t.medianAfterPercent, 1)) %")
        }
        return "\((file as NSString).lastPathComponent) (\(parts.joined(separator: ", ")))"
    }
}

/// Fits a calibration profile to benchmark runs and start-up logs of one deployment.
public struct Calibrator {
    public var gpu: GPU
    public var model: ModelSpec
    /// The deployment's settings as the team gives them (`--engine`, `--tp`, the serving flags);
    /// start-up logs add what they state.
    public var settings: ServingSettings
    /// The model name the benchmark files carry when it is not the catalogue's (a fine-tune, a
    /// served name); nil: the catalogue model's own name.
    public var servedModel: String?

    public init(gpu: GPU, model: ModelSpec, settings: ServingSettings, servedModel: String? = nil) {
        self.gpu = gpu
        self.model = model
        self.settings = settings
        self.servedModel = servedModel
    }

    /// The grids the fit searches: kernel-time scale 0.5–2.5 in 5 % steps, host time per step
    /// 0–16 ms.
    public static let deviceScales = (0...33).map { (0.5 * pow(1.05, Double($0)) * 1000).rounded() / 1000 }
    public static let stepOverheads = [0.0, 0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.010, 0.012, 0.016]

    /// Reads, checks and fits.
    /// - Parameter files: (path as given, contents), in the order given.
    /// - Throws: `CalibrationError` for a file that cannot be read or does not match this deployment.
    public func calibrate(files: [(path: String, data: Data)], lengths: (prompt: Int, output: Int)?) throws -> CalibrationProfile {
        guard !files.isEmpty else { throw CalibrationError("no input files: give vllm bench serve or benchmark_throughput JSON, GuideLLM reports or vLLM start-up logs") }
        var inputs: [CalibrationProfile.Input] = [], runs: [BenchmarkRun] = [], logs: [StartupLog] = []
        var seen: [String: String] = [:]
        for (path, data) in files {
            let name = (path as NSString).lastPathComponent
            let hash = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
            if let earlier = seen[hash] { throw CalibrationError("\(name): the same contents as \(earlier): give each run once") }
            seen[hash] = name
            switch try BenchmarkFiles.read(path: path, data: data, lengths: lengths) {
            case let .runs(r):
                for run in r { try checkModel(run) }
                runs += r
                inputs.append(.init(file: name, sha256: hash, kind: r[0].kind, runs: r.count))
            case let .log(l):
                try checkLog(l)
                logs.append(l)
                inputs.append(.init(file: name, sha256: hash, kind: .vllmStartupLog, runs: 0))
            }
        }
        let engine = try resolveEngine(logs)
        var base = settings
        base.engine = engine
        base.engineVersion = try resolveRelease(logs, engine: engine)
        let defaults = Coefficients()

        // Memory: the median of logged − predicted KV over the logs.
        var memoryResiduals: [CalibrationProfile.Residual] = [], memoryDetails: [CalibrationProfile.RunResidual] = []
        var adjustment = 0.0
        if !logs.isEmpty {
            let pairs = try logs.map { log -> (StartupLog, Double, Double) in
                let serving = try resolve(log.settings, over: base, file: log.file)
                let predicted: Double
                do { predicted = try MemoryPlan(gpu: gpu, model: model, serving: serving, constants: defaults.memory).kvBytes / 1_073_741_824 } catch let e as CapacityError {
                    throw CalibrationError("\(log.file): the rules say this configuration does not fit (\(e.description)), but the log sized a KV cache: is it the model and GPU asked for?")
                }
                return (log, try measuredKVGiB(log, serving: serving), predicted)
            }
            adjustment = ((ErrorStatistics.median(pairs.map { $0.1 - $0.2 }) ?? 0) * 1000).rounded() / 1000
            memoryResiduals = [.init(metric: "kv_capacity", before: pairs.map { abs(100 * ($0.2 - $0.1) / $0.1) },
                                     after: pairs.map { abs(100 * ($0.2 + adjustment - $0.1) / $0.1) })]
            memoryDetails = pairs.map { .init(input: $0.0.file, metric: "kv_capacity", measured: round4($0.1), before: round4($0.2), after: round4($0.2 + adjustment)) }
        }

        // Timing: the grid point with the least mean |log(predicted / measured)| over every figure;
        // among points within 1 % of it, the one nearest the defaults.
        let serving = try resolve(ServingSettings(), over: base, file: runs.first?.file ?? "the settings")
        let defaultOverhead = defaults.cost.overhead(for: engine)
        func fitted(_ scale: Double, _ step: Double) -> CalibrationProfile.Fitted {
            .init(deviceTimeScale: scale, stepOverheadSeconds: step, perSequenceOverheadSeconds: defaultOverhead.perSequence,
                  kvAdjustmentGiB: adjustment, fitted: (runs.isEmpty ? [] : ["timing"]) + (logs.isEmpty ? [] : ["memory"]))
        }
        func coefficients(_ scale: Double, _ step: Double) -> Coefficients { fitted(scale, step).applied(to: defaults, engine: engine) }
        var best = (scale: 1.0, step: defaultOverhead.step)
        var timingResiduals: [CalibrationProfile.Residual] = [], timingDetails: [CalibrationProfile.RunResidual] = []
        if !runs.isEmpty {
            var grid: [(scale: Double, step: Double, loss: Double)] = []
            for scale in Self.deviceScales {
                for step in Self.stepOverheads {
                    let figures = try self.figures(runs, serving: serving, coefficients: coefficients(scale, step))
                    grid.append((scale, step, figures.map { abs(Foundation.log($0.predicted / $0.measured)) }.reduce(0, +) / Double(figures.count)))
                }
            }
            let least = grid.map(\.loss).min()!
            func distance(_ p: (scale: Double, step: Double, loss: Double)) -> Double {
                abs(Foundation.log(p.scale)) + abs(p.step - defaultOverhead.step) / 0.002
            }
            let chosen = grid.filter { $0.loss <= least * 1.01 + 1e-9 }.min { distance($0) < distance($1) }!
            best = (chosen.scale, chosen.step)
            let before = try figures(runs, serving: serving, coefficients: coefficients(1, defaultOverhead.step))
            let after = try figures(runs, serving: serving, coefficients: coefficients(best.scale, best.step))
            func errors(_ f: [Figure], _ metric: ServingMetric) -> [Double] {
                f.filter { $0.metric == metric }.map { abs(100 * ($0.predicted - $0.measured) / $0.measured) }
            }
            timingResiduals = ServingMetric.allCases.filter { !errors(after, $0).isEmpty }.map {
                .init(metric: $0.rawValue, before: errors(before, $0), after: errors(after, $0))
            }
            timingDetails = zip(before, after).map { b, a in
                .init(input: a.run, metric: a.metric.rawValue, measured: round4(a.measured), before: round4(b.predicted), after: round4(a.predicted))
            }
        }
        return CalibrationProfile(format: CalibrationProfile.formatName, version: CalibrationProfile.currentVersion, gpu: gpu.name, model: model.name,
                                  engine: engine, engineVersion: base.engineVersion, tensorParallel: serving.tensorParallel, inputs: inputs,
                                  coefficients: fitted(best.scale, best.step),
                                  residuals: timingResiduals + memoryResiduals, runs: timingDetails + memoryDetails)
    }

    struct Figure {
        var run: String
        var metric: ServingMetric
        var measured: Double
        var predicted: Double
    }

    /// Every figure the runs report, simulated with `coefficients`.
    func figures(_ runs: [BenchmarkRun], serving: ServingConfig, coefficients: Coefficients) throws -> [Figure] {
        try runs.flatMap { run -> [Figure] in
            let m = run.measurement
            let result: SimulationResult
            do { result = try m.simulate(gpu: gpu, model: model, serving: serving, coefficients: coefficients) } catch let e as CapacityError {
                throw CalibrationError("\(m.id): \(e.description)")
            } catch let e as MeasurementError {
                throw CalibrationError(e.description)
            }
            return ServingMetric.allCases.compactMap { metric in
                m.measuredValue(metric).map { Figure(run: m.id, metric: metric, measured: $0, predicted: max(m.predictedValue(metric, result), 1e-9)) }
            }
        }
    }

    /// The KV cache a log reports, GiB per GPU: its memory figure, else its blocks or tokens
    /// times the model's bytes per token. Where both are printed they must agree with the
    /// model's bytes per token (else the log is of another model or KV format).
    func measuredKVGiB(_ log: StartupLog, serving: ServingConfig) throws -> Double {
        let perToken = Double(model.layers) * model.kvBytesPerTokenLayer(serving.kvFormat, tp: serving.tensorParallel)
        let tokens = log.kvTokens ?? log.gpuBlocks.map { $0 * serving.blockSize }
        if let gib = log.kvGiB, let tokens, tokens > 0 {
            let implied = gib * 1_073_741_824 / Double(tokens)
            // Pools are whole blocks and "%.2f GiB" rounds: allow 3 %.
            guard abs(implied - perToken) <= 0.03 * perToken else {
                let line = log.lines["kv_tokens"] ?? log.lines["gpu_blocks"] ?? 0
                throw CalibrationError("\(log.file):\(line): \(gib) GiB of KV for \(tokens) tokens is \(Int(implied.rounded())) bytes per token; \(model.name) with \(serving.kvFormat.rawValue) KV at TP \(serving.tensorParallel) needs \(Int(perToken.rounded())): a log of another model or KV format")
            }
        }
        if let gib = log.kvGiB {
            guard gib > 0 else { throw CalibrationError("\(log.file):\(log.lines["kv_gib"] ?? 0): the KV cache is \(gib) GiB: the configuration did not fit") }
            return gib
        }
        return Double(tokens ?? 0) * perToken / 1_073_741_824
    }

    /// The profile's engine: the one given, else the logs' (which must agree), else vLLM V1.
    func resolveEngine(_ logs: [StartupLog]) throws -> ServingEngine {
        if let given = settings.engine {
            if let other = logs.first(where: { $0.engine != given }) {
                throw CalibrationError("\(other.file):\(other.lines["engine"] ?? 0): a \(other.engine.displayName) log, but the profile is for \(given.displayName) (--engine)")
            }
            return given
        }
        if let first = logs.first {
            if let other = logs.first(where: { $0.engine != first.engine }) {
                throw CalibrationError("\(other.file): a \(other.engine.displayName) log beside \(first.file)'s \(first.engine.displayName): one profile is for one engine")
            }
            return first.engine
        }
        return .vllmV1
    }

    /// The profile's release: the one given, else the logs' (which must agree), else none. A log
    /// of another release than the one given is refused: its memory rules are not the deployment's.
    func resolveRelease(_ logs: [StartupLog], engine: ServingEngine) throws -> EngineVersion? {
        let named = logs.compactMap { log in log.settings.engineVersion.map { (log, $0) } }
        if let given = settings.engineVersion {
            if let (log, v) = named.first(where: { $0.1 != given }) {
                throw CalibrationError("\(log.file):\(log.lines["version"] ?? 0): a vLLM \(v) log, but the profile is for \(given) (--engine-version)")
            }
            return given
        }
        guard let (first, v) = named.first else { return nil }
        if let (other, w) = named.first(where: { $0.1 != v }) {
            throw CalibrationError("\(other.file): a vLLM \(w) log beside \(first.file)'s \(v): one profile is for one release (--engine-version picks one)")
        }
        return v
    }

    /// `given` over `base`, resolved for the GPU and model.
    func resolve(_ given: ServingSettings, over base: ServingSettings, file: String) throws -> ServingConfig {
        do { return try base.overridden(by: given).resolve(gpu: gpu, model: model) } catch let e as ServingError {
            throw CalibrationError("\(file): \(e.description)")
        }
    }

    var modelNames: [String] { [model.name] + (servedModel.map { [$0] } ?? []) }

    /// A file's model must be the profile's: its last path component names the catalogue model
    /// (or `servedModel`).
    func checkModel(_ run: BenchmarkRun) throws {
        guard let id = run.modelID, !id.isEmpty else { return }
        let last = (id as NSString).lastPathComponent
        let resolved = ModelCatalog.named(last)?.name
        if modelNames.contains(where: { $0.caseInsensitiveCompare(last) == .orderedSame || $0.caseInsensitiveCompare(id) == .orderedSame }) || resolved == model.name { return }
        throw CalibrationError("\(run.measurement.id): model '\(id)' is not \(model.name), the profile's model (--model; --served-model '\(last)' if it is the same model under another name)")
    }

    func checkLog(_ log: StartupLog) throws {
        if log.pipelineParallel > 1 {
            throw CalibrationError("\(log.file):\(log.lines["config"] ?? 0): pipeline_parallel_size \(log.pipelineParallel): ckv-sim models tensor parallelism within one node only")
        }
        if let name = log.model {
            let resolved = ModelCatalog.named(name)?.name
            if let resolved, resolved != model.name, !modelNames.contains(where: { $0.caseInsensitiveCompare(name) == .orderedSame }) {
                throw CalibrationError("\(log.file):\(log.lines["config"] ?? 0): model '\(name)' is \(resolved), not \(model.name), the profile's model (--model)")
            }
        }
        if let total = log.totalGiB {
            let visible = gpu.visibleBytes / 1_073_741_824
            guard abs(total - visible) <= 0.03 * visible else {
                throw CalibrationError("\(log.file):\(log.lines["total_gpu_memory"] ?? 0): total_gpu_memory \(total) GiB is not \(gpu.name)'s \(Format.fixed(visible, 2)) GiB: a log of another GPU (--gpu)")
            }
        }
        if let tp = log.settings.tensorParallel, let given = settings.tensorParallel, tp != given {
            throw CalibrationError("\(log.file):\(log.lines["config"] ?? 0): tensor_parallel_size \(tp), but the profile is for TP \(given) (--tp)")
        }
    }
}

private func round4(_ x: Double) -> Double {
    guard x != 0, x.isFinite else { return x }
    let digits = 4 - Int(Foundation.log10(abs(x)).rounded(.down)) - 1
    let scale = pow(10, Double(digits))
    return (x * scale).rounded() / scale
}
