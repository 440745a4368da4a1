import Foundation
import Policies
import Reporting

/// What `memory` prints, one value for text and JSON.
public struct MemoryReport: Encodable, Sendable {
    public struct Row: Encodable, Sendable {
        public var setting: String
        public var keptTokens: Int
        public var layout: String
        public var kvBytesPerRequest: Double
        public var maxConcurrency: Int
        enum CodingKeys: String, CodingKey {
            case setting, layout
            case keptTokens = "kept_tokens_per_layer_head"
            case kvBytesPerRequest = "kv_bytes_per_request"
            case maxConcurrency = "max_concurrency"
        }
    }

    public var gpu: String
    public var model: String
    public var tensorParallel: Int
    public var context: Int
    public var totalBytes, budgetBytes, weightBytes, activationBytes, nonTorchBytes, kvBytes: Double
    /// The fused-MoE scratch buffer the sampler runs beside (`MemoryPlan.persistentMoEWorkspaceBytes`; 0 for a dense model).
    public var moeWorkspaceBytes: Double
    public var profiledTokens: Int
    /// Rows of logits the profiling run's dummy sampling step takes, and the sampler.
    public var profiledRows: Int
    public var sampler: SamplerKind
    public var vllmBlocks: Int
    public var kvTokens: Int
    public var rows: [Row]
    /// The KV capacity's validated error, when the caller has it (`ErrorBand.kvCapacity`).
    public var kvCapacityBand: ErrorBand?
    /// A calibration profile's KV correction, bytes (0 without one), and how the report names the profile.
    public var adjustmentBytes: Double
    public var calibration: String?
    /// The engine whose memory rule and defaults apply, its release, and how the report names both.
    public var engine: ServingEngine
    public var engineVersion: EngineVersion
    public var engineLabel: String { engine.label(engineVersion) }
    /// SGLang's `mem_fraction_static` when memory is sized its way.
    public var memFractionStatic: Double?

    /// The breakdown of `plan` for `context`-token requests, and what one request holds and how
    /// many fit with the full cache and with SnapKV (per-sequence blocks) and KV-Compress (per-head
    /// blocks) at a ladder of kv-fractions and budgets.
    public init(plan: MemoryPlan, context: Int) {
        gpu = plan.gpu.name
        model = plan.model.name
        tensorParallel = plan.serving.tensorParallel
        self.context = context
        totalBytes = plan.totalBytes
        budgetBytes = plan.budgetBytes
        weightBytes = plan.weightBytes
        activationBytes = plan.activationBytes
        moeWorkspaceBytes = MemoryPlan.persistentMoEWorkspaceBytes(model: plan.model, serving: plan.serving)
        nonTorchBytes = plan.nonTorchBytes
        kvBytes = plan.kvBytes
        adjustmentBytes = plan.adjustmentBytes
        let run = MemoryPlan.profilingRun(model: plan.model, serving: plan.serving)
        profiledTokens = run.tokens
        profiledRows = run.rows
        sampler = plan.serving.sampler
        engine = plan.serving.engine
        engineVersion = plan.serving.release
        memFractionStatic = plan.serving.memFractionStatic
        vllmBlocks = plan.vllmBlocks
        kvTokens = plan.kvTokens
        var rows: [Row] = []
        func add(_ label: String, _ policy: PolicyKind?, _ budget: Budget) {
            let b = plan.serving.blockSize
            let kept = policy?.keptTokens(budget, prompt: context, blockSize: b) ?? context
            let footprint = NominalFootprint(layout: policy?.layout ?? .perSequence)
            // The policy's own pool (KV-Compress's metadata and block table); none fits: 0 requests.
            let own = try? plan.with(metadata: policy?.poolMetadata)
            let p = own ?? plan
            rows.append(Row(setting: label, keptTokens: kept, layout: footprint.layout.label,
                            kvBytesPerRequest: Double(footprint.phb(tokens: context, kept: kept, plan: p)) * p.phbBytes,
                            maxConcurrency: own.map { $0.maxConcurrency(footprint: footprint, prompt: context, output: 0, keptAtEnd: kept) } ?? 0))
        }
        add("full cache", nil, .fraction(1))
        for f in [0.5, 0.25, 0.125, 0.0625, 0.03125, 0.01] {
            add("kv-fraction \(f)", .snapKV, .fraction(f))
        }
        for b in [2048, 1024, 512, 256, 128] where b < context {
            add("budget \(b)", .snapKV, .tokens(b))
            add("budget \(b), KV-Compress", .kvCompress, .tokens(b))
        }
        self.rows = rows
    }

