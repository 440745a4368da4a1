import Policies
import Reporting
import Foundation

/// The serving engine's settings that decide memory and scheduling, every one resolved (vLLM's
/// names; `ServingSettings.resolve` fills what a deployment leaves out with its engine's defaults).
public struct ServingConfig: Codable, Equatable, Sendable {
    /// The engine whose scheduler, memory rule and step overheads apply.
    public var engine: ServingEngine = .vllmV1
    /// The engine's release (nil in a configuration that does not name one; `ServingSettings.resolve`
    /// always sets it).
    public var engineVersion: EngineVersion?
    /// An API server (requests pass its front-end: HTTP, chat template, tokenisation, streaming)
    /// or an offline `LLM()` run (prompts handed to the engine in-process).
    public var entrypoint: ServingSettings.Entrypoint = .server
    /// Fraction of the GPU's memory the engine may use (`--gpu-memory-utilization`, default 0.9).
    public var gpuMemoryUtilization: Double = 0.9
    /// At most this many sequences run at once (`--max-num-seqs`, default 256).
    public var maxNumSeqs: Int = 256
    /// Token budget of one step (`--max-num-batched-tokens`); nil takes vLLM's default: 8192 with
    /// chunked prefill (V1 engine's offline default), else max(`max_model_len`, 2048) (vLLM 0.6).
    public var maxNumBatchedTokens: Int?
    /// The longest sequence the engine accepts (`--max-model-len`); nil means the model's maximum.
    public var maxModelLen: Int?
    /// Split long prompts into chunks that share steps with decodes (`--enable-chunked-prefill`).
    public var chunkedPrefill: Bool = true
    /// Tokens per KV block (`--block-size`, 16).
    public var blockSize: Int = 16
    /// Tensor-parallel degree within one node.
    public var tensorParallel: Int = 1
    public var weightFormat: WeightFormat = .bf16
    public var kvFormat: KVFormat = .bf16
    /// The sampler's implementation, which decides the profiling run's sampler peak.
    public var sampler: SamplerKind = .pytorch
    /// vLLM V0's `--num-scheduler-steps` (multi-step decoding; 1: off).
    public var numSchedulerSteps: Int = 1
    /// SGLang's `--mem-fraction-static`: when set, memory is sized SGLang's way (weights and KV
    /// pool take this fraction of the memory free at start-up) instead of vLLM's.
    public var memFractionStatic: Double?
    /// CUDA graphs for decode (vLLM's default; `--enforce-eager` turns them off): a captured step
    /// launches its kernels at once, an eager one pays each launch.
    public var cudaGraphs: Bool = true
    /// vLLM V1's automatic prefix caching (`--enable-prefix-caching`, on by default in V1): freed
    /// blocks keep their contents until reused, so a preempted request that comes back finds the
    /// blocks of its prefix nobody has taken since (`KVCacheManager.get_computed_blocks`).
    public var prefixCaching: Bool = false

    public init() {}

    /// The same keys as the settings it resolves from (one list of vLLM's names).
    typealias CodingKeys = ServingSettings.CodingKeys

    /// Decodes a configuration whose absent keys take these defaults (not an engine's:
    /// `ServingSettings.resolve` applies those).
    public init(from decoder: Decoder) throws {
        self = try ServingSettings(from: decoder).applied(to: ServingConfig())
    }

    /// The release whose rules apply.
    public var release: EngineVersion { engineVersion ?? engine.defaultVersion }

    /// How reports name the engine: "vLLM V1 0.19.0".
    public var engineLabel: String { engine.label(release) }

    /// Every setting in force, as the reports print it: "vLLM V1 0.19.0, CUDA graphs on, prefix
    /// caching on, max_num_seqs 1024, …" (the sampler where vLLM's memory rule reads it).
    public var summary: String {
        var parts = [engineLabel + (numSchedulerSteps > 1 ? " with \(numSchedulerSteps) scheduler steps" : ""),
                     "CUDA graphs \(cudaGraphs ? "on" : "off")"]
        if engine == .vllmV1 { parts.append("prefix caching \(prefixCaching ? "on" : "off")") }
        parts += ["max_num_seqs \(maxNumSeqs)", "max_num_batched_tokens \(maxNumBatchedTokens.map(String.init) ?? "default")",
                  "chunked prefill \(chunkedPrefill ? "on" : "off")"]
        if let f = memFractionStatic { parts.append("mem_fraction_static \(f)") } else {
            parts += ["gpu_memory_utilization \(gpuMemoryUtilization)", "sampler \(sampler.rawValue)"]
        }
        parts += ["TP \(tensorParallel)", "block \(blockSize)", "weights \(weightFormat.rawValue)", "KV \(kvFormat.rawValue)"]
        return parts.joined(separator: ", ")
    }

