import ArgumentParser
import Foundation
import Hardware
import Reporting
import Validation

/// `ckv-sim calibrate`: fits the simulator's free coefficients to a team's own benchmark runs and
/// start-up logs of one GPU, model and engine, and writes the profile `--calibration` reads.
struct CalibrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Fit the simulator to your own runs (vllm bench serve / benchmark_throughput JSON, GuideLLM reports, vLLM start-up logs) and write a calibration profile.",
        discussion: """
        Example: ckv-sim calibrate --gpu H100 --model Llama-3.1-8B-Instruct --engine vllm-v1 run1.json run2.json server.log --out h100-llama8b.json
        Give the server's settings with the same flags as plan (the benchmark files do not record them); start-up logs state their own.
        Then: ckv-sim plan --gpu H100 --model Llama-3.1-8B-Instruct --context 32k --calibration h100-llama8b.json
        Formats, versions and what is fitted: Docs/calibration.md.
        """
    )

    @OptionGroup var hardware: HardwareOptions
    @OptionGroup var servingOptions: ServingOptions

    @Argument(help: "Benchmark result files and start-up logs of this GPU, model and engine.")
    var files: [String] = []

    @Option(name: .customLong("served-model"), help: "The model name the files carry when it is not the catalogue's (a fine-tune of the same shape, a --served-model-name).")
    var servedModel: String?

    @Option(name: .customLong("input-len"), parsing: .unconditional, help: "Prompt tokens per request of benchmark_throughput results (they do not record it).")
    var inputLen: Int?

    @Option(name: .customLong("output-len"), parsing: .unconditional, help: "Output tokens per request of benchmark_throughput results.")
    var outputLen: Int?

    @Option(help: "Write the calibration profile (JSON) here.")
    var out: String

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("give at least one benchmark result or start-up log") }
        if (inputLen == nil) != (outputLen == nil) { throw ValidationError("--input-len and --output-len go together") }
        if let inputLen, inputLen <= 0 { throw ValidationError("--input-len must be positive") }
        if let outputLen, outputLen <= 0 { throw ValidationError("--output-len must be positive") }
    }

    func run() async throws {
        let gpu = try hardware.resolveGPU(), model = try hardware.resolveModel()
        let inputs = try files.map { path -> (path: String, data: Data) in
            guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("\(path): cannot read the file") }
            return (path, data)
        }
        let lengths = inputLen.map { ($0, outputLen!) }
        let calibrator = Calibrator(gpu: gpu, model: model, settings: servingOptions.settings(over: hardware.settings), servedModel: servedModel)
        let profile = try calibrator.calibrate(files: inputs, lengths: lengths)
        try (try JSONOutput.string(profile) + "\n").write(toFile: out, atomically: true, encoding: .utf8)
        print(Self.summary(profile))
        print("wrote \(out)")
    }

    /// What `calibrate` prints: the coefficients, the residual per metric, and every figure.
    static func summary(_ p: CalibrationProfile) -> String {
        let c = p.coefficients
        let runs = p.inputs.map(\.runs).reduce(0, +), logs = p.inputs.filter { $0.kind == .vllmStartupLog }.count
        let timing = c.fitted.contains("timing") ? "fitted" : "default: no benchmark run"
        let memory = c.fitted.contains("memory") ? "fitted" : "default: no start-up log"
        var lines = [
            "\(p.model) on \(p.gpu)\(p.tensorParallel > 1 ? " × \(p.tensorParallel) (TP)" : ""), \(p.engine.displayName): \(runs) benchmark run\(runs == 1 ? "" : "s"), \(logs) start-up log\(logs == 1 ? "" : "s")",
            "",
            Table(pairs: [
                ("kernel time ×", "\(Format.fixed(c.deviceTimeScale, 3)) (\(timing))"),
                ("host time per step", "\(Format.fixed(c.stepOverheadSeconds * 1000, 2)) ms (\(timing))"),
                ("per sequence", "\(Format.fixed(c.perSequenceOverheadSeconds * 1000, 3)) ms (the engine's default)"),
                ("KV cache adjustment", "\(Format.fixed(c.kvAdjustmentGiB, 3)) GiB (\(memory))"),
            ]).text,
            "",
        ]
        var residuals = Table(columns: ["metric", "points", "median |error| defaults", "calibrated", "max calibrated"], rightAligned: [1, 2, 3, 4])
        for r in p.residuals {
            residuals.append([title(r.metric), "\(r.points)", Format.fixed(r.medianBeforePercent, 1) + " %", Format.fixed(r.medianAfterPercent, 1) + " %",
                              Format.fixed(r.maxAfterPercent, 1) + " %"])
        }
        lines.append(residuals.text)
        lines.append("")
        var figures = Table(columns: ["input", "figure", "measured", "defaults", "calibrated"], rightAligned: [2, 3, 4])
        for r in p.runs {
            figures.append([r.input, title(r.metric), Format.figure(r.measured), Format.figure(r.before), Format.figure(r.after)])
        }
        lines.append(figures.text)
        return lines.joined(separator: "\n")
    }

    static func title(_ metric: String) -> String {
        if let m = ServingMetric(rawValue: metric) { return m.title + (m == .throughput ? " (tok/s)" : " (ms)") }
        return metric == "kv_capacity" ? "KV cache (GiB)" : metric
    }
}
