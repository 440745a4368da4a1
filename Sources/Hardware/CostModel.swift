import Policies

/// The work of one engine step, as the scheduler formed it.
public struct StepWork: Equatable, Sendable {
    /// Tokens of prompts (or prompt chunks) processed in this step.
    public var prefillTokens: Int = 0
    /// Σ over prefill chunks of chunk × (tokens before the chunk + chunk/2): the causal
    /// attention area, per global layer.
    public var prefillAttentionArea: Double = 0
    /// Same, with each chunk's context capped at the sliding window (local layers).
    public var prefillLocalArea: Double = 0
    /// Sequences with a prompt chunk in this step.
    public var prefillSequences: Int = 0
    /// Sequences decoding one token in this step.
    public var decodeSequences: Int = 0
    /// Σ over decoding sequences of the KV tokens their attention reads, summed over layers
    /// (kept tokens on global layers, at most the window on local ones), per KV head.
    public var decodeTokenLayers: Double = 0
    /// Rows of logits computed (one per decoding sequence and per prompt that completes).
    public var logitRows: Int = 0
    /// Seconds of compression scoring and compaction attached to this step.
    public var compressionSeconds: Double = 0
    /// Decoding sequences whose policy updates eviction metrics every step (KV-Compress).
    public var metricSequences: Int = 0
    /// KV slots (tokens × layers × KV heads) of the whole pool whose metrics such a policy clears
    /// and accumulates every decode step; 0 when no policy does.
    public var metricPoolSlots: Double = 0
    /// The kernel the step's decodes attend with: the engine's own, or a policy's fork's
    /// (`PolicyKind.decodeAttention`).
    public var decodeAttention: DecodeAttention = .engine

    public init() {}
}

/// A step's time, split the way a report can show it.
public struct StepTime: Equatable, Sendable {
    public var linear: Double
    public var attention: Double
    public var lmHead: Double
    public var communication: Double
    public var compression: Double
    public var overhead: Double
    public var total: Double { linear + attention + lmHead + communication + compression + overhead }
}

/// Efficiency factors and fixed costs of the roofline (each documented in `Docs/simulator.md`).
public struct CostConstants: Codable, Equatable, Sendable {
    /// Fraction of dense peak a large GEMM reaches in a benchmark of it alone (cuBLAS bf16 on
    /// A100/H100 reaches 70–80 % at large sizes); `sustainedComputeScale` slows it for serving.
    public var gemmEfficiency = 0.70
    /// Fraction of peak memory bandwidth a weight-streaming GEMV/GEMM reaches (0.80: decode
    /// steps of vLLM on A100 read weights at 75–85 % of peak).
    public var memoryEfficiency = 0.80
    /// Fraction of dense peak FlashAttention reaches in prefill (FlashAttention-2: 50–73 % on A100).
    public var attentionComputeEfficiency = 0.50
    /// Fraction of peak bandwidth paged decode attention reaches reading KV (PagedAttention:
    /// lower than a dense GEMV: scattered 16-token blocks).
    public var attentionMemoryEfficiency = 0.60
    /// vLLM V0's scheduler and Python overhead per step, seconds (vLLM 0.6 with its async output
    /// processing).
    public var stepOverhead = 0.004
    /// vLLM V0's additional overhead per sequence in the step (block-table building, sampling), seconds.
    public var perSequenceOverhead = 0.000_02
    /// The same two for the other engines (any engine absent here takes V0's, with no API-server
    /// time), by `ServingEngine` raw value, and their API servers' time per request, fitted to the
    /// `fit` split of the published serving runs (`Validation.fitServingOverheads`, with
    /// `sustainedComputeScale`; Docs/validation.md).
    public var engineOverheads: [String: EngineOverhead] = [
        ServingEngine.vllmV1.rawValue: EngineOverhead(step: 0.0015, perSequence: 0, perRequest: 0.035),
        ServingEngine.sglang.rawValue: EngineOverhead(step: 0.0015, perSequence: 0, perRequest: 0.008),
    ]

