import Foundation
import ModelFamily

/// Storage formats for weights.
public enum WeightFormat: String, CaseIterable, Codable, Sendable {
    /// 2 bytes per parameter.
    case bf16
    /// 1 byte per linear-layer weight plus a per-channel bf16 scale; embeddings and the LM head stay
    /// bf16, as vLLM's FP8 checkpoints (e.g. Llama-3.1-70B-Instruct-FP8) keep them.
    case fp8
    /// 4-bit weights in groups of 128 with an fp16 scale and zero point per group (AWQ/GPTQ),
    /// 0.5 + 4/128 bytes per linear weight; embeddings and the LM head bf16.
    case int4

    /// Bytes per linear-layer weight.
    var linearBytes: Double {
        switch self {
        case .bf16: 2
        case .fp8: 1
        case .int4: 0.5 + 4.0 / 128
        }
    }

    /// The format the GEMMs run in.
    public var computeFormat: ComputeFormat {
        switch self {
        case .bf16: .bf16
        case .fp8: .fp8
        case .int4: .bf16 // weights dequantised in the kernel; tensor cores run in bf16/fp16
        }
    }
}

/// Storage formats for the KV cache.
public enum KVFormat: String, CaseIterable, Codable, Sendable {
    case bf16, fp16, fp8
    public var bytes: Double { self == .fp8 ? 1 : 2 }
}

/// The shape facts of a decoder-only transformer that decide its memory and cost.
public struct ModelSpec: Codable, Equatable, Sendable {
    public var name: String
    public var layers: Int
    public var hidden: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var intermediate: Int
    public var vocab: Int
    public var maxContext: Int
    public var tiedEmbeddings: Bool
    /// Sliding-window size of local layers (nil: every layer is global).
    public var slidingWindow: Int?
    /// With a window: every `globalEvery`-th layer (il % globalEvery == globalEvery − 1) is
    /// global, the rest local (Gemma 3: 6). nil with a window: every layer is local.
    public var globalEvery: Int?
    public var qkvBias: Bool
    /// Mixture of experts: routed experts per layer (0: a dense MLP of `intermediate`), each an
    /// MLP of `intermediate`; `activeExperts` of them run for each token.
    public var experts: Int
    public var activeExperts: Int
    /// Where the facts come from (HF config, GGUF, catalogue).
    public var source: String
    /// The Hugging Face repository of the weights ("meta-llama/Llama-3.1-8B-Instruct"), when
    /// known: traces recorded from it are this model's own (`TraceLibrary.traces(for:)`).
    public var repository: String?
    /// The GGUF file the spec was read from: traces recorded from that file are this model's own.
    public var ggufPath: String?

    public init(name: String, layers: Int, hidden: Int, heads: Int, kvHeads: Int, headDim: Int, intermediate: Int,
                vocab: Int, maxContext: Int, tiedEmbeddings: Bool, slidingWindow: Int? = nil, globalEvery: Int? = nil,
                qkvBias: Bool = false, experts: Int = 0, activeExperts: Int = 0, source: String, repository: String? = nil, ggufPath: String? = nil) {
        self.repository = repository ?? ModelCatalog.repository(inSource: source)
        self.ggufPath = ggufPath
        self.experts = experts
        self.activeExperts = experts > 0 ? activeExperts : 0
        self.name = name
        self.layers = layers
        self.hidden = hidden
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.intermediate = intermediate
        self.vocab = vocab
        self.maxContext = maxContext
        self.tiedEmbeddings = tiedEmbeddings
        self.slidingWindow = slidingWindow
        self.globalEvery = globalEvery
        self.qkvBias = qkvBias
        self.source = source
    }

    // MARK: Layer kinds

    /// Which layers are global (`LayerPattern`, the rule the engine uses too).
    public var pattern: LayerPattern { LayerPattern(slidingWindow: slidingWindow, globalEvery: globalEvery) }

    /// True when layer `il` attends to the whole sequence.
    public func isGlobal(layer il: Int) -> Bool { pattern.isGlobal(il) }

