import ArgumentParser
import Foundation
import Hardware
import Reporting
import Validation

/// `ckv-sim memory`: where the GPU's memory goes and how many requests fit.
struct MemoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Memory breakdown (vLLM's arithmetic), KV tokens that fit, and max concurrency with full and compressed KV."
    )

    @OptionGroup var hardware: HardwareOptions
    @OptionGroup var servingOptions: ServingOptions
    @OptionGroup var calibrationOptions: CalibrationOptions

    @Option(parsing: .unconditional, help: "Tokens per request (prompt + output): 131072, 128k, 32K …")
    var context: String

    @Option(help: "Output format: text, json.")
    var format: OutputFormat = .text

    func validate() throws {
        guard let c = parseTokenCount(context), c > 0 else { throw ValidationError("--context '\(context)' is not a token count (e.g. 131072, 128k)") }
    }

    func run() async throws {
        let gpu = try hardware.resolveGPU(), model = try hardware.resolveModel()
        let tokens = parseTokenCount(context)!
        guard tokens <= model.maxContext else {
            throw CLIError("--context \(tokens) exceeds the maximum context of \(model.name), \(model.maxContext) tokens")
        }
        let profile = try calibrationOptions.profile()
        var settings = calibrationOptions.settings(servingOptions.settings(over: hardware.settings), profile: profile)
        settings.maxModelLen = tokens
        let serving = try settings.resolve(gpu: gpu, model: model)
        let (coefficients, calibration) = try calibrationOptions.coefficients(profile, gpu: gpu, model: model, serving: serving)
        let plan = try MemoryPlan(gpu: gpu, model: model, serving: serving, constants: coefficients.memory)
        var report = MemoryReport(plan: plan, context: tokens)
        report.calibration = calibration
        report.kvCapacityBand = try ErrorBand.kvCapacity()
        switch format {
        case .json: print(try JSONOutput.string(report))
        case .text: print(report.text)
        }
    }
}