    /// Host time per step, per sequence in it and per request (API server) for `engine`.
    public func overhead(for engine: ServingEngine) -> EngineOverhead {
        engineOverheads[engine.rawValue] ?? EngineOverhead(step: stepOverhead, perSequence: perSequenceOverhead)
    }
    /// Latency of one all-reduce, seconds.
    public var allReduceLatency = 0.000_010
    /// Host work per decoding sequence per step of a policy that updates eviction metrics every
    /// step (vllm-kvcompress: about three GPU-to-host syncs and the Python around them), seconds.
    /// Fitted to the four KV-Compress L4 multipliers (`ckv-sim validate`); the 70B-FP8 H100 rows
    /// check it.
    public var decodeMetricPerSequence = 0.000_4
    /// Bytes read and written per KV slot of the pool for those metrics every decode step
    /// (a float32 memset of the step's scratch, then metrics += scratch² summed over queries:
    /// about 76 bytes per slot in vllm-kvcompress).
    public var decodeMetricBytesPerSlot = 76.0
    /// vLLM's paged-attention decode kernel (v1/v2, one thread block per query head) against
    /// FlashAttention's over the same cache, for a model without grouped queries: vLLM PR #3010
    /// measured FlashAttention 10 % and more faster on an A800 (benchmark_paged_attention.py).
    /// Applies to engines that run that kernel (`DecodeAttention.perHeadPaged`).
    public var pagedAttentionSlowdown = 1.1
    /// What each further query head of a KV group costs that kernel, as a share of the first read
    /// of its KV head (the re-reads are served mostly by L2): vLLM PR #2744 measured 68.6 µs for
    /// paged attention v1 against 27.4 µs for FlashAttention with 64 query / 8 KV heads, batch 4,
    /// 1,024 tokens, bf16, A100-40GB: 2.50× = 1.1 × (1 + 7 × 0.18).
    public var pagedAttentionReread = 0.18
    /// Bytes that kernel moves per key per query head for KV-Compress's metrics: the key's
    /// attention written as float32 and its int32 position read
    /// (kvcompress_attention_kernels.cu, `kv_metric_out`, `kv_position`).
    public var pagedAttentionMetricBytes = 8.0
    /// Kernel launches and Python module calls of one layer in a step that does not replay a CUDA
    /// graph (eager mode, prefill steps of vLLM V0 and SGLang, batches above the capture sizes),
    /// seconds: about a dozen launches of 5–10 µs each.
    public var eagerLaunchPerLayer = 0.000_1
    /// Take GEMM, attention and all-reduce times from the measured kernel tables where the GPU
    /// has them (`KernelTables`); false: the roofline everywhere.
    public var kernelTables = true
    /// Multiplies the compute-bound share of a measured kernel's time (GEMMs and prefill attention
    /// from `KernelTables`): the tables time each kernel alone, for a few iterations, while a
    /// serving GPU runs them back to back for minutes, at the lower clocks its power limit allows,
    /// with the norms, activations and rotary embeddings between them. The share is the kernel's
    /// ideal time at peak over its measured time (near 1 for a large prefill GEMM, near 0 for a
    /// decode step's weight streaming). Fitted to the `fit` split of the serving runs.
    public var sustainedComputeScale = 1.6
    /// Multiplies every kernel's time (GEMMs, attention, LM head, all-reduce): 1 by default;
    /// `ckv-sim calibrate` fits it to a team's own runs of one GPU, model and engine (a clock
    /// or power limit, a different kernel library, a slower interconnect than the catalogue's).
    public var deviceTimeScale = 1.0
    /// Multiplies one catalogue GPU's GEMM, attention and LM-head times (by `GPU.name`; absent: 1),
    /// on top of `deviceTimeScale`: what the `fit` split of the serving runs, all of dense models,
    /// says the GPU sustains in serving against its measured kernel tables or roofline
    /// (`Validation.fitServingOverheads`). A measured MoE layer and the links between GPUs are not
    /// scaled: no fit run exercises them.
    public var gpuTimeScales: [String: Double] = ["H100-80G-SXM": 1.5]

    public init() {}

