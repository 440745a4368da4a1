import GGUF

/// One architecture's graph over the shared blocks (Blocks.swift), in the manner of llama.cpp's
/// `src/models/` and mlx-swift-lm's model files: the defaults llama.cpp applies to keys a GGUF
/// may omit, the per-layer tensors, how the embeddings are scaled and the order of one layer's
/// blocks. Adding an architecture is a file here and a case of `Architecture`.
protocol ArchitectureRecipe: Sendable {
    associatedtype Layer: LayerWeights

    /// llama.cpp's defaults for this architecture.
    static var defaults: ArchitectureDefaults { get }

    /// Every layer's weights.
    var layers: [Layer] { get }

    /// Loads every layer's weights.
    /// - Throws: `ModelLoadError` naming the file and the tensor.
    init(file: GGUFFile, config: ModelConfig) throws

    /// The factor the token embeddings are multiplied by (nil, the default: none).
    func embeddingScale(_ config: ModelConfig) -> Float?

    /// Runs layer `il` on the residual stream `x` (`tokens` rows at positions `start`…).
    func layer(_ il: Int, model: LanguageModel, x: inout [Float], _ a: inout Activations, cache: inout KVCache, start: Int, tokens: Int,
               probe: AttentionProbe?)
}

/// What every architecture's layer has: the attention and MLP projections.
protocol LayerWeights: Sendable {
    var attention: AttentionWeights { get }
    var mlp: MLPWeights { get }
}

extension ArchitectureRecipe {
    func embeddingScale(_ config: ModelConfig) -> Float? { nil }

    /// Layer `il`'s attention projections (the layer-error estimate projects through W_o).
    func attention(of il: Int) -> AttentionWeights { layers[il].attention }
}

/// Hyper-parameters an architecture fixes or defaults when the GGUF does not state them.
struct ArchitectureDefaults: Sendable {
    var rmsEpsilon: Float
    var ropeBase: Float
    /// RoPE base of the sliding-window layers (nil: the global base).
    var ropeBaseLocal: Float?
    /// The sliding window when the GGUF has no `attention.sliding_window` (nil: the architecture
    /// has no sliding-window layers; which layers slide is `LayerPattern.family`'s rule).
    var slidingWindow: Int?
}
