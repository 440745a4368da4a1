// A decoder-only transformer over a memory-mapped GGUF. The graph of each architecture is its
// recipe in Architectures/ (Gemma 3, the Llama family), built from the shared blocks in
// Blocks.swift; this file loads the model and runs the embedding, the layers and the logits.
import Foundation
import GGUF
import HalfFloat
import Kernels
import CKernels

/// Why a model cannot be loaded.
public struct ModelLoadError: LocalizedError, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

/// A weight tensor mapped from the GGUF (no copy).
struct Weights {
    static func matrix(_ f: GGUFFile, _ name: String, rows: Int, columns: Int) throws -> QuantizedMatrix {
        guard let t = f.tensor(named: name) else { throw ModelLoadError("\(f.path): tensor \(name) is missing") }
        guard let type = GGMLType(rawValue: t.type) else {
            throw ModelLoadError("\(f.path): tensor \(name) has ggml type \(t.type), which the engine does not support (it reads \(GGMLType.allCases.map(\.name).joined(separator: ", ")))")
        }
        guard t.dimensions == [columns, rows] || (rows == 1 && t.dimensions == [columns]) else {
            throw ModelLoadError("\(f.path): tensor \(name) has shape \(t.dimensions), expected [\(columns), \(rows)]")
        }
        guard let bytes = type.dataBytes(dimensions: t.dimensions), t.fileOffset <= f.fileSize, bytes <= f.fileSize - t.fileOffset else {
            throw ModelLoadError("\(f.path): tensor \(name)'s data (offset \(t.fileOffset)) runs past the end of the file (\(f.fileSize) bytes)")
        }
        return QuantizedMatrix(type: type, rows: rows, columns: columns, data: f.bytes.baseAddress! + t.fileOffset)
    }

    static func vector(_ f: GGUFFile, _ name: String, count: Int) throws -> [Float] {
        let m = try matrix(f, name, rows: 1, columns: count)
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { m.row(0, into: $0.baseAddress!) }
        return out
    }
}

/// A per-(layer, query head) consumer of post-softmax attention rows.
///
/// Called for every query position as `probe(layer, head, position, firstKey, weights)`, with
/// `weights[j]` the attention of the query at `position` to cache slot `firstKey + j` (slot and
/// position are the same while nothing has been evicted; `KVCache.positions` maps them after).
/// Costs nothing when absent.
public typealias AttentionProbe = (_ layer: Int, _ head: Int, _ position: Int, _ firstKey: Int, _ weights: UnsafeBufferPointer<Float>) -> Void

/// A decoder-only transformer over a memory-mapped GGUF (weights are not copied), f32
/// activations, an f16-rounded KV cache as llama.cpp's default.
public final class LanguageModel: @unchecked Sendable {
    public let file: GGUFFile
    public let config: ModelConfig
    public let tokenizer: Tokenizer
    let embedding: QuantizedMatrix
    /// The output projection (`output.weight`, or the embedding when tied).
    let output: QuantizedMatrix
    let outputNorm: [Float]
    /// The architecture's layers and graph.
    let recipe: any ArchitectureRecipe
    /// Per-pair RoPE frequency divisors (`rope_freqs.weight`, Llama 3), else nil.
    let ropeFactors: [Float]?
    /// Worker threads for the matrix products and attention.
    public var threads = 2
    /// Set for the length of a `prefill(…, headLocalProbe: true)`: the attached probe may run on
    /// several threads, one (layer, head) each.
    var probesAreHeadLocal = false