    enum CodingKeys: String, CodingKey {
        case gemmEfficiency, memoryEfficiency, attentionComputeEfficiency, attentionMemoryEfficiency, stepOverhead,
             perSequenceOverhead, engineOverheads, allReduceLatency, eagerLaunchPerLayer, decodeMetricPerSequence, decodeMetricBytesPerSlot, kernelTables,
             pagedAttentionSlowdown, pagedAttentionReread, pagedAttentionMetricBytes,
             deviceTimeScale, sustainedComputeScale, gpuTimeScales
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CostConstants()
        gemmEfficiency = try c.decodeIfPresent(Double.self, forKey: .gemmEfficiency) ?? d.gemmEfficiency
        memoryEfficiency = try c.decodeIfPresent(Double.self, forKey: .memoryEfficiency) ?? d.memoryEfficiency
        attentionComputeEfficiency = try c.decodeIfPresent(Double.self, forKey: .attentionComputeEfficiency) ?? d.attentionComputeEfficiency
        attentionMemoryEfficiency = try c.decodeIfPresent(Double.self, forKey: .attentionMemoryEfficiency) ?? d.attentionMemoryEfficiency
        stepOverhead = try c.decodeIfPresent(Double.self, forKey: .stepOverhead) ?? d.stepOverhead
        perSequenceOverhead = try c.decodeIfPresent(Double.self, forKey: .perSequenceOverhead) ?? d.perSequenceOverhead
        engineOverheads = try c.decodeIfPresent([String: EngineOverhead].self, forKey: .engineOverheads) ?? d.engineOverheads
        allReduceLatency = try c.decodeIfPresent(Double.self, forKey: .allReduceLatency) ?? d.allReduceLatency
        eagerLaunchPerLayer = try c.decodeIfPresent(Double.self, forKey: .eagerLaunchPerLayer) ?? d.eagerLaunchPerLayer
        decodeMetricPerSequence = try c.decodeIfPresent(Double.self, forKey: .decodeMetricPerSequence) ?? d.decodeMetricPerSequence
        decodeMetricBytesPerSlot = try c.decodeIfPresent(Double.self, forKey: .decodeMetricBytesPerSlot) ?? d.decodeMetricBytesPerSlot
        kernelTables = try c.decodeIfPresent(Bool.self, forKey: .kernelTables) ?? d.kernelTables
        pagedAttentionSlowdown = try c.decodeIfPresent(Double.self, forKey: .pagedAttentionSlowdown) ?? d.pagedAttentionSlowdown
        pagedAttentionReread = try c.decodeIfPresent(Double.self, forKey: .pagedAttentionReread) ?? d.pagedAttentionReread
        pagedAttentionMetricBytes = try c.decodeIfPresent(Double.self, forKey: .pagedAttentionMetricBytes) ?? d.pagedAttentionMetricBytes
        deviceTimeScale = try c.decodeIfPresent(Double.self, forKey: .deviceTimeScale) ?? d.deviceTimeScale
        sustainedComputeScale = try c.decodeIfPresent(Double.self, forKey: .sustainedComputeScale) ?? d.sustainedComputeScale
        gpuTimeScales = try c.decodeIfPresent([String: Double].self, forKey: .gpuTimeScales) ?? d.gpuTimeScales
    }

    /// The constants `ckv-sim validate --calibrate` fits to KV-Compress's four L4 throughput
    /// multipliers (a grid search minimising their median error, with the fork's mechanisms
    /// modelled: eager mode, per-sequence metric syncs, full-pool metric updates, its pool's
    /// metadata, its per-query-head paged-attention kernel): 0.4 ms of host work per KV-Compress
    /// sequence per step (the defaults' value), 8 ms per step for vLLM 0.6 (the defaults: 4 ms),
    /// and 0.50 of peak for a power-capped L4's GEMMs before the sustained-compute slowdown (0.31
    /// after it; the L4 has no measured kernel tables). In-sample for the L4 rows; shown beside the
    /// defaults in `Docs/validation.md`, not used by default.
    public static var calibratedKVCompressL4: CostConstants {
        var c = CostConstants()
        c.decodeMetricPerSequence = 0.0004
        c.stepOverhead = 0.008
        c.gemmEfficiency = 0.50
        return c
    }
}

