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

    @Option(help: "Tokens per request (prompt + output): 131072, 128k, 32K …")
    var context: String

    @Option(name: .customLong("gpu-memory-utilization"), help: "vLLM's --gpu-memory-utilization.")
    var utilisation: Double = 0.9

    @Option(help: "The engine whose memory rule and defaults apply: vllm-v1 (vLLM 0.9 and later), vllm-v0 (0.6.x) or sglang (0.4.x).")
    var engine: ServingEngine = .vllmV1

    @Option(name: .customLong("mem-fraction-static"), help: "With --engine sglang: SGLang's --mem-fraction-static (default: its 0.4.x default for the TP degree).")
    var memFractionStatic: Double?

    @Option(name: .customLong("max-num-seqs"), help: "vLLM's --max-num-seqs (default: the engine's for this GPU).")
    var maxNumSeqs: Int?

    @Option(name: .customLong("max-num-batched-tokens"), help: "vLLM's --max-num-batched-tokens (default: the engine's for this GPU).")
    var maxNumBatchedTokens: Int?

    @Flag(inversion: .prefixedEnableDisable, help: "Chunked prefill (decides the profiling run's token count; default: the engine's).")
    var chunkedPrefill: Bool?

    @Option(help: "Output format: text, json.")
    var format: OutputFormat = .text

    func validate() throws {
        guard let c = parseTokenCount(context), c > 0 else { throw ValidationError("--context '\(context)' is not a token count (e.g. 131072, 128k)") }
        guard utilisation > 0, utilisation <= 1 else { throw ValidationError("--gpu-memory-utilization must be in (0, 1]") }
        if let memFractionStatic {
            guard engine == .sglang else { throw ValidationError("--mem-fraction-static goes with --engine sglang") }
            guard memFractionStatic > 0, memFractionStatic <= 1 else { throw ValidationError("--mem-fraction-static must be in (0, 1]") }
        }
        if let maxNumSeqs { guard maxNumSeqs > 0 else { throw ValidationError("--max-num-seqs must be positive") } }
        if let maxNumBatchedTokens { guard maxNumBatchedTokens > 0 else { throw ValidationError("--max-num-batched-tokens must be positive") } }
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
        // What is not given is the engine's default for this GPU.
        let d = engine.defaults(gpu: gpu, maxModelLen: tokens)
        let chunked = chunkedPrefill ?? d.chunkedPrefill
        serving.chunkedPrefill = chunked
        serving.maxNumSeqs = maxNumSeqs ?? d.maxNumSeqs
        serving.maxNumBatchedTokens = maxNumBatchedTokens ?? (chunked ? (d.chunkedPrefill ? d.maxNumBatchedTokens : 2048) : max(tokens, 2048))
        serving.maxModelLen = tokens
        serving.memFractionStatic = memFractionStatic ?? engine.memFractionStatic(tensorParallel: serving.tensorParallel)
        let plan = try MemoryPlan(gpu: gpu, model: model, serving: serving)
        var report = MemoryReport(plan: plan, context: tokens)
        report.kvCapacityBand = try ErrorBand.kvCapacity()
        report.engine = engine.rawValue
        switch format {
        case .json: print(try JSONOutput.string(report))
        case .text: print(report.text)
        }
    }
}