    /// Layers that attend to the whole sequence (all without a window, none when every layer slides).
    public var globalLayers: Int { pattern.globalLayers(of: layers) }
    public var localLayers: Int { layers - globalLayers }

    // MARK: Parameters

    /// Whether the MLP is a mixture of experts.
    public var isMoE: Bool { experts > 0 }

    /// Parameters of one layer's attention projections (Q, K, V, O and their bias).
    public var attentionParametersPerLayer: Double {
        let attention = Double(hidden) * Double(heads * headDim) * 2 + Double(hidden) * Double(kvHeads * headDim) * 2
        return attention + (qkvBias ? Double((heads + 2 * kvHeads) * headDim) : 0)
    }

    /// Parameters of one expert's (or the dense MLP's) gate, up and down projections.
    public var mlpParametersPerExpert: Double { 3 * Double(hidden) * Double(intermediate) }

    /// Parameters of one layer that every token multiplies by: the attention projections, and the
    /// dense MLP or (a mixture) the router.
    public var sharedParametersPerLayer: Double {
        attentionParametersPerLayer + (isMoE ? Double(hidden * experts) : mlpParametersPerExpert)
    }

    /// Parameters of the attention and MLP projections of all layers, every expert and router
    /// included (what the weights hold).
    public var linearParameters: Double {
        Double(layers) * (sharedParametersPerLayer + (isMoE ? Double(experts) * mlpParametersPerExpert : 0))
    }

    /// Parameters one token multiplies by: the attention projections, the router and its active
    /// experts (all of `linearParameters` for a dense model).
    public var activeLinearParameters: Double {
        Double(layers) * (sharedParametersPerLayer + Double(activeExperts) * mlpParametersPerExpert)
    }

    /// Experts a step of `tokens` tokens touches on average per layer (each token routes to
    /// `activeExperts` of `experts`, taken as uniform): E × (1 − (1 − k/E)^tokens).
    public func expertsTouched(tokens: Double) -> Double {
        guard isMoE, tokens > 0 else { return 0 }
        let e = Double(experts)
        return e * (1 - pow(1 - Double(activeExperts) / e, tokens))
    }

    /// The MLP width one token's activations take (the active experts' for a mixture).
    public var activeIntermediate: Int { isMoE ? activeExperts * intermediate : intermediate }

    /// Token-embedding parameters (and as many again for an untied LM head).
    public var embeddingParameters: Double { Double(vocab) * Double(hidden) }

    /// Norm weights: two per layer, the final norm.
    public var normParameters: Double { Double(layers * 2 * hidden + hidden) }

    public var totalParameters: Double {
        linearParameters + embeddingParameters * (tiedEmbeddings ? 1 : 2) + normParameters
    }

    /// Weight bytes on one GPU with tensor parallelism `tp` (vLLM shards the projections,
    /// the vocabulary-parallel embedding and LM head; norms are replicated).
    public func weightBytes(_ format: WeightFormat, tp: Int = 1) -> Double {
        let linear = linearParameters * format.linearBytes
        let embed = embeddingParameters * 2 * (tiedEmbeddings ? 1 : 2)
        return (linear + embed) / Double(tp) + normParameters * 2
    }

    // MARK: KV cache

    /// KV heads held by one GPU: vLLM splits KV heads across ranks and replicates them when
    /// there are fewer heads than ranks.
    public func kvHeadsPerGPU(tp: Int) -> Int { max(1, kvHeads / tp) }

    /// Bytes of K and V for one token in one layer on one GPU.
    public func kvBytesPerTokenLayer(_ format: KVFormat, tp: Int = 1) -> Double {
        2 * Double(kvHeadsPerGPU(tp: tp) * headDim) * format.bytes
    }

    /// KV bytes of one sequence of `tokens` tokens with `kept` tokens kept per global layer
    /// (local layers keep at most the window), on one GPU.
    public func kvBytes(tokens: Int, kept: Int? = nil, format: KVFormat, tp: Int = 1) -> Double {
        let perLayer = kvBytesPerTokenLayer(format, tp: tp)
        let global = Double(globalLayers * (kept ?? tokens))
        let local = Double(localLayers * min(tokens, slidingWindow ?? tokens))
        return perLayer * (global + local)
    }
}