/// Every free coefficient of the simulator: the cost model's and the memory plan's. The defaults
/// are the ones fitted to the published measurements; a calibration profile replaces them for
/// one GPU, model and engine.
public struct Coefficients: Equatable, Sendable {
    public var cost: CostConstants
    public var memory: MemoryConstants
    public init(cost: CostConstants = CostConstants(), memory: MemoryConstants = .fitted) {
        self.cost = cost
        self.memory = memory
    }
}

/// An engine's host time per step: a fixed part and a part per sequence in the step, seconds;
/// and its API server's time per request (`perRequest`).
public struct EngineOverhead: Codable, Equatable, Sendable {
    public var step: Double
    public var perSequence: Double
    /// The API server's front-end time per request, seconds (receiving it, the chat template,
    /// tokenising, and streaming its tokens back): one process serves requests one after another,
    /// so a burst reaches the engine at most one per `perRequest`. Offline runs (`LLM()`) skip it.
    public var perRequest: Double

    public init(step: Double, perSequence: Double, perRequest: Double = 0) {
        self.step = step
        self.perSequence = perSequence
        self.perRequest = perRequest
    }

    enum CodingKeys: String, CodingKey { case step, perSequence, perRequest }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        step = try c.decode(Double.self, forKey: .step)
        perSequence = try c.decode(Double.self, forKey: .perSequence)
        perRequest = try c.decodeIfPresent(Double.self, forKey: .perRequest) ?? 0
    }
}

/// Where a cost model's figures come from: per part, the measured kernel tables or the roofline,
/// and why the roofline where it is used. Every report prints `description`.
public struct CostSource: Codable, Equatable, Sendable {
    /// "measured" or "roofline", for the GEMMs (linear layers and LM head), attention and the
    /// tensor-parallel all-reduces ("none" without tensor parallelism).
    public var linear: String
    public var attention: String
    public var communication: String
    /// The tables used: "aiconfigurator-core 0.12.0, vllm 0.14.0 on NVIDIA A100-SXM4-80GB"; nil when none.
    public var tables: String?
    /// Why a part uses the roofline.
    public var reasons: [String]

    /// One line: "measured kernel tables (…) for GEMM, attention, all-reduce" or "roofline (…)".
    public var description: String {
        let parts = [("GEMM", linear), ("attention", attention), ("all-reduce", communication)]
        let measured = parts.filter { $0.1 == "measured" }.map(\.0), estimated = parts.filter { $0.1 == "roofline" }.map(\.0)
        var out: [String] = []
        if let tables, !measured.isEmpty { out.append("measured kernel times (\(tables)) for \(measured.joined(separator: ", "))") }
        if !estimated.isEmpty {
            out.append("roofline for \(estimated.joined(separator: ", "))" + (reasons.isEmpty ? "" : " (\(reasons.joined(separator: "; ")))"))
        } else if !reasons.isEmpty {
            out.append(reasons.joined(separator: "; "))
        }
        return out.joined(separator: "; ")
    }
}

/// Predicts the wall time of one engine step. Where the GPU has measured kernel tables
/// (`KernelTables`: vLLM's GEMMs, FlashAttention/FlashInfer prefill and decode attention and its
/// custom all-reduce, by shape) each part is their interpolated time; elsewhere, and for shapes or
/// formats the tables lack, a roofline: each part takes the larger of its compute time
/// (FLOPs ÷ (peak × efficiency)) and its memory time (bytes ÷ (bandwidth × efficiency)).
///
/// - Linear layers: 2 × linear parameters × tokens FLOPs against reading the weights once per step.
/// - Attention: prefill 4 × heads × head_dim × causal area FLOPs per layer; decode reads each
///   sequence's *kept* KV once (4 × heads × head_dim FLOPs per KV token).
/// - LM head: one row of logits per decoding sequence and per completed prompt.
/// - Tensor parallelism: two all-reduces of tokens × hidden activations per layer over the link.
/// - A fixed scheduler overhead per step and a small one per sequence; a step that does not replay
///   a CUDA graph (`ServingEngine.replaysGraph`) also pays each layer's kernel launches.
public struct CostModel: Sendable {
    public var gpu: GPU
    public var model: ModelSpec
    public var serving: ServingConfig
    public var constants: CostConstants

