import GGUF

/// The Llama family: Llama, Mistral, Qwen2, SmolLM (llama.cpp `src/models/llama.cpp`, `qwen2.cpp`):
///
///     x = embed(token)
///     per layer: h = RMSNorm(x)·w_attn_norm; q,k,v = h·W (+ b for Qwen2); NORM RoPE (adjacent
///                pairs, the converter permuted Q/K; `rope_freqs` factors and linear scaling when
///                the GGUF has them); softmax(q·kᵀ/√head_dim) over the cache (GQA: query head h
///                reads KV head h / (heads / kv_heads)); x += attn·W_o
///                h = RMSNorm(x)·w_ffn_norm; x += W_down(silu(W_gate h) ⊙ W_up h)
///     logits = RMSNorm(x)·w_output_norm · output (or token_embd when there is no output.weight)
///
/// Every layer is global: llama.cpp's graph for these architectures has no sliding window.
struct LlamaFamily: ArchitectureRecipe {
    static let defaults = ArchitectureDefaults(rmsEpsilon: 1e-5, ropeBase: 10_000, ropeBaseLocal: nil, slidingWindow: nil)

    struct Layer: LayerWeights {
        var attnNorm, ffnNorm: [Float]
        /// Projection biases (Qwen2), when the file has them.
        var bq, bk, bv: [Float]?
        var attention: AttentionWeights
        var mlp: MLPWeights
    }

    let layers: [Layer]

    init(file: GGUFFile, config c: ModelConfig) throws {
        func bias(_ name: String, _ count: Int) throws -> [Float]? {
            file.tensor(named: name) == nil ? nil : try Weights.vector(file, name, count: count)
        }
        let q = c.heads * c.headDim, kv = c.kvHeads * c.headDim
        layers = try (0..<c.layers).map { il in
            let p = "blk.\(il)."
            return Layer(attnNorm: try Weights.vector(file, p + "attn_norm.weight", count: c.hidden),
                         ffnNorm: try Weights.vector(file, p + "ffn_norm.weight", count: c.hidden),
                         bq: try bias(p + "attn_q.bias", q), bk: try bias(p + "attn_k.bias", kv), bv: try bias(p + "attn_v.bias", kv),
                         attention: try AttentionWeights(file, layer: il, config: c), mlp: try MLPWeights(file, layer: il, config: c))
        }
    }

    func layer(_ il: Int, model m: LanguageModel, x: inout [Float], _ a: inout Activations, cache: inout KVCache, start: Int, tokens T: Int,
               probe: AttentionProbe?) {
        let c = m.config, l = layers[il]
        m.rmsNorm(x, into: &a.h, weight: l.attnNorm, width: c.hidden)
        m.project(l.attention, &a, tokens: T)
        if let b = l.bq { m.addBias(&a.q, b) }
        if let b = l.bk { m.addBias(&a.k, b) }
        if let b = l.bv { m.addBias(&a.v, b) }
        m.rope(&a.q, &a.k, positions: start, count: T, base: c.ropeBase, pairing: .adjacent)
        // The scores are scaled inside the softmax (ggml_soft_max_ext), not q.
        m.attend(l.attention, layer: il, &a, cache: &cache, start: start, tokens: T, scoreScale: 1 / Float(c.headDim).squareRoot(), probe: probe)
        addResidual(&x, a.o)
        m.rmsNorm(x, into: &a.h, weight: l.ffnNorm, width: c.hidden)
        m.gatedMLP(l.mlp, &a, tokens: T, activation: .silu)
        addResidual(&x, a.o)
    }
}