/// The models ckv-sim knows by name, each from its Hugging Face `config.json`.
public enum ModelCatalog {
    public static let all: [ModelSpec] = [
        ModelSpec(name: "Llama-3.1-8B-Instruct", layers: 32, hidden: 4096, heads: 32, kvHeads: 8, headDim: 128, intermediate: 14336,
                  vocab: 128256, maxContext: 131072, tiedEmbeddings: false, source: "meta-llama/Llama-3.1-8B-Instruct config.json"),
        ModelSpec(name: "Llama-3.1-70B-Instruct", layers: 80, hidden: 8192, heads: 64, kvHeads: 8, headDim: 128, intermediate: 28672,
                  vocab: 128256, maxContext: 131072, tiedEmbeddings: false, source: "meta-llama/Llama-3.1-70B-Instruct config.json"),
        ModelSpec(name: "Llama-3.2-1B-Instruct", layers: 16, hidden: 2048, heads: 32, kvHeads: 8, headDim: 64, intermediate: 8192,
                  vocab: 128256, maxContext: 131072, tiedEmbeddings: true, source: "meta-llama/Llama-3.2-1B-Instruct config.json"),
        ModelSpec(name: "Llama-3.2-3B-Instruct", layers: 28, hidden: 3072, heads: 24, kvHeads: 8, headDim: 128, intermediate: 8192,
                  vocab: 128256, maxContext: 131072, tiedEmbeddings: true, source: "meta-llama/Llama-3.2-3B-Instruct config.json"),
        ModelSpec(name: "Mistral-7B-Instruct-v0.3", layers: 32, hidden: 4096, heads: 32, kvHeads: 8, headDim: 128, intermediate: 14336,
                  vocab: 32768, maxContext: 32768, tiedEmbeddings: false, source: "mistralai/Mistral-7B-Instruct-v0.3 config.json"),
        ModelSpec(name: "Qwen2.5-7B-Instruct", layers: 28, hidden: 3584, heads: 28, kvHeads: 4, headDim: 128, intermediate: 18944,
                  vocab: 152064, maxContext: 131072, tiedEmbeddings: false, qkvBias: true,
                  source: "Qwen/Qwen2.5-7B-Instruct config.json (32768 native; 131072 with the YaRN factor 4 its card documents)"),
        ModelSpec(name: "Qwen2.5-1.5B-Instruct", layers: 28, hidden: 1536, heads: 12, kvHeads: 2, headDim: 128, intermediate: 8960,
                  vocab: 151936, maxContext: 32768, tiedEmbeddings: true, qkvBias: true, source: "Qwen/Qwen2.5-1.5B-Instruct config.json"),
        ModelSpec(name: "Qwen2.5-3B-Instruct", layers: 36, hidden: 2048, heads: 16, kvHeads: 2, headDim: 128, intermediate: 11008,
                  vocab: 151936, maxContext: 32768, tiedEmbeddings: true, qkvBias: true, source: "Qwen/Qwen2.5-3B-Instruct config.json"),
        ModelSpec(name: "TinyLlama-1.1B", layers: 22, hidden: 2048, heads: 32, kvHeads: 4, headDim: 64, intermediate: 5632,
                  vocab: 32000, maxContext: 2048, tiedEmbeddings: false, source: "TinyLlama/TinyLlama-1.1B config.json (the base of Rho-1 1B)"),
        ModelSpec(name: "Llama-2-7B-Chat", layers: 32, hidden: 4096, heads: 32, kvHeads: 32, headDim: 128, intermediate: 11008,
                  vocab: 32000, maxContext: 4096, tiedEmbeddings: false, source: "meta-llama/Llama-2-7b-chat-hf config.json (NousResearch's copy)"),
        ModelSpec(name: "Llama-3-8B-Instruct", layers: 32, hidden: 4096, heads: 32, kvHeads: 8, headDim: 128, intermediate: 14336,
                  vocab: 128256, maxContext: 8192, tiedEmbeddings: false, source: "meta-llama/Meta-Llama-3-8B-Instruct config.json"),
        ModelSpec(name: "Qwen2-7B-Instruct", layers: 28, hidden: 3584, heads: 28, kvHeads: 4, headDim: 128, intermediate: 18944,
                  vocab: 152064, maxContext: 32768, tiedEmbeddings: false, qkvBias: true, source: "Qwen/Qwen2-7B-Instruct config.json"),
        ModelSpec(name: "Qwen3-0.6B", layers: 28, hidden: 1024, heads: 16, kvHeads: 8, headDim: 128, intermediate: 3072,
                  vocab: 151936, maxContext: 40960, tiedEmbeddings: true, source: "Qwen/Qwen3-0.6B config.json"),
        ModelSpec(name: "Qwen3-8B", layers: 36, hidden: 4096, heads: 32, kvHeads: 8, headDim: 128, intermediate: 12288,
                  vocab: 151936, maxContext: 40960, tiedEmbeddings: false, source: "Qwen/Qwen3-8B config.json"),
        ModelSpec(name: "Qwen3-32B", layers: 64, hidden: 5120, heads: 64, kvHeads: 8, headDim: 128, intermediate: 25600,
                  vocab: 151936, maxContext: 40960, tiedEmbeddings: false, source: "Qwen/Qwen3-32B config.json"),
        ModelSpec(name: "Qwen3-14B", layers: 40, hidden: 5120, heads: 40, kvHeads: 8, headDim: 128, intermediate: 17408,
                  vocab: 151936, maxContext: 40960, tiedEmbeddings: false, source: "Qwen/Qwen3-14B config.json"),
        ModelSpec(name: "Qwen3-30B-A3B", layers: 48, hidden: 2048, heads: 32, kvHeads: 4, headDim: 128, intermediate: 768,
                  vocab: 151936, maxContext: 40960, tiedEmbeddings: false, experts: 128, activeExperts: 8,
                  source: "Qwen/Qwen3-30B-A3B config.json (moe_intermediate_size 768, num_experts 128, num_experts_per_tok 8, every layer sparse)"),
        ModelSpec(name: "Qwen3-235B-A22B", layers: 94, hidden: 4096, heads: 64, kvHeads: 4, headDim: 128, intermediate: 1536,
                  vocab: 151936, maxContext: 262144, tiedEmbeddings: false, experts: 128, activeExperts: 8,
                  source: "Qwen/Qwen3-235B-A22B-Instruct-2507 config.json (moe_intermediate_size 1536, num_experts 128, num_experts_per_tok 8; the 2507 release's 262144 positions, the original's 40960)"),
        ModelSpec(name: "Mixtral-8x7B-Instruct-v0.1", layers: 32, hidden: 4096, heads: 32, kvHeads: 8, headDim: 128, intermediate: 14336,
                  vocab: 32000, maxContext: 32768, tiedEmbeddings: false, experts: 8, activeExperts: 2,
                  source: "mistralai/Mixtral-8x7B-Instruct-v0.1 config.json (num_local_experts 8, num_experts_per_tok 2)"),
        ModelSpec(name: "Qwen2.5-32B-Instruct", layers: 64, hidden: 5120, heads: 40, kvHeads: 8, headDim: 128, intermediate: 27648,
                  vocab: 152064, maxContext: 32768, tiedEmbeddings: false, qkvBias: true, source: "Qwen/Qwen2.5-32B-Instruct config.json (QwQ-32B has the same shape)"),
        ModelSpec(name: "Qwen2.5-72B-Instruct", layers: 80, hidden: 8192, heads: 64, kvHeads: 8, headDim: 128, intermediate: 29568,
                  vocab: 152064, maxContext: 131072, tiedEmbeddings: false, qkvBias: true,
                  source: "Qwen/Qwen2.5-72B-Instruct config.json (32768 native; 131072 with the YaRN factor 4 its card documents)"),
        ModelSpec(name: "Gemma-3-27B-it", layers: 62, hidden: 5376, heads: 32, kvHeads: 16, headDim: 128, intermediate: 21504,
                  vocab: 262208, maxContext: 131072, tiedEmbeddings: true, slidingWindow: 1024, globalEvery: 6,
                  source: "google/gemma-3-27b-it config.json (text_config)"),
        ModelSpec(name: "Gemma-3-270M", layers: 18, hidden: 640, heads: 4, kvHeads: 1, headDim: 256, intermediate: 2048,
                  vocab: 262144, maxContext: 32768, tiedEmbeddings: true, slidingWindow: 512, globalEvery: 6,
                  source: "gemma-3-270m-q4_k_m.gguf metadata (reference model)"),
        ModelSpec(name: "SmolLM2-135M-Instruct", layers: 30, hidden: 576, heads: 9, kvHeads: 3, headDim: 64, intermediate: 1536,
                  vocab: 49152, maxContext: 8192, tiedEmbeddings: true, source: "SmolLM2-135M-Instruct.Q4_1.gguf metadata (reference model)"),
    ]