    public init(gpu: GPU, model: ModelSpec, serving: ServingConfig, constants: CostConstants = CostConstants()) {
        self.gpu = gpu
        self.model = model
        self.serving = serving
        self.constants = constants
        tp = Double(serving.tensorParallel)
        // The roofline's compute rates at the clocks a serving GPU sustains (the same slowdown as
        // the measured kernels' compute-bound share; `sustainedComputeScale`).
        gemmFLOPS = gpu.flops(serving.weightFormat.computeFormat) * constants.gemmEfficiency / constants.sustainedComputeScale
        attentionFLOPS = gpu.flops(.bf16) * constants.attentionComputeEfficiency / constants.sustainedComputeScale
        peakGEMMFLOPS = gpu.flops(serving.weightFormat.computeFormat)
        peakAttentionFLOPS = gpu.flops(.bf16)
        bandwidth = gpu.bandwidthGBps * 1e9
        globalLayers = Double(model.globalLayers)
        localLayers = Double(model.localLayers)
        // Per layer: what every token multiplies by; a mixture's experts apart.
        denseParametersPerLayer = model.sharedParametersPerLayer
        kvBytesPerTokenLayer = model.kvBytesPerTokenLayer(serving.kvFormat, tp: serving.tensorParallel)
        gpuTimeScale = constants.gpuTimeScales[gpu.name] ?? 1

        let tables = constants.kernelTables ? KernelTables.named(gpu.name) : nil
        let t = serving.tensorParallel
        qHeadsPerGPU = model.heads / t
        kvHeadsPerGPU = model.kvHeadsPerGPU(tp: t)
        // FP8 weights on a GPU without FP8 tensor cores (Ampere) run weight-only (vLLM's Marlin
        // kernels upcast to bf16 in the GEMM): timed by the bf16 tables, at the bf16 rate.
        let upcastFP8 = serving.weightFormat == .fp8 && gpu.denseTFLOPS[.fp8] == nil
        gemmType = switch serving.weightFormat {
        case .bf16: "bf16"
        case .fp8: upcastFP8 ? "bf16" : "fp8"
        case .int4: nil
        }
        var reasons: [String] = []
        if constants.kernelTables, tables == nil {
            reasons.append("no measured kernel tables for \(gpu.name); they exist for \(KernelTables.available.joined(separator: ", "))")
        }
        var linearTables: KernelTables?
        if let tables {
            if let gemmType, tables.gemmTypes.contains(gemmType), tables.gemmTypes.contains("bf16") {
                linearTables = tables
            } else {
                reasons.append("no \(serving.weightFormat.rawValue) GEMM table (\(tables.gemmTypes.joined(separator: ", ")))")
            }
        }
        var attentionTables: KernelTables?
        if let tables {
            if model.headDim != KernelTables.headDim {
                reasons.append("attention tables are for head_dim \(KernelTables.headDim), the model's is \(model.headDim)")
            } else if serving.kvFormat == .fp8 {
                reasons.append("attention tables are for a bf16 KV cache")
            } else if !tables.coversAttention(heads: qHeadsPerGPU, kvHeads: kvHeadsPerGPU) {
                reasons.append("no attention table for \(qHeadsPerGPU) query / \(kvHeadsPerGPU) KV heads per GPU")
            } else {
                attentionTables = tables
            }
        }
        var communicationTables: KernelTables?
        if let tables, t > 1 {
            if tables.allReduceSizes.contains(t) { communicationTables = tables } else { reasons.append("no all-reduce table for TP \(t)") }
        }
        let d = model.headDim, h = model.hidden, ffn = model.intermediate / t
        // vLLM's fused projections per layer: QKV, output, gate+up, down (column/row-parallel
        // shards); a mixture's experts are one fused MoE layer, measured where the tables have the
        // model's shape at this TP (fp8: block-scaled first, as the Qwen3 FP8 checkpoints are).
        var projections = [(n: (qHeadsPerGPU + 2 * kvHeadsPerGPU) * d, k: h), (n: h, k: qHeadsPerGPU * d)]
        if !model.isMoE { projections += [(n: 2 * ffn, k: h), (n: h, k: ffn)] }
        var moeLayer: Curve?
        if model.isMoE, let tables {
            let dtypes = switch serving.weightFormat {
            case .bf16: ["bf16"]
            case .fp8: upcastFP8 ? ["bf16"] : ["fp8_block", "fp8"]
            case .int4: [String]()
            }
            moeLayer = dtypes.lazy.compactMap {
                tables.moeCurve($0, tp: t, hidden: h, intermediate: model.intermediate, activeExperts: model.activeExperts, experts: model.experts)
            }.first
            if moeLayer == nil {
                reasons.append("roofline for the \(model.experts) experts (no \(serving.weightFormat.rawValue) MoE table for this shape at TP \(t))")
            }
        }
        moeLayerTime = moeLayer
        layerGEMMs = gemmType.flatMap { linearTables?.gemmCurve($0, shapes: projections) }
        lmHeadGEMM = linearTables?.gemmCurve("bf16", shapes: [(n: model.vocab / t, k: h)])
        contextAttention = attentionTables?.attentionRows(context: true, heads: qHeadsPerGPU, kvHeads: kvHeadsPerGPU)
        generationAttention = attentionTables?.attentionRows(context: false, heads: qHeadsPerGPU, kvHeads: kvHeadsPerGPU)
        allReduceTable = communicationTables
        let label = { (x: KernelTables?) in x == nil ? "roofline" : "measured" }
        source = CostSource(linear: label(linearTables), attention: label(attentionTables),
                            communication: t == 1 ? "none" : label(communicationTables),
                            tables: tables.map { "\($0.source), \($0.framework) on \($0.device)" }, reasons: reasons)
    }