    /// Loads `path` (architecture gemma3, llama, mistral or qwen2).
    /// - Throws: `GGUFError` or `ModelLoadError` naming the file and what is wrong.
    public init(path: String) throws {
        let file = try GGUFFile(path: path)
        self.file = file
        guard let arch = Architecture(rawValue: file.architecture ?? "") else {
            throw ModelLoadError("\(path): architecture '\(file.architecture ?? "none")' is not supported (supported: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let c = try ModelConfig(gguf: file, architecture: arch)
        guard c.heads % c.kvHeads == 0, c.headDim % 2 == 0 else {
            throw ModelLoadError("\(path): \(c.heads) query heads over \(c.kvHeads) KV heads of dimension \(c.headDim) is not a valid attention layout")
        }
        config = c
        tokenizer = try Tokenizer(gguf: file)
        let embeddingMatrix = try Weights.matrix(file, "token_embd.weight", rows: c.vocab, columns: c.hidden)
        let outputMatrix = file.tensor(named: "output.weight") == nil ? embeddingMatrix
            : try Weights.matrix(file, "output.weight", rows: c.vocab, columns: c.hidden)
        outputNorm = try Weights.vector(file, "output_norm.weight", count: c.hidden)
        ropeFactors = file.tensor(named: "rope_freqs.weight") == nil ? nil : try Weights.vector(file, "rope_freqs.weight", count: c.headDim / 2)
        recipe = try arch.recipe.init(file: file, config: c)
        embedding = embeddingMatrix
        output = outputMatrix
    }

    /// A cache for a request of `tokens` tokens in all.
    public func makeCache(tokens: Int) -> KVCache {
        KVCache(layers: config.layers, kvHeads: config.kvHeads, headDim: config.headDim, capacity: tokens)
    }

    /// Runs a prompt through `forward` in chunks of `chunk` tokens (bounding the activations),
    /// returning the logits of the last position (`.last`) or of every position (`.all`).
    /// `afterChunk` sees the number of prompt tokens done after each chunk.
    public func prefill(_ tokens: [Int32], cache: inout KVCache, chunk: Int = 512, logitsFor: LogitPositions = .last,
                        probe: AttentionProbe? = nil, afterChunk: (Int) -> Void = { _ in }) -> [[Float]] {
        var logits: [[Float]] = []
        var i = 0
        while i < tokens.count {
            let part = Array(tokens[i..<min(tokens.count, i + chunk)])
            let out = forward(part, cache: &cache, logitsFor: logitsFor, probe: probe)
            logits = logitsFor == .all ? logits + out : out
            i += part.count
            afterChunk(i)
        }
        return logits
    }

    /// Runs `tokens` at the next positions of `cache` and returns the logits of the positions
    /// `logitsFor` selects (by offset within `tokens`), each `vocab` floats.
    /// - Complexity: O(tokens × parameters + tokens × context × hidden).
    public func forward(_ tokens: [Int32], cache: inout KVCache, logitsFor: LogitPositions = .last,
                        probe: AttentionProbe? = nil) -> [[Float]] {
        let c = config, T = tokens.count, H = c.hidden
        precondition(cache.count + T <= cache.capacity, "KV cache overflow")
        let start = cache.count
        var x = [Float](repeating: 0, count: T * H)
        x.withUnsafeMutableBufferPointer { xp in
            for (t, token) in tokens.enumerated() { embedding.row(Int(token), into: xp.baseAddress! + t * H) }
            if let scale = recipe.embeddingScale(c) {
                for i in xp.indices { xp[i] *= scale }
            }
        }
        var a = Activations(config: c, tokens: T)
        for il in 0..<c.layers {
            recipe.layer(il, model: self, x: &x, &a, cache: &cache, start: start, tokens: T, probe: probe)
        }
        cache.count = start + T
        let wanted: [Int] = switch logitsFor {
        case .last: [T - 1]
        case .all: Array(0..<T)
        }
        let rows = wanted.count == T ? x : Array(x[(T - 1) * H..<T * H])
        var normed = [Float](repeating: 0, count: rows.count)
        rmsNorm(rows, into: &normed, weight: outputNorm, width: H)
        var logits = [Float](repeating: 0, count: wanted.count * c.vocab)
        matmul(output, normed, &logits, wanted.count)
        return (0..<wanted.count).map { Array(logits[$0 * c.vocab..<($0 + 1) * c.vocab]) }
    }
}

/// Which positions of a forward pass produce logits.
public enum LogitPositions: Sendable {
    case last
    case all
}