    /// The catalogue model called `name`, case-insensitively, with or without "-Instruct"/"-it".
    public static func named(_ name: String) -> ModelSpec? {
        let key = normalise(name)
        return all.first { normalise($0.name) == key }
            ?? all.first { normalise($0.name).replacingOccurrences(of: "instruct", with: "") == key }
            ?? all.first { normalise($0.name).hasSuffix("it") && String(normalise($0.name).dropLast(2)) == key }
    }

    /// The repository a catalogue source names: "ORG/NAME config.json …" → "ORG/NAME".
    static func repository(inSource source: String) -> String? {
        let words = source.split(separator: " ")
        guard words.count >= 2, words[1] == "config.json", words[0].split(separator: "/").count == 2 else { return nil }
        return String(words[0])
    }

    static func normalise(_ s: String) -> String { s.lowercased().filter { $0.isLetter || $0.isNumber || $0 == "." } }
}

/// Why a model description could not be used.
public struct ModelSpecError: LocalizedError, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

extension ModelSpec {
    /// Reads a Hugging Face `config.json` (Llama, Mistral, Qwen2, Gemma 2/3 and look-alikes;
    /// Gemma 3 multimodal configs are read through their `text_config`).
    /// - Throws: `ModelSpecError` naming the file and the missing or malformed key.
    public static func fromHFConfig(path: String) throws -> ModelSpec {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ModelSpecError("\(path): cannot read: \((error as NSError).localizedDescription)")
        }
        let json: [String: Any]
        do {
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ModelSpecError("\(path): expected a JSON object at the top level")
            }
            json = object
        } catch let error as ModelSpecError { throw error } catch {
            throw ModelSpecError("\(path): not valid JSON (\(error.localizedDescription))")
        }
        let c = (json["text_config"] as? [String: Any]).map { $0.merging(json) { a, _ in a } } ?? json
        func int(_ key: String, _ fallback: Int? = nil) throws -> Int {
            if let v = c[key] as? Int { return v }
            if let v = c[key] as? Double, v == v.rounded() {
                guard abs(v) < 1e15 else { throw ModelSpecError("\(path): \(key) is \(v), far beyond any model") }
                return Int(v)
            }
            if let fallback { return fallback }
            throw ModelSpecError("\(path): config.json has no integer \"\(key)\", which is needed")
        }
        let hidden = try int("hidden_size")
        let heads = try int("num_attention_heads")
        guard heads >= 1 else { throw ModelSpecError("\(path): num_attention_heads is \(heads); it must be at least 1") }
        let kvHeads = try int("num_key_value_heads", heads)
        let headDim = try int("head_dim", hidden / heads)
        let modelType = (c["model_type"] as? String) ?? ""
        var pattern = LayerPattern.allGlobal
        // Qwen2's window applies only with use_sliding_window, which is off by default.
        if let w = c["sliding_window"] as? Int, (c["use_sliding_window"] as? Bool) != false, !modelType.hasPrefix("qwen2") {
            pattern = .family(modelType, slidingWindow: w, declaredEvery: c["sliding_window_pattern"] as? Int)
        }
        var context = try int("max_position_embeddings")
        if let scaling = c["rope_scaling"] as? [String: Any], (scaling["rope_type"] as? String ?? scaling["type"] as? String) == "yarn",
           let factor = scaling["factor"] as? Double, let original = scaling["original_max_position_embeddings"] as? Int {
            let extended = Double(original) * factor
            guard factor >= 1, extended.isFinite, extended <= Double(1 << 28) else {
                throw ModelSpecError("\(path): rope_scaling.factor \(factor) × original_max_position_embeddings \(original) is not a context length (1 to \(1 << 28) tokens)")
            }
            context = max(context, Int(extended))
        }
        if c["kv_lora_rank"] != nil {
            throw ModelSpecError("\(path): multi-head latent attention (kv_lora_rank, DeepSeek-V2/V3) is not modelled; supported: multi-head and grouped-query attention")
        }
        // Mixture of experts: Qwen-MoE names them num_experts, Mixtral num_local_experts, DeepSeek n_routed_experts.
        let experts = try int("num_experts", try int("num_local_experts", try int("n_routed_experts", 0)))
        let active = experts > 0 ? try int("num_experts_per_tok") : 0
        let mlpWidth = experts > 0 ? try int("moe_intermediate_size", try int("intermediate_size")) : try int("intermediate_size")
        if experts > 0, let shared = c["shared_expert_intermediate_size"] as? Int ?? c["n_shared_experts"] as? Int, shared > 0 {
            throw ModelSpecError("\(path): shared experts (shared_expert_intermediate_size / n_shared_experts) are not modelled; supported: routed experts only (Qwen3-MoE, Mixtral)")
        }
        if experts > 0, active < 1 || active > experts {
            throw ModelSpecError("\(path): num_experts_per_tok \(active) must be between 1 and the \(experts) experts")
        }
        let name = (json["_name_or_path"] as? String).map { ($0 as NSString).lastPathComponent }
            ?? URL(fileURLWithPath: path).deletingLastPathComponent().lastPathComponent
        let layers = try int("num_hidden_layers"), vocab = try int("vocab_size")
        let keys: [ModelShape.Field: String] = [.layers: "num_hidden_layers", .hidden: "hidden_size", .heads: "num_attention_heads",
                                                .kvHeads: "num_key_value_heads", .headDim: "head_dim",
                                                .intermediate: experts > 0 ? "moe_intermediate_size" : "intermediate_size", .vocab: "vocab_size",
                                                .context: "max_position_embeddings"]
        if let problem = ModelShape.problem(key: { keys[$0]! }, values: [.layers: layers, .hidden: hidden, .heads: heads, .kvHeads: kvHeads,
                                                                         .headDim: headDim, .intermediate: mlpWidth, .vocab: vocab, .context: context]) {
            throw ModelSpecError("\(path): \(problem)")
        }
        if experts > 4096 { throw ModelSpecError("\(path): \(experts) experts; at most 4096 are modelled") }
        return ModelSpec(name: name.isEmpty ? "config.json" : name,
                         layers: layers, hidden: hidden, heads: heads, kvHeads: kvHeads, headDim: headDim,
                         intermediate: mlpWidth, vocab: vocab, maxContext: context,
                         tiedEmbeddings: (c["tie_word_embeddings"] as? Bool) ?? modelType.hasPrefix("gemma"),
                         slidingWindow: pattern.slidingWindow, globalEvery: pattern.globalEvery,
                         qkvBias: (c["attention_bias"] as? Bool) ?? modelType.hasPrefix("qwen2"),
                         experts: experts, activeExperts: active, source: path,
                         repository: (json["_name_or_path"] as? String).flatMap { id in
                             id.split(separator: "/").count == 2 && !id.hasPrefix(".") && !id.hasPrefix("/") ? id : nil
                         })
    }
}
