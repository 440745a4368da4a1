import Reporting
import Foundation

/// The serving engine's settings that decide memory and scheduling (vLLM's names and defaults).
public struct ServingConfig: Codable, Equatable, Sendable {
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

    public init() {}

    enum CodingKeys: String, CodingKey {
        case gpuMemoryUtilization = "gpu_memory_utilization"
        case maxNumSeqs = "max_num_seqs"
        case maxNumBatchedTokens = "max_num_batched_tokens"
        case maxModelLen = "max_model_len"
        case chunkedPrefill = "chunked_prefill"
        case blockSize = "block_size"
        case tensorParallel = "tensor_parallel"
        case weightFormat = "weight_format"
        case kvFormat = "kv_format"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ServingConfig()
        gpuMemoryUtilization = try c.decodeIfPresent(Double.self, forKey: .gpuMemoryUtilization) ?? d.gpuMemoryUtilization
        maxNumSeqs = try c.decodeIfPresent(Int.self, forKey: .maxNumSeqs) ?? d.maxNumSeqs
        maxNumBatchedTokens = try c.decodeIfPresent(Int.self, forKey: .maxNumBatchedTokens)
        maxModelLen = try c.decodeIfPresent(Int.self, forKey: .maxModelLen)
        chunkedPrefill = try c.decodeIfPresent(Bool.self, forKey: .chunkedPrefill) ?? d.chunkedPrefill
        blockSize = try c.decodeIfPresent(Int.self, forKey: .blockSize) ?? d.blockSize
        tensorParallel = try c.decodeIfPresent(Int.self, forKey: .tensorParallel) ?? d.tensorParallel
        weightFormat = try c.decodeIfPresent(WeightFormat.self, forKey: .weightFormat) ?? d.weightFormat
        kvFormat = try c.decodeIfPresent(KVFormat.self, forKey: .kvFormat) ?? d.kvFormat
    }

    /// `max_model_len` for `model`.
    public func modelLen(for model: ModelSpec) -> Int { min(maxModelLen ?? model.maxContext, model.maxContext) }

    /// The step token budget in force for `model`.
    public func batchedTokens(for model: ModelSpec) -> Int {
        if let t = maxNumBatchedTokens { return chunkedPrefill ? t : max(t, modelLen(for: model)) }
        return chunkedPrefill ? 8192 : max(modelLen(for: model), 2048)
    }
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
///   `max_num_batched_tokens` tokens spread over `max_num_seqs` sequences and keeps the peak.
///   The largest live set is inside the MLP: per token the residual and its normed copy
///   (2·hidden), the gate/up output (2·intermediate/TP) and the activation (intermediate/TP), in
///   bf16; then the sampler's fp32 logits and probabilities for one row per sequence
///   (2 × 4 bytes × vocab). So it grows with `max_num_batched_tokens` (and, without chunked
///   prefill, with `max_model_len`).
/// - Non-torch memory: the CUDA context, cuBLAS/cuBLASLt workspaces and allocator slack that
///   vLLM's `peak = total − free` measurement includes: 0.6 GiB, plus 0.25 GiB of NCCL buffers
///   with TP > 1. (CUDA graphs are captured after the KV cache is sized, out of the
///   `1 − gpu_memory_utilization` headroom, as in vLLM 0.6–0.10; they are not deducted.)
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
    public var kvBytes: Double
    /// Bytes of one per-head block.
    public var phbBytes: Double
    /// Per-head blocks the pool holds.
    public var phbCapacity: Int

    public static let nonTorchBase = 0.6 * 1_073_741_824.0
    public static let ncclBuffers = 0.25 * 1_073_741_824.0

    /// Divides one GPU's memory for `model` under `serving`.
    /// - Throws: `CapacityError` when the weights and activations leave no room for even one block,
    ///   saying by how much.
    public init(gpu: GPU, model: ModelSpec, serving: ServingConfig) throws {
        self.gpu = gpu
        self.model = model
        self.serving = serving
        let tp = serving.tensorParallel
        totalBytes = gpu.visibleBytes
        budgetBytes = totalBytes * serving.gpuMemoryUtilization
        weightBytes = model.weightBytes(serving.weightFormat, tp: tp)
        let tokens = Double(serving.batchedTokens(for: model))
        let perToken = (2 * Double(model.hidden) + 3 * Double(model.intermediate) / Double(tp)) * 2
        let logits = Double(min(serving.maxNumSeqs, serving.batchedTokens(for: model))) * Double(model.vocab) * 8
        activationBytes = tokens * perToken + logits
        nonTorchBytes = Self.nonTorchBase + (tp > 1 ? Self.ncclBuffers : 0)
        kvBytes = budgetBytes - weightBytes - activationBytes - nonTorchBytes
        phbBytes = Double(serving.blockSize * model.headDim * 2) * serving.kvFormat.bytes
        guard kvBytes >= phbBytes * Double(model.layers * model.kvHeadsPerGPU(tp: tp)) else {
            let need = weightBytes + activationBytes + nonTorchBytes
            throw CapacityError("\(model.name) does not fit on \(gpu.name) (TP \(tp)): weights \(Format.gib(weightBytes)), activation peak \(Format.gib(activationBytes)) and runtime \(Format.gib(nonTorchBytes)) need \(Format.gib(need)) of the \(Format.gib(budgetBytes)) that gpu_memory_utilization \(serving.gpuMemoryUtilization) allows, leaving no room for one KV block")
        }
        phbCapacity = Int((kvBytes / phbBytes).rounded(.down))
    }

    /// PHBs per vLLM per-sequence block (all layers, this GPU's KV heads).
    public var phbPerBlock: Int { model.layers * model.kvHeadsPerGPU(tp: serving.tensorParallel) }

    /// vLLM's `# GPU blocks`: whole per-sequence blocks the pool holds.
    public var vllmBlocks: Int { phbCapacity / phbPerBlock }

    /// Tokens the pool holds for a model whose layers are all global (`# GPU blocks × block_size`).
    public var kvTokens: Int { vllmBlocks * serving.blockSize }
}