    enum CodingKeys: String, CodingKey {
        case gpu, model, context, rows
        case tensorParallel = "tensor_parallel"
        case totalBytes = "total_bytes", budgetBytes = "budget_bytes", weightBytes = "weight_bytes"
        case activationBytes = "activation_peak_bytes", moeWorkspaceBytes = "moe_workspace_bytes", nonTorchBytes = "non_torch_bytes", kvBytes = "kv_cache_bytes"
        case profiledTokens = "profiled_tokens", vllmBlocks = "vllm_gpu_blocks", kvTokens = "kv_tokens"
        case profiledRows = "profiled_sampler_rows", sampler
        case kvCapacityBand = "kv_capacity_error_band", engine
        case engineVersion = "engine_version"
        case memFractionStatic = "mem_fraction_static"
        case adjustmentBytes = "calibration_adjustment_bytes", calibration
    }

    /// The breakdown and the table, as `ckv-sim memory` prints them.
    public var text: String {
        func g(_ b: Double) -> String { Format.fixed(b / 1_073_741_824, 2) + " GiB" }
        var lines = ["\(model) on \(gpu)\(tensorParallel > 1 ? " × \(tensorParallel) (TP)" : ""), \(context)-token requests; \(engineLabel); per GPU:", ""]
        let breakdown: [(String, String)] = memFractionStatic.map { f in [
            ("total (CUDA)", g(totalBytes)),
            ("× mem_fraction_static", g(budgetBytes) + " (\(f))"),
            ("− CUDA context", g(nonTorchBytes) + " (its share of the fraction; activations and CUDA graphs live in the rest)"),
            ("− weights", g(weightBytes)),
        ] } ?? [
            ("total (CUDA)", g(totalBytes)),
            ("× utilisation", g(budgetBytes)),
            ("− weights", g(weightBytes)),
            ("− activation peak", g(activationBytes) + " (profiling run: a \(profiledTokens)-token forward pass, then \(sampler.rawValue) sampling of \(profiledRows) rows\(moeWorkspaceBytes > 0 ? " beside the fused-MoE workspace's \(g(moeWorkspaceBytes))" : ""); the larger peak)"),
            ("− CUDA/runtime", g(nonTorchBytes)),
        ]
        let calibrated: [(String, String)] = calibration.map { [((adjustmentBytes < 0 ? "− " : "+ ") + "calibration", g(abs(adjustmentBytes)) + " (profile \($0): the median of its start-up logs' KV cache less the rules')")] } ?? []
        lines.append(Table(pairs: breakdown + calibrated + [
            ("= KV cache", g(kvBytes) + " = \(vllmBlocks) blocks of 16 = \(kvTokens) tokens"
                + (kvCapacityBand.map { " (\($0.label): 90th percentile error on \($0.points) start-up logs held out of the fit)" } ?? "")),
        ]).text)
        lines.append("")
        var table = Table(columns: ["setting", "kept/layer/head", "KV per request", "max concurrent", "layout"], rightAligned: [1, 2, 3])
        for r in rows {
            table.append([r.setting, "\(r.keptTokens)", Format.bytes(UInt64(r.kvBytesPerRequest)), "\(r.maxConcurrency)", r.layout])
        }
        lines.append(table.text)
        lines.append("")
        lines.append("Max concurrent: one request holds its full KV while it prefills, the others their compressed KV (capped by max-num-seqs). Nominal footprints: every head keeps the budget.")
        return lines.joined(separator: "\n")
    }
}