    /// Where this model's figures come from.
    public let source: CostSource
    // The measured times this model reads, resolved once (nil: the roofline).
    private let layerGEMMs: Curve?
    private let moeLayerTime: Curve?
    private let lmHeadGEMM: Curve?
    private let contextAttention: HeadRows?
    private let generationAttention: HeadRows?
    private let allReduceTable: KernelTables?
    private let qHeadsPerGPU: Int
    private let kvHeadsPerGPU: Int
    private let gemmType: String?

    // Derived once: the step loop calls `stepTime` for every engine step.
    private let tp: Double
    private let gemmFLOPS: Double
    private let attentionFLOPS: Double
    /// Peak dense rates (no efficiency): what a measured kernel's compute-bound share is taken against.
    private let peakGEMMFLOPS: Double
    private let peakAttentionFLOPS: Double
    private let bandwidth: Double
    private let globalLayers: Double
    private let localLayers: Double
    private let denseParametersPerLayer: Double
    private let kvBytesPerTokenLayer: Double
    /// `CostConstants.gpuTimeScales` for this GPU.
    private let gpuTimeScale: Double

    /// The time of one step doing `work`.
    public func stepTime(_ work: StepWork) -> StepTime {
        let tokens = Double(work.prefillTokens + work.decodeSequences)
        let sequences = Double(work.decodeSequences + work.prefillSequences)

        // `experts`: a measured MoE layer's time (on the roofline the experts are in `linear`).
        var linear = 0.0, experts = 0.0
        if tokens > 0 {
            let layers = Double(model.layers), bytes = serving.weightFormat.linearBytes
            if let layerGEMMs {
                let measured = layerGEMMs.value(tokens, power: 1)
                linear = layers * sustained(measured, ideal: 2 * denseParametersPerLayer / tp * tokens / peakGEMMFLOPS)
            } else {
                linear = layers * max(2 * denseParametersPerLayer / tp * tokens / gemmFLOPS,
                                      denseParametersPerLayer * bytes / tp / (bandwidth * constants.memoryEfficiency))
            }
            if model.isMoE {
                // Each token's active experts compute; the experts the step touches stream their weights.
                let expert = model.mlpParametersPerExpert / tp
                let flops = 2 * expert * Double(model.activeExperts) * tokens
                if let moeLayerTime {
                    experts = layers * sustained(moeLayerTime.value(tokens, power: 1), ideal: flops / peakGEMMFLOPS)
                } else {
                    let read = expert * model.expertsTouched(tokens: tokens) * bytes
                    linear += layers * max(flops / gemmFLOPS, read / (bandwidth * constants.memoryEfficiency))
                }
            }
        }

        let qHeads = Double(model.heads) / tp
        let perArea = 4 * qHeads * Double(model.headDim)
        let prefillFlops = perArea * (work.prefillAttentionArea * globalLayers + work.prefillLocalArea * localLayers)
        let decodeFlops = 4 * qHeads * Double(model.headDim) * work.decodeTokenLayers
        let decodeBytes = work.decodeTokenLayers * kvBytesPerTokenLayer
        var attention: Double, decodeAttentionTime: Double
        if let contextAttention, let generationAttention {
            (attention, decodeAttentionTime) = measuredAttention(contextAttention, generationAttention, work, idealPrefill: prefillFlops / peakAttentionFLOPS)
        } else {
            attention = prefillFlops / attentionFLOPS
            decodeAttentionTime = max(decodeFlops / attentionFLOPS, decodeBytes / (bandwidth * constants.attentionMemoryEfficiency))
        }
        if work.decodeAttention == .perHeadPaged, decodeAttentionTime > 0 {
            // The fork's kernel: each query head re-reads its KV head, and writes every key's
            // attention for the eviction metrics.
            let group = Double(qHeadsPerGPU) / Double(kvHeadsPerGPU)
            decodeAttentionTime *= constants.pagedAttentionSlowdown * (1 + constants.pagedAttentionReread * (group - 1))
            decodeAttentionTime += work.decodeTokenLayers * Double(qHeadsPerGPU) * constants.pagedAttentionMetricBytes
                / (bandwidth * constants.attentionMemoryEfficiency)
        }
        attention += decodeAttentionTime

        let rows = Double(work.logitRows)
        let headParams = Double(model.vocab) * Double(model.hidden) / tp
        let lmHead: Double
        if rows == 0 {
            lmHead = 0
        } else if let lmHeadGEMM {
            lmHead = lmHeadGEMM.value(rows, power: 1)
        } else {
            lmHead = max(2 * headParams * rows / gemmFLOPS, headParams * 2 / (bandwidth * constants.memoryEfficiency))
        }

        var communication = 0.0
        if serving.tensorParallel > 1, tokens > 0, let t = allReduceTable,
           let once = t.allReduce(gpus: serving.tensorParallel, elements: tokens * Double(model.hidden)) {
            communication = 2 * Double(model.layers) * once
        } else if serving.tensorParallel > 1, tokens > 0 {
            let bytes = tokens * Double(model.hidden) * 2
            let perReduce = 2 * (tp - 1) / tp * bytes / (gpu.interconnect.gbPerSecond * 1e9) + constants.allReduceLatency
            communication = 2 * Double(model.layers) * perReduce
        }
        let host = constants.overhead(for: serving.engine)
        var overhead = tokens == 0 ? 0 : host.step + host.perSequence * sequences
        if tokens > 0, !(serving.cudaGraphs && serving.engine.replaysGraph(prefillTokens: work.prefillTokens, decodeSequences: work.decodeSequences,
                                                                           maxNumSeqs: serving.maxNumSeqs)) {
            overhead += constants.eagerLaunchPerLayer * Double(model.layers)
        }
        var compression = work.compressionSeconds
        if work.metricSequences > 0 {
            compression += constants.decodeMetricPerSequence * Double(work.metricSequences)
                + work.metricPoolSlots * constants.decodeMetricBytesPerSlot / (bandwidth * constants.memoryEfficiency)
        }
        // The GPU's own factor was fitted on dense models' runs: it slows the kernels those run
        // (GEMMs, attention, the LM head), not a measured MoE layer nor the links between GPUs.
        let k = constants.deviceTimeScale, g = k * gpuTimeScale
        return StepTime(linear: linear * g + experts * k, attention: attention * g, lmHead: lmHead * g, communication: communication * k,
                        compression: compression, overhead: overhead)
    }

