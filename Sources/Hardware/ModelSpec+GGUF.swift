import Kernels
import GGUF
import ModelFamily

extension ModelSpec {
    /// Reads a model's shape from GGUF metadata (`{arch}.block_count`, `{arch}.embedding_length`,
    /// `{arch}.attention.head_count[_kv]`, `{arch}.attention.key_length`, `{arch}.feed_forward_length`,
    /// `{arch}.context_length`, `{arch}.attention.sliding_window`, the token list's length; the LM head
    /// is tied when the file has no `output.weight`).
    /// - Throws: `GGUFError` naming the file and the missing key.
    public static func fromGGUF(path: String) throws -> ModelSpec {
        let file = try GGUFFile(path: path)
        let arch = try file.string("general.architecture")
        func key(_ k: String) -> String { "\(arch).\(k)" }
        let hidden = try file.int(key("embedding_length"))
        let heads = try file.int(key("attention.head_count"))
        guard heads >= 1 else { throw ModelSpecError("\(path): \(key("attention.head_count")) is \(heads); it must be at least 1") }
        let kvHeads = file.metadata[key("attention.head_count_kv")] == nil ? heads : try file.int(key("attention.head_count_kv"))
        let headDim = file.metadata[key("attention.key_length")] == nil ? hidden / heads : try file.int(key("attention.key_length"))
        let vocab: Int
        if let tokens = file.metadata["tokenizer.ggml.tokens"]?.array {
            vocab = tokens.count
        } else {
            vocab = try file.int(key("vocab_size"))
        }
        let pattern = LayerPattern.family(arch, slidingWindow: file.metadata[key("attention.sliding_window")]?.int)
        // The weights must be in the file: a file cut inside its tensor data is refused here, as
        // the engine refuses it (types the kernels do not read are not sized and pass).
        for t in file.tensors {
            guard let type = GGMLType(rawValue: t.type) else { continue }
            guard let bytes = type.dataBytes(dimensions: t.dimensions), t.fileOffset <= file.fileSize, bytes <= file.fileSize - t.fileOffset else {
                throw ModelSpecError("\(path): tensor \(t.name)'s data (offset \(t.fileOffset), shape \(t.dimensions)) runs past the end of the file (\(file.fileSize) bytes)")
            }
        }
        let name = file.metadata["general.name"]?.string ?? NSStringLike(path: path).lastComponent
        let layers = try file.int(key("block_count")), intermediate = try file.int(key("feed_forward_length")), context = try file.int(key("context_length"))
        if let problem = ModelShape.problem(key: { ModelShape.ggufKey($0, architecture: arch) },
                                            values: [.layers: layers, .hidden: hidden, .heads: heads, .kvHeads: kvHeads, .headDim: headDim,
                                                     .intermediate: intermediate, .vocab: vocab, .context: context]) {
            throw ModelSpecError("\(path): \(problem)")
        }
        return ModelSpec(name: name, layers: layers, hidden: hidden, heads: heads, kvHeads: kvHeads,
                         headDim: headDim, intermediate: intermediate, vocab: vocab,
                         maxContext: context,
                         tiedEmbeddings: file.tensor(named: "output.weight") == nil,
                         slidingWindow: pattern.slidingWindow, globalEvery: pattern.globalEvery,
                         qkvBias: file.tensor(named: "blk.0.attn_q.bias") != nil,
                         source: path, ggufPath: path)
    }
}

/// The last path component without Foundation.
private struct NSStringLike {
    let path: String
    var lastComponent: String { path.split(separator: "/").last.map(String.init) ?? path }
}
