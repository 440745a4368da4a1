import GGUF

/// Gemma 3 (llama.cpp `src/models/gemma3.cpp`):
///
///     x = embed(token) · √hidden
///     per layer: h = RMSNorm(x)·w_attn_norm; q,k,v = h·W; q,k = per-head RMSNorm·w_q_norm / w_k_norm
///                NEOX RoPE (base 10 000 on sliding-window layers, `gemma3.rope.freq_base` on global
///                ones); q · 1/√head_dim; causal attention (local layers see the last `window` keys)
///                x += RMSNorm(attn·W_o)·w_post_attention_norm
///                h = RMSNorm(x)·w_ffn_norm; x += RMSNorm(W_down(gelu_tanh(W_gate h) ⊙ W_up h))·w_post_ffw_norm
///     logits = RMSNorm(x)·w_output_norm · token_embdᵀ (tied)
///
/// GGUF already stores Gemma's RMSNorm weights as (1 + w). Which layers are global is
/// `LayerPattern`'s rule (five local to each global one).
struct Gemma3: ArchitectureRecipe {
    static let defaults = ArchitectureDefaults(rmsEpsilon: 1e-6, ropeBase: 1_000_000, ropeBaseLocal: 10_000, slidingWindow: 512)

    struct Layer: LayerWeights {
        var attnNorm, qNorm, kNorm, postAttnNorm, ffnNorm, postFfwNorm: [Float]
        var attention: AttentionWeights
        var mlp: MLPWeights
    }

    let layers: [Layer]

    init(file: GGUFFile, config c: ModelConfig) throws {
        layers = try (0..<c.layers).map { il in
            let p = "blk.\(il)."
            return Layer(attnNorm: try Weights.vector(file, p + "attn_norm.weight", count: c.hidden),
                         qNorm: try Weights.vector(file, p + "attn_q_norm.weight", count: c.headDim),
                         kNorm: try Weights.vector(file, p + "attn_k_norm.weight", count: c.headDim),
                         postAttnNorm: try Weights.vector(file, p + "post_attention_norm.weight", count: c.hidden),
                         ffnNorm: try Weights.vector(file, p + "ffn_norm.weight", count: c.hidden),
                         postFfwNorm: try Weights.vector(file, p + "post_ffw_norm.weight", count: c.hidden),
                         attention: try AttentionWeights(file, layer: il, config: c), mlp: try MLPWeights(file, layer: il, config: c))
        }
    }

    func embeddingScale(_ c: ModelConfig) -> Float? { Float(c.hidden).squareRoot() }

    func layer(_ il: Int, model m: LanguageModel, x: inout [Float], _ a: inout Activations, cache: inout KVCache, start: Int, tokens T: Int,
               probe: AttentionProbe?) {
        let c = m.config, l = layers[il]
        m.rmsNorm(x, into: &a.h, weight: l.attnNorm, width: c.hidden)
        m.project(l.attention, &a, tokens: T)
        m.rmsNorm(a.q, into: &a.q, weight: l.qNorm, width: c.headDim)
        m.rmsNorm(a.k, into: &a.k, weight: l.kNorm, width: c.headDim)
        m.rope(&a.q, &a.k, positions: start, count: T, base: c.isGlobal(il) ? c.ropeBase : c.ropeBaseLocal, pairing: .neox)
        // Gemma scales q before the product (ggml_scale), not the scores.
        let qScale = 1 / Float(c.headDim).squareRoot()
        for i in a.q.indices { a.q[i] *= qScale }
        m.attend(l.attention, layer: il, &a, cache: &cache, start: start, tokens: T, scoreScale: 1, probe: probe)
        m.rmsNorm(a.o, into: &a.o, weight: l.postAttnNorm, width: c.hidden)
        addResidual(&x, a.o)
        m.rmsNorm(x, into: &a.h, weight: l.ffnNorm, width: c.hidden)
        m.gatedMLP(l.mlp, &a, tokens: T, activation: .geluF16)
        m.rmsNorm(a.o, into: &a.o, weight: l.postFfwNorm, width: c.hidden)
        addResidual(&x, a.o)
    }
}