    /// `max_model_len` for `model`.
    public func modelLen(for model: ModelSpec) -> Int { min(maxModelLen ?? model.maxContext, model.maxContext) }

    /// The step token budget in force for `model`.
    public func batchedTokens(for model: ModelSpec) -> Int {
        if let t = maxNumBatchedTokens { return chunkedPrefill ? t : max(t, modelLen(for: model)) }
        return chunkedPrefill ? 8192 : max(modelLen(for: model), 2048)
    }
}

/// How vLLM samples, which decides how much memory its profiling run's dummy sampling step takes.
public enum SamplerKind: String, Codable, CaseIterable, Sendable {
    /// PyTorch top-k/top-p (`TopKTopPSampler.forward_native`): the logits sorted with their
    /// indices, softmax, cumulative sums and masks, about ten fp32 copies of the logits.
    case pytorch
    /// FlashInfer's sampling kernels (when FlashInfer is installed and enabled): the logits and
    /// their probabilities.
    case flashinfer
    /// vLLM 0.17 and later: top-k/top-p masked in place by a Triton kernel when eight rows or more
    /// are sampled (`apply_top_k_top_p_triton`, vllm/v1/sample/ops/topk_topp_sampler.py@0.17.0),
    /// so the sort path's copies are never made.
    case triton

    /// Bytes per row × vocabulary entry PyTorch's path holds at its peak beyond the Triton path's,
    /// from vLLM's code (topk_topp_sampler.py@0.16.0 against @0.17.0): the sorted fp32 values (4),
    /// their int64 indices (8), two bool masks (2), the sorted probabilities (4) and the scatter's
    /// new fp32 tensor (4), 22 bytes; the logits, probabilities and noise both paths hold. The
    /// fallback where no fitted figure exists: vLLM 0.19's start-up logs measure the Triton path
    /// itself (`MemoryConstants.fitted`).
    public static let tritonSaving = 22.0
}

/// The memory constants of vLLM's start-up profiling that no formula gives, fitted to public
/// start-up logs (`Sources/Validation/Data/kv-capacity.json`, its `fit` split; `ckv-sim validate`
/// prints the fit and the error on the `check` split).
public struct MemoryConstants: Codable, Equatable, Sendable {
    /// Bytes the dummy sampling step holds per row of logits and vocabulary entry.
    public var samplerBytesPerLogit: [SamplerKind: Double]
    /// Whether the forward pass's and the sampler's peaks add up (the estimate before the logs
    /// were read) or the larger one is the peak (what the logs show: they do not overlap).
    public var peaksAdd: Bool
    /// The forward pass's peak over the formula's (its temporaries beyond the MLP's live set).
    public var forwardScale: Double
    /// Memory outside PyTorch's allocator that grows during start-up (CUDA context, cuBLAS
    /// workspaces), GiB, on one GPU and per GPU with tensor parallelism (NCCL, custom all-reduce).
    public var nonTorchGiB: Double
    public var nonTorchTensorParallelGiB: Double
    /// The same from vLLM `recentNonTorchFrom` on, when fitted (nil: as before it).
    public var recentNonTorchGiB: Double?
    public var recentNonTorchTensorParallelGiB: Double?
    /// The first vLLM release whose start-up logs show the larger non-torch memory: 0.19.0 (one GPU
    /// 0.24–0.27 GiB against 0.13 before; with TP about 2.1 GiB per GPU against 0.54 at 0.11). The
    /// corpus has no logs of 0.12–0.18, so where between 0.11 and 0.19 it changed is not known;
    /// those releases take the earlier figures.
    public static let recentNonTorchFrom = EngineVersion(0, 19, 0)
    /// SGLang: what the CUDA context holds before the weights load (the free memory it sizes from
    /// is the total less this), GiB.
    public var sglangContextGiB: Double
    /// GiB added to the KV pool the rules give (0 by default): what `ckv-sim calibrate` measures
    /// from a team's own start-up logs of one GPU, model and engine (median of logged − predicted).
    public var kvAdjustmentGiB: Double = 0

