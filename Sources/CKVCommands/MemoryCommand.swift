import ArgumentParser
import Foundation
import Hardware
import Reporting
import Validation
import Reporting

/// `ckv-sim memory`: where the GPU's memory goes and how many requests fit.
struct MemoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Memory breakdown (vLLM's arithmetic), KV tokens that fit, and max concurrency with full and compressed KV."
    )

    @OptionGroup var hardware: HardwareOptions

    @Option(help: "Tokens per request (prompt + output): 131072, 128k, 32K …")
    var context: String

    @Option(name: .customLong("gpu-memory-utilization"), help: "vLLM's --gpu-memory-utilization.")
    var utilisation: Double = 0.9

    @Option(name: .customLong("max-num-seqs"), help: "vLLM's --max-num-seqs.")
    var maxNumSeqs: Int = 256

    @Option(name: .customLong("max-num-batched-tokens"), help: "vLLM's --max-num-batched-tokens (default: 8192 with chunked prefill, else max-model-len).")
    var maxNumBatchedTokens: Int?

    @Flag(inversion: .prefixedEnableDisable, help: "Chunked prefill (decides the profiling run's token count).")
    var chunkedPrefill = true

    @Option(help: "Output format: text, json.")
    var format: OutputFormat = .text

    func validate() throws {
        guard let c = parseTokenCount(context), c > 0 else { throw ValidationError("--context '\(context)' is not a token count (e.g. 131072, 128k)") }
        guard utilisation > 0, utilisation <= 1 else { throw ValidationError("--gpu-memory-utilization must be in (0, 1]") }
        guard maxNumSeqs > 0 else { throw ValidationError("--max-num-seqs must be positive") }
    }

    func run() async throws {
        let gpu = try hardware.resolveGPU(), model = try hardware.resolveModel()
        let tokens = parseTokenCount(context)!
        guard tokens <= model.maxContext else {
            throw CLIError("--context \(tokens) exceeds the maximum context of \(model.name), \(model.maxContext) tokens")
        }
        var serving = ServingConfig()
        hardware.apply(to: &serving)
        serving.gpuMemoryUtilization = utilisation
        serving.maxNumSeqs = maxNumSeqs
        serving.maxNumBatchedTokens = maxNumBatchedTokens
        serving.chunkedPrefill = chunkedPrefill
        serving.maxModelLen = tokens
        let plan = try MemoryPlan(gpu: gpu, model: model, serving: serving)
        var report = MemoryReport(plan: plan, context: tokens)
        report.kvCapacityBand = try ErrorBand.kvCapacity()
        switch format {
        case .json: print(try JSONOutput.string(report))
        case .text: print(report.text)
        }
    }
}