    /// Prefill attention of the step's chunks, each as long as the causal area it covers
    /// (√(2·area / chunks) tokens, full layers and windowed ones apart), and decode attention of
    /// its sequences at their mean KV length per layer.
    private func measuredAttention(_ context: HeadRows, _ generation: HeadRows, _ work: StepWork, idealPrefill: Double) -> (prefill: Double, decode: Double) {
        var prefill = 0.0
        if work.prefillSequences > 0 {
            let b = Double(work.prefillSequences)
            if globalLayers > 0, work.prefillAttentionArea > 0 {
                prefill += globalLayers * context.value(batch: b, length: (2 * work.prefillAttentionArea / b).squareRoot())
            }
            if localLayers > 0, work.prefillLocalArea > 0 {
                prefill += localLayers * context.value(batch: b, length: (2 * work.prefillLocalArea / b).squareRoot())
            }
        }
        var decode = 0.0
        if work.decodeSequences > 0, work.decodeTokenLayers > 0 {
            let b = Double(work.decodeSequences), layers = Double(model.layers)
            decode = layers * generation.value(batch: b, length: work.decodeTokenLayers / (b * layers))
        }
        return (sustained(prefill, ideal: idealPrefill), decode)
    }

    /// A measured kernel time with its compute-bound share (`ideal` time at peak over `measured`,
    /// at most 1) slowed by `CostConstants.sustainedComputeScale`.
    private func sustained(_ measured: Double, ideal: Double) -> Double {
        guard measured > 0, constants.sustainedComputeScale != 1 else { return measured }
        return measured * (1 + (constants.sustainedComputeScale - 1) * min(1, ideal / measured))
    }