    public init(samplerBytesPerLogit: [SamplerKind: Double], peaksAdd: Bool, forwardScale: Double, nonTorchGiB: Double, nonTorchTensorParallelGiB: Double,
                recentNonTorchGiB: Double? = nil, recentNonTorchTensorParallelGiB: Double? = nil, sglangContextGiB: Double) {
        self.samplerBytesPerLogit = samplerBytesPerLogit
        self.peaksAdd = peaksAdd
        self.forwardScale = forwardScale
        self.nonTorchGiB = nonTorchGiB
        self.nonTorchTensorParallelGiB = nonTorchTensorParallelGiB
        self.recentNonTorchGiB = recentNonTorchGiB
        self.recentNonTorchTensorParallelGiB = recentNonTorchTensorParallelGiB
        self.sglangContextGiB = sglangContextGiB
    }

    /// The non-torch memory `serving` deducts, GiB per GPU: by its TP degree and its release.
    public func nonTorchGiB(_ serving: ServingConfig) -> Double {
        let tp = serving.tensorParallel > 1
        if serving.engine == .vllmV1, serving.release >= Self.recentNonTorchFrom,
           let recent = tp ? recentNonTorchTensorParallelGiB : recentNonTorchGiB {
            return recent
        }
        return tp ? nonTorchTensorParallelGiB : nonTorchGiB
    }

    /// Bytes per row × vocabulary entry of `kind`'s dummy sampling step: the one given, else for the
    /// Triton sampler PyTorch's less the copies its code never makes (`SamplerKind.tritonSaving`).
    public func samplerBytes(_ kind: SamplerKind) -> Double {
        if let given = samplerBytesPerLogit[kind] { return given }
        if kind == .triton, let pytorch = samplerBytesPerLogit[.pytorch] { return pytorch - SamplerKind.tritonSaving }
        return 0
    }

    /// The constants before the start-up logs were read: the sampler's logits and probabilities
    /// (8 bytes) on top of the forward peak, 0.6 GiB of non-torch memory (+0.25 GiB with TP).
    public static let estimated = MemoryConstants(samplerBytesPerLogit: [.pytorch: 8, .flashinfer: 8, .triton: 8], peaksAdd: true, forwardScale: 1,
                                                  nonTorchGiB: 0.6, nonTorchTensorParallelGiB: 0.85, sglangContextGiB: 0.6)

    /// The constants fitted to the `fit` split of the start-up logs (medians of what each log
    /// implies; `Validation.fitMemoryConstants` recomputes them).
    public static let fitted = MemoryConstants(samplerBytesPerLogit: [.pytorch: 38.8, .flashinfer: 10.1, .triton: 15.5], peaksAdd: false, forwardScale: 1.11,
                                               nonTorchGiB: 0.13, nonTorchTensorParallelGiB: 0.54, recentNonTorchGiB: 0.25,
                                               recentNonTorchTensorParallelGiB: 2.13, sglangContextGiB: 0.39)
}

/// Why a configuration cannot serve at all.
public struct CapacityError: LocalizedError, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

