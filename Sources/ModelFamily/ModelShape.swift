/// The limits a model's shape must keep for the forward pass and the memory arithmetic: one rule
/// for the engine's GGUF loader and the catalogue's `config.json` and GGUF importers, checked
/// before anything is computed from the fields.
public enum ModelShape {
    /// The fields, in the order they are checked.
    public enum Field: String, CaseIterable, Sendable {
        case layers, hidden, heads, kvHeads, headDim, intermediate, vocab, context
    }

    /// Largest value of each field: far above every real model, far below an overflow.
    public static func limit(_ field: Field) -> Int {
        switch field {
        case .layers: 4096
        case .hidden, .heads, .kvHeads, .headDim: field == .hidden ? 1 << 20 : 1 << 14
        case .intermediate: 1 << 24
        case .vocab: 1 << 26
        case .context: 1 << 28
        }
    }

    /// What is wrong with a shape, as "KEY is V; it must be …", or nil when it is usable.
    /// - Parameter key: the file's name for a field ("num_attention_heads", "llama.attention.head_count").
    public static func problem(key: (Field) -> String, values: [Field: Int]) -> String? {
        for field in Field.allCases {
            guard let v = values[field] else { continue }
            guard v >= 1, v <= limit(field) else { return "\(key(field)) is \(v); it must be between 1 and \(limit(field))" }
        }
        if let heads = values[.heads], let kv = values[.kvHeads], heads % kv != 0 {
            return "\(key(.kvHeads)) \(kv) does not divide \(key(.heads)) \(heads) (grouped-query attention needs whole groups)"
        }
        return nil
    }
}

extension ModelShape {
    /// GGUF's metadata key for a field of architecture `arch`.
    public static func ggufKey(_ field: Field, architecture arch: String) -> String {
        switch field {
        case .layers: "\(arch).block_count"
        case .hidden: "\(arch).embedding_length"
        case .heads: "\(arch).attention.head_count"
        case .kvHeads: "\(arch).attention.head_count_kv"
        case .headDim: "\(arch).attention.key_length"
        case .intermediate: "\(arch).feed_forward_length"
        case .vocab: "tokenizer.ggml.tokens"
        case .context: "\(arch).context_length"
        }
    }
}

