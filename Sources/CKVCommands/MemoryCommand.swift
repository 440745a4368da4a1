import ArgumentParser
import Foundation
import Hardware
import Policies
import Simulator

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
        let report = MemoryReport(plan: plan, context: tokens)
        switch format {
        case .json: print(try jsonString(report))
        case .text: print(report.text)
        }
    }
}

/// What `memory` prints, one value for text and JSON.
struct MemoryReport: Encodable {
    struct Row: Encodable {
        var setting: String
        var keptTokens: Int
        var layout: String
        var kvBytesPerRequest: Double
        var maxConcurrency: Int
        enum CodingKeys: String, CodingKey {
            case setting, layout
            case keptTokens = "kept_tokens_per_layer_head"
            case kvBytesPerRequest = "kv_bytes_per_request"
            case maxConcurrency = "max_concurrency"
        }
    }

    var gpu: String
    var model: String
    var tensorParallel: Int
    var context: Int
    var totalBytes, budgetBytes, weightBytes, activationBytes, nonTorchBytes, kvBytes: Double
    var profiledTokens: Int
    var vllmBlocks: Int
    var kvTokens: Int
    var rows: [Row]

    init(plan: MemoryPlan, context: Int) {
        gpu = plan.gpu.name
        model = plan.model.name
        tensorParallel = plan.serving.tensorParallel
        self.context = context
        totalBytes = plan.totalBytes
        budgetBytes = plan.budgetBytes
        weightBytes = plan.weightBytes
        activationBytes = plan.activationBytes
        nonTorchBytes = plan.nonTorchBytes
        kvBytes = plan.kvBytes
        profiledTokens = plan.serving.batchedTokens(for: plan.model)
        vllmBlocks = plan.vllmBlocks
        kvTokens = plan.kvTokens
        var rows: [Row] = []
        func add(_ label: String, _ spec: CompressionSpec?) {
            let kept = spec.kept(prompt: context, blockSize: plan.serving.blockSize)
            let phb = spec.footprint.phb(tokens: context, kept: kept, plan: plan)
            rows.append(Row(setting: label, keptTokens: kept, layout: (spec?.policy.layout ?? .perSequence).label, kvBytesPerRequest: Double(phb) * plan.phbBytes,
                            maxConcurrency: plan.maxConcurrency(spec, prompt: context, output: 0)))
        }
        add("full cache", nil)
        for f in [0.5, 0.25, 0.125, 0.0625, 0.03125, 0.01] {
            add("kv-fraction \(f)", CompressionSpec(policy: .snapKV, budget: .fraction(f)))
        }
        for b in [2048, 1024, 512, 256, 128] where b < context {
            add("budget \(b)", CompressionSpec(policy: .snapKV, budget: .tokens(b)))
            add("budget \(b), KV-Compress", CompressionSpec(policy: .kvCompress, budget: .tokens(b)))
        }
        self.rows = rows
    }

    enum CodingKeys: String, CodingKey {
        case gpu, model, context, rows
        case tensorParallel = "tensor_parallel"
        case totalBytes = "total_bytes", budgetBytes = "budget_bytes", weightBytes = "weight_bytes"
        case activationBytes = "activation_peak_bytes", nonTorchBytes = "non_torch_bytes", kvBytes = "kv_cache_bytes"
        case profiledTokens = "profiled_tokens", vllmBlocks = "vllm_gpu_blocks", kvTokens = "kv_tokens"
    }

    var text: String {
        func g(_ b: Double) -> String { Units.fixed(b / 1_073_741_824, 2) + " GiB" }
        var lines = ["\(model) on \(gpu)\(tensorParallel > 1 ? " × \(tensorParallel) (TP)" : ""), \(context)-token requests; per GPU:", ""]
        lines.append(keyValueLines([
            ("total (CUDA)", g(totalBytes)),
            ("× utilisation", g(budgetBytes)),
            ("− weights", g(weightBytes)),
            ("− activation peak", g(activationBytes) + " (profiling run of \(profiledTokens) tokens)"),
            ("− CUDA/runtime", g(nonTorchBytes)),
            ("= KV cache", g(kvBytes) + " = \(vllmBlocks) blocks of 16 = \(kvTokens) tokens"),
        ]))
        lines.append("")
        var table = [["setting", "kept/layer/head", "KV per request", "max concurrent", "layout"]]
        for r in rows {
            table.append([r.setting, "\(r.keptTokens)", Units.bytes(UInt64(r.kvBytesPerRequest)), "\(r.maxConcurrency)", r.layout])
        }
        lines.append(CKVCommands.table(table, rightAligned: [1, 2, 3]))
        lines.append("")
        lines.append("Max concurrent: one request holds its full KV while it prefills, the others their compressed KV (capped by max-num-seqs). Nominal footprints: every head keeps the budget.")
        return lines.joined(separator: "\n")
    }
}