/// Where one GPU's memory goes, the way vLLM's start-up profiling divides it:
/// `KV = total × gpu_memory_utilization − (weights + activation peak + non-torch memory)`.
///
/// - Weights: `ModelSpec.weightBytes` (embeddings and LM head included, sharded by TP).
/// - Activation peak of the profiling run: vLLM runs one forward pass over
///   `max_num_batched_tokens` tokens spread over `max_num_seqs` sequences, then a dummy sampling
///   step over one row of logits per sequence, and keeps the peak. The forward pass's largest live
///   set is inside the MLP: per token the residual and its normed copy (2·hidden), the gate/up
///   output (2·intermediate/TP) and the activation (intermediate/TP), in bf16. The sampler's is
///   `rows × vocab × samplerBytesPerLogit` (about 39 bytes with PyTorch's top-k/top-p, 10 with
///   FlashInfer's kernels). Start-up logs show the peak is the larger of the two
///   (`MemoryConstants.fitted`), so it grows with `max_num_batched_tokens` (and, without chunked
///   prefill, with `max_model_len`) or with `max_num_seqs` × vocabulary, whichever is larger.
/// - Non-torch memory: what grows outside PyTorch's allocator during start-up (CUDA context,
///   cuBLAS workspaces; NCCL and custom all-reduce buffers with TP), fitted to the logs: 0.13 GiB on
///   one GPU, 0.54 GiB per GPU with TP. CUDA graphs are captured after the KV cache is sized, out
///   of the `1 − gpu_memory_utilization` headroom (vLLM 0.6–0.18); they are not deducted.
///
/// The KV pool is counted in per-head blocks (PHB): `block_size` tokens of K and V for one KV
/// head of one layer. vLLM's per-sequence block is `layers × kv heads` PHBs; KV-Compress's
/// paged layout allocates PHBs individually.
public struct MemoryPlan: Equatable, Sendable {
    public var gpu: GPU
    public var model: ModelSpec
    public var serving: ServingConfig
    public var totalBytes: Double
    public var budgetBytes: Double
    public var weightBytes: Double
    public var activationBytes: Double
    public var nonTorchBytes: Double
    /// A calibration profile's correction (`MemoryConstants.kvAdjustmentGiB`), bytes; 0 without one.
    public var adjustmentBytes: Double
    /// What a policy's engine keeps beside the KV (nil: vLLM's blocks alone), and the bytes of its
    /// preallocated block table, which come out of the pool.
    public var metadata: PoolMetadata?
    public var blockTableBytes: Double
    /// The constants the plan was made with.
    public var constants: MemoryConstants
    public var kvBytes: Double
    /// Bytes of one per-head block.
    public var phbBytes: Double
    /// Per-head blocks the pool holds.
    public var phbCapacity: Int


    /// Divides one GPU's memory for `model` under `serving`.
    /// - Throws: `CapacityError` when the weights and activations leave no room for even one block,
    ///   saying by how much.
    public init(gpu: GPU, model: ModelSpec, serving: ServingConfig, constants: MemoryConstants = .fitted, metadata: PoolMetadata? = nil) throws {
        self.gpu = gpu
        self.model = model
        self.serving = serving
        self.constants = constants
        self.metadata = metadata
        let tp = serving.tensorParallel
        totalBytes = gpu.visibleBytes
        budgetBytes = totalBytes * (serving.memFractionStatic ?? serving.gpuMemoryUtilization)
        weightBytes = model.weightBytes(serving.weightFormat, tp: tp)
        if let fraction = serving.memFractionStatic {
            // SGLang: KV = free at start × mem_fraction_static − weights; activations and CUDA
            // graphs live in the rest, so only the context's share is deducted here.
            activationBytes = 0
            nonTorchBytes = constants.sglangContextGiB * 1_073_741_824 * fraction
        } else {
            let run = Self.profilingRun(model: model, serving: serving)
            let sampler = run.logits * constants.samplerBytes(serving.sampler)
            let forward = run.forwardBytes * constants.forwardScale
            // What the forward pass leaves allocated is still there when the sampler runs.
            let held = Self.persistentMoEWorkspaceBytes(model: model, serving: serving)
            activationBytes = constants.peaksAdd ? forward + sampler : max(forward, sampler + held)
            nonTorchBytes = constants.nonTorchGiB(serving) * 1_073_741_824
        }
        adjustmentBytes = constants.kvAdjustmentGiB * 1_073_741_824
        let kvHeads = model.kvHeadsPerGPU(tp: tp)
        if let metadata, metadata.preallocatedBlockTable {
            let blocksPerSequence = (serving.modelLen(for: model) + serving.blockSize - 1) / serving.blockSize
            blockTableBytes = Double(model.layers * serving.maxNumSeqs * kvHeads * blocksPerSequence * 4)
        } else {
            blockTableBytes = 0
        }
        kvBytes = budgetBytes - weightBytes - activationBytes - nonTorchBytes + adjustmentBytes - blockTableBytes
        phbBytes = Double(serving.blockSize * model.headDim * 2) * serving.kvFormat.bytes
        if let metadata {
            let queriesPerKV = model.heads / model.kvHeads
            phbBytes += Double(metadata.bytesPerBlock + serving.blockSize * (metadata.bytesPerSlot + metadata.bytesPerSlotPerQueryHead * queriesPerKV))
        }
        guard kvBytes >= phbBytes * Double(model.layers * model.kvHeadsPerGPU(tp: tp)) else {
            let need = weightBytes + activationBytes + nonTorchBytes + blockTableBytes
            throw CapacityError("\(model.name) does not fit on \(gpu.name) (TP \(tp)): weights \(Format.gib(weightBytes)), activation peak \(Format.gib(activationBytes))\(blockTableBytes > 0 ? ", block table \(Format.gib(blockTableBytes))" : "") and runtime \(Format.gib(nonTorchBytes)) need \(Format.gib(need)) of the \(Format.gib(budgetBytes)) that gpu_memory_utilization \(serving.gpuMemoryUtilization) allows, leaving no room for one KV block")
        }
        phbCapacity = Int((kvBytes / phbBytes).rounded(.down))
    }