    /// Seconds the API server spends on one request before the engine sees it (0 offline).
    public var frontendSecondsPerRequest: Double {
        serving.entrypoint == .offline ? 0 : constants.overhead(for: serving.engine).perRequest
    }

    /// Scoring and compaction time of compressing one sequence of `promptTokens` tokens down to
    /// `keptTokens` per layer and KV head, for a policy that scores with a `window`-query
    /// observation window on `scoredLayers` of the global layers (all, or fewer with ChunkKV's
    /// index reuse), optionally materialising the full attention over the prompt (H2O) or
    /// sorting block metrics across all layers and heads (KV-Compress).
    public func compressionTime(promptTokens n: Int, keptTokens kept: Int, window: Int, scoredLayers: Int,
                                fullAttentionScores: Bool, sortsAcrossLayers: Bool) -> Double {
        let heads = Double(model.heads) / tp
        let kvHeads = Double(model.kvHeadsPerGPU(tp: serving.tensorParallel))
        let d = Double(model.headDim)
        let n = Double(n)
        let perLayerKV = model.kvBytesPerTokenLayer(serving.kvFormat, tp: serving.tensorParallel)
        // Window scores: Q_w Kᵀ and softmax for the window queries against all keys; read K once.
        var flops = 2 * heads * d * Double(window) * n
        var bytes = n * kvHeads * d * serving.kvFormat.bytes + heads * n * 4 * 3 // K; scores written, pooled, top-k
        if fullAttentionScores {
            // H2O's accumulated attention: every prompt query's row (causal half), materialised.
            flops = 2 * heads * d * n * n / 2
            bytes += heads * n * n / 2 * 2 * 2
        }
        let scoring = Double(scoredLayers) * max(flops / attentionFLOPS, bytes / (bandwidth * constants.memoryEfficiency))
        // Compaction: read every prompt KV once, write the kept ones, on every global layer.
        let compaction = Double(model.globalLayers) * (n + Double(kept)) * perLayerKV / (bandwidth * constants.memoryEfficiency)
        // KV-Compress: sort the (layer, head, block) eviction metrics of the sequence.
        let sort = sortsAcrossLayers ? Double(model.globalLayers) * kvHeads * n * 4 * 4 / (bandwidth * constants.memoryEfficiency) : 0
        return scoring + compaction + sort
    }
}
