import GGUF
import ModelFamily

/// The graph families the engine runs.
public enum Architecture: String, Sendable, CaseIterable {
    case gemma3, llama, mistral, qwen2

    /// The recipe that builds its graph (Architectures/).
    var recipe: any ArchitectureRecipe.Type {
        switch self {
        case .gemma3: Gemma3.self
        case .llama, .mistral, .qwen2: LlamaFamily.self
        }
    }
}

/// A model's hyper-parameters, from GGUF keys (`<arch>.block_count`, …) with llama.cpp's defaults.
public struct ModelConfig: Equatable, Sendable {
    public var architecture: Architecture
    public var layers: Int
    public var hidden: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var ffn: Int
    public var vocab: Int
    public var contextLength: Int
    public var rmsEpsilon: Float
    /// RoPE base of the global (full-attention) layers.
    public var ropeBase: Float
    /// RoPE base of sliding-window layers (Gemma 3), else `ropeBase`.
    public var ropeBaseLocal: Float
    /// Multiplies positions (linear RoPE scaling: 1 / factor).
    public var ropeFrequencyScale: Float
    /// Which layers are global and the window of the others (`LayerPattern`).
    public var pattern: LayerPattern

    /// The window of sliding-window layers (nil: every layer is global).
    public var slidingWindow: Int? { pattern.slidingWindow }

    public init(architecture: Architecture, layers: Int, hidden: Int, heads: Int, kvHeads: Int, headDim: Int, ffn: Int, vocab: Int,
                contextLength: Int, rmsEpsilon: Float, ropeBase: Float, ropeBaseLocal: Float? = nil, ropeFrequencyScale: Float = 1,
                slidingWindow: Int? = nil) {
        self.architecture = architecture
        self.layers = layers
        self.hidden = hidden
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.ffn = ffn
        self.vocab = vocab
        self.contextLength = contextLength
        self.rmsEpsilon = rmsEpsilon
        self.ropeBase = ropeBase
        self.ropeBaseLocal = ropeBaseLocal ?? ropeBase
        self.ropeFrequencyScale = ropeFrequencyScale
        pattern = .family(architecture.rawValue, slidingWindow: slidingWindow)
    }

    init(gguf f: GGUFFile, architecture: Architecture) throws {
        let prefix = architecture.rawValue
        func key(_ k: String) -> String { "\(prefix).\(k)" }
        let hidden = try f.int(key("embedding_length"))
        let heads = try f.int(key("attention.head_count"))
        guard heads >= 1 else { throw ModelLoadError("\(f.path): \(key("attention.head_count")) is \(heads); it must be at least 1") }
        let layers = try f.int(key("block_count")), ffn = try f.int(key("feed_forward_length")), context = try f.int(key("context_length"))
        let kvHeads = f.metadata[key("attention.head_count_kv")]?.int ?? heads
        let headDim = f.metadata[key("attention.key_length")]?.int ?? hidden / heads
        let vocab = try f.strings("tokenizer.ggml.tokens").count
        if let problem = ModelShape.problem(key: { ModelShape.ggufKey($0, architecture: prefix) },
                                            values: [.layers: layers, .hidden: hidden, .heads: heads, .kvHeads: kvHeads, .headDim: headDim,
                                                     .intermediate: ffn, .vocab: vocab, .context: context]) {
            throw ModelLoadError("\(f.path): \(problem)")
        }
        let defaults = architecture.recipe.defaults
        var scale: Float = 1
        if let type = f.metadata[key("rope.scaling.type")]?.string, type != "none" {
            guard type == "linear" else {
                throw ModelLoadError("\(f.path): \(key("rope.scaling.type")) '\(type)' is not supported (none and linear are)")
            }
            scale = 1 / Float(f.metadata[key("rope.scaling.factor")]?.double ?? 1)
        }
        self.init(architecture: architecture, layers: layers, hidden: hidden, heads: heads, kvHeads: kvHeads, headDim: headDim,
                  ffn: ffn, vocab: vocab, contextLength: context,
                  rmsEpsilon: Float(f.metadata[key("attention.layer_norm_rms_epsilon")]?.double ?? Double(defaults.rmsEpsilon)),
                  ropeBase: Float(f.metadata[key("rope.freq_base")]?.double ?? Double(defaults.ropeBase)),
                  ropeBaseLocal: defaults.ropeBaseLocal, ropeFrequencyScale: scale,
                  slidingWindow: defaults.slidingWindow.map { f.metadata[key("attention.sliding_window")]?.int ?? $0 })
    }

    /// True for layers that attend to the whole sequence (`LayerPattern.isGlobal`).
    public func isGlobal(_ layer: Int) -> Bool { pattern.isGlobal(layer) }

    /// The keys a query of `layer` sees back from itself (nil: all).
    public func window(_ layer: Int) -> Int? { pattern.window(layer) }

    /// Query heads per KV head.
    public var groupSize: Int { heads / kvHeads }
}