    /// The same deployment's plan for a policy whose engine keeps `metadata` beside the KV.
    public func with(metadata: PoolMetadata?) throws -> MemoryPlan {
        metadata == self.metadata ? self : try MemoryPlan(gpu: gpu, model: model, serving: serving, constants: constants, metadata: metadata)
    }

    /// PHBs per vLLM per-sequence block (all layers, this GPU's KV heads).
    public var phbPerBlock: Int { model.layers * model.kvHeadsPerGPU(tp: serving.tensorParallel) }

    /// vLLM's `# GPU blocks`: whole per-sequence blocks the pool holds.
    public var vllmBlocks: Int { phbCapacity / phbPerBlock }

    /// Tokens the pool holds for a model whose layers are all global (`# GPU blocks × block_size`).
    public var kvTokens: Int { vllmBlocks * serving.blockSize }

    /// The first vLLM release that keeps the fused-MoE kernels' scratch buffers between forward
    /// passes (one buffer for all layers, grown to the largest step and kept:
    /// `current_workspace_manager`, vllm/v1/worker/workspace.py).
    public static let persistentMoEWorkspaceFrom = EngineVersion(0, 14, 0)

    /// Bytes of that buffer after the profiling run's forward pass (0 for a dense model, another
    /// engine or an earlier release): `FusedMoEModularKernel._allocate_buffers` takes one
    /// allocation for the first and last GEMMs' outputs, tokens × top-k × max(N / 2, K), and one for
    /// the activation, tokens × top-k × max(N, K), in bf16, where N is w1's width (gate and up,
    /// 2 × the expert's intermediate size / TP) and K the hidden size (`TritonExperts.workspace_shapes`,
    /// vllm/model_executor/layers/fused_moe/fused_moe.py@0.19.0; the tokens are not chunked). The
    /// dummy sampling step runs beside it: Qwen3-30B-A3B at 8192 tokens holds 512 MiB.
    public static func persistentMoEWorkspaceBytes(model: ModelSpec, serving: ServingConfig) -> Double {
        guard model.isMoE, serving.engine == .vllmV1, serving.release >= persistentMoEWorkspaceFrom else { return 0 }
        let tokens = Double(serving.batchedTokens(for: model)), k = Double(model.hidden)
        let n = 2 * Double(model.intermediate) / Double(serving.tensorParallel)
        return tokens * Double(model.activeExperts) * (max(n / 2, k) + max(n, k)) * 2
    }

    /// vLLM's profiling run for `model` under `serving`: its forward pass over `tokens` tokens,
    /// whose MLP live set is `forwardBytes` (before `MemoryConstants.forwardScale`), then the dummy
    /// sampling step over `rows` rows of logits, `logits` = rows × vocabulary entries (every rank
    /// samples the whole vocabulary: the logits are gathered first).
    public static func profilingRun(model: ModelSpec, serving: ServingConfig) -> (tokens: Int, forwardBytes: Double, rows: Int, logits: Double) {
        let tokens = serving.batchedTokens(for: model)
        let perToken = (2 * Double(model.hidden) + 3 * Double(model.activeIntermediate) / Double(serving.tensorParallel)) * 2
        let rows = min(serving.maxNumSeqs, tokens)
        return (tokens, Double(tokens) * perToken, rows, Double(rows) * Double(model.vocab))
    }
}
