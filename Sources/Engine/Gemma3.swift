// Gemma 3 text model, ported from llama.cpp `src/models/gemma3.cpp` (graph) and
// `src/llama-model.cpp` (hyper-parameters):
//   x = embed(token) · √hidden
//   per layer: h = RMSNorm(x)·w_attn_norm; q,k,v = h·W; q,k = per-head RMSNorm·w_q_norm / w_k_norm;
//              NEOX RoPE (base 10 000 on sliding-window layers, `gemma3.rope.freq_base` on global
//              ones); q · 1/√head_dim; causal attention (local layers see the last `window` keys);
//              o = attn·W_o; x += RMSNorm(o)·w_post_attention_norm
//              h = RMSNorm(x)·w_ffn_norm; x += RMSNorm(W_down(gelu_tanh(W_gate h) ⊙ W_up h))·w_post_ffw_norm
//   logits = RMSNorm(x)·w_output_norm · token_embdᵀ (tied)
// GGUF already stores Gemma's RMSNorm weights as (1 + w). Layers with il % 6 == 5 are global.
import Foundation
import GGUF
import HalfFloat
import Kernels

/// Gemma 3's hyper-parameters, from GGUF keys with llama.cpp's defaults.
public struct Gemma3Config: Equatable, Sendable {
    public var layers: Int
    public var hidden: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var ffn: Int
    public var vocab: Int
    public var contextLength: Int
    public var slidingWindow: Int
    public var rmsEpsilon: Float
    public var ropeBaseGlobal: Float
    public var ropeBaseLocal: Float

    public init(layers: Int, hidden: Int, heads: Int, kvHeads: Int, headDim: Int, ffn: Int, vocab: Int, contextLength: Int,
                slidingWindow: Int, rmsEpsilon: Float = 1e-6, ropeBaseGlobal: Float = 1_000_000, ropeBaseLocal: Float = 10_000) {
        self.layers = layers
        self.hidden = hidden
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.ffn = ffn
        self.vocab = vocab
        self.contextLength = contextLength
        self.slidingWindow = slidingWindow
        self.rmsEpsilon = rmsEpsilon
        self.ropeBaseGlobal = ropeBaseGlobal
        self.ropeBaseLocal = ropeBaseLocal
    }

    init(gguf f: GGUFFile) throws {
        func key(_ k: String) -> String { "gemma3.\(k)" }
        let hidden = try f.int(key("embedding_length"))
        let heads = try f.int(key("attention.head_count"))
        self.init(layers: try f.int(key("block_count")), hidden: hidden, heads: heads,
                  kvHeads: f.metadata[key("attention.head_count_kv")]?.int ?? heads,
                  headDim: f.metadata[key("attention.key_length")]?.int ?? hidden / heads,
                  ffn: try f.int(key("feed_forward_length")),
                  vocab: try f.strings("tokenizer.ggml.tokens").count,
                  contextLength: try f.int(key("context_length")),
                  slidingWindow: f.metadata[key("attention.sliding_window")]?.int ?? 512,
                  rmsEpsilon: Float(f.metadata[key("attention.layer_norm_rms_epsilon")]?.double ?? 1e-6),
                  ropeBaseGlobal: Float(f.metadata[key("rope.freq_base")]?.double ?? 1_000_000),
                  ropeBaseLocal: 10_000)
    }

    /// True for layers that attend to the whole sequence.
    public func isGlobal(_ layer: Int) -> Bool { layer % 6 == 5 }
}

/// Why a model cannot be loaded.
public struct ModelLoadError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
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
        guard t.fileOffset + type.rowBytes(columns) * rows <= f.fileSize else {
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
/// Called for every query position as `probe(layer, head, position, weights)`, with `weights[j]`
/// the attention of that query to cache position `firstKey + j`. Costs nothing when absent.
public typealias AttentionProbe = (_ layer: Int, _ head: Int, _ position: Int, _ firstKey: Int, _ weights: UnsafeBufferPointer<Float>) -> Void

/// The KV cache of one sequence: per layer, keys and values of every position so far, sized to
/// the request (prompt + tokens to generate), not to the model's context. Values are rounded to
/// binary16 as they are stored (llama.cpp's default cache type, so the numerics are an f16
/// cache's) and kept as f32 so the attention loops run in SIMD without converting.
public struct KVCache {
    public let capacity: Int
    let stride: Int
    var keys: [[Float]]
    var values: [[Float]]
    public internal(set) var count = 0

    init(layers: Int, capacity: Int, kvDimension: Int) {
        self.capacity = capacity
        stride = kvDimension
        keys = Array(repeating: [Float](repeating: 0, count: capacity * kvDimension), count: layers)
        values = keys
    }

    /// Bytes the cache holds.
    public var bytes: Int { keys.count * capacity * stride * 4 * 2 }
}

/// Gemma 3 over a memory-mapped GGUF, f32 activations.
public final class Gemma3Model: @unchecked Sendable {
    public let file: GGUFFile
    public let config: Gemma3Config
    public let tokenizer: Tokenizer
    let embedding: QuantizedMatrix
    let outputNorm: [Float]
    let blocks: [Block]
    /// Worker threads for the matrix products.
    public var threads = 2

    struct Block {
        var attnNorm, qNorm, kNorm, postAttnNorm, ffnNorm, postFfwNorm: [Float]
        var wq, wk, wv, wo, gate, up, down: QuantizedMatrix
    }

    /// Loads `path` (architecture `gemma3`).
    /// - Throws: `GGUFError` or `ModelLoadError` naming the file and what is wrong.
    public init(path: String) throws {
        let file = try GGUFFile(path: path)
        self.file = file
        guard file.architecture == "gemma3" else {
            throw ModelLoadError("\(path): architecture '\(file.architecture ?? "none")' is not gemma3")
        }
        let c = try Gemma3Config(gguf: file)
        config = c
        tokenizer = try Tokenizer(gguf: file)
        embedding = try Weights.matrix(file, "token_embd.weight", rows: c.vocab, columns: c.hidden)
        outputNorm = try Weights.vector(file, "output_norm.weight", count: c.hidden)
        let q = c.heads * c.headDim, kv = c.kvHeads * c.headDim
        blocks = try (0..<c.layers).map { il in
            let p = "blk.\(il)."
            return Block(attnNorm: try Weights.vector(file, p + "attn_norm.weight", count: c.hidden),
                         qNorm: try Weights.vector(file, p + "attn_q_norm.weight", count: c.headDim),
                         kNorm: try Weights.vector(file, p + "attn_k_norm.weight", count: c.headDim),
                         postAttnNorm: try Weights.vector(file, p + "post_attention_norm.weight", count: c.hidden),
                         ffnNorm: try Weights.vector(file, p + "ffn_norm.weight", count: c.hidden),
                         postFfwNorm: try Weights.vector(file, p + "post_ffw_norm.weight", count: c.hidden),
                         wq: try Weights.matrix(file, p + "attn_q.weight", rows: q, columns: c.hidden),
                         wk: try Weights.matrix(file, p + "attn_k.weight", rows: kv, columns: c.hidden),
                         wv: try Weights.matrix(file, p + "attn_v.weight", rows: kv, columns: c.hidden),
                         wo: try Weights.matrix(file, p + "attn_output.weight", rows: c.hidden, columns: q),
                         gate: try Weights.matrix(file, p + "ffn_gate.weight", rows: c.ffn, columns: c.hidden),
                         up: try Weights.matrix(file, p + "ffn_up.weight", rows: c.ffn, columns: c.hidden),
                         down: try Weights.matrix(file, p + "ffn_down.weight", rows: c.hidden, columns: c.ffn))
        }
    }

    /// A cache for a request of `tokens` tokens in all.
    public func makeCache(tokens: Int) -> KVCache {
        KVCache(layers: config.layers, capacity: tokens, kvDimension: config.kvHeads * config.headDim)
    }

    /// Runs a prompt through `forward` in chunks of `chunk` tokens (bounding the activations),
    /// returning the logits of the last position (`.last`) or of every position (`.all`).
    public func prefill(_ tokens: [Int32], cache: inout KVCache, chunk: Int = 512, logitsFor: LogitPositions = .last,
                        probe: AttentionProbe? = nil) -> [[Float]] {
        var logits: [[Float]] = []
        var i = 0
        while i < tokens.count {
            let part = Array(tokens[i..<min(tokens.count, i + chunk)])
            let out = forward(part, cache: &cache, logitsFor: logitsFor, probe: probe)
            logits = logitsFor == .all ? logits + out : out
            i += part.count
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
        let scale = Float(H).squareRoot()
        x.withUnsafeMutableBufferPointer { xp in
            for (t, token) in tokens.enumerated() {
                embedding.row(Int(token), into: xp.baseAddress! + t * H)
                for i in 0..<H { xp[t * H + i] *= scale }
            }
        }
        let qDim = c.heads * c.headDim, kvDim = c.kvHeads * c.headDim
        var h = [Float](repeating: 0, count: T * H)
        var q = [Float](repeating: 0, count: T * qDim)
        var k = [Float](repeating: 0, count: T * kvDim)
        var v = [Float](repeating: 0, count: T * kvDim)
        var attn = [Float](repeating: 0, count: T * qDim)
        var o = [Float](repeating: 0, count: T * H)
        var g = [Float](repeating: 0, count: T * c.ffn)
        var u = [Float](repeating: 0, count: T * c.ffn)
        for (il, b) in blocks.enumerated() {
            rmsNorm(x, into: &h, weight: b.attnNorm, width: H)
            matmul(b.wq, h, &q, T)
            matmul(b.wk, h, &k, T)
            matmul(b.wv, h, &v, T)
            rmsNorm(q, into: &q, weight: b.qNorm, width: c.headDim)
            rmsNorm(k, into: &k, weight: b.kNorm, width: c.headDim)
            rope(&q, &k, positions: start, count: T, base: c.isGlobal(il) ? c.ropeBaseGlobal : c.ropeBaseLocal)
            let qScale = 1 / Float(c.headDim).squareRoot()
            for i in q.indices { q[i] *= qScale }
            for i in 0..<(T * kvDim) {
                cache.keys[il][start * kvDim + i] = HalfFloat.round(k[i])
                cache.values[il][start * kvDim + i] = HalfFloat.round(v[i])
            }
            attention(layer: il, q: q, cache: cache, start: start, count: T, out: &attn, window: c.isGlobal(il) ? nil : c.slidingWindow, probe: probe)
            matmul(b.wo, attn, &o, T)
            rmsNorm(o, into: &o, weight: b.postAttnNorm, width: H)
            for i in x.indices { x[i] += o[i] }
            rmsNorm(x, into: &h, weight: b.ffnNorm, width: H)
            matmul(b.gate, h, &g, T)
            matmul(b.up, h, &u, T)
            for i in g.indices { g[i] = geluF16(g[i]) * u[i] }
            matmul(b.down, g, &o, T)
            rmsNorm(o, into: &o, weight: b.postFfwNorm, width: H)
            for i in x.indices { x[i] += o[i] }
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
        matmul(embedding, normed, &logits, wanted.count)
        return (0..<wanted.count).map { Array(logits[$0 * c.vocab..<($0 + 1) * c.vocab]) }
    }

    /// Y[t] = W · X[t] for every token t (rows split across threads; each weight row is
    /// dequantised once and used for all tokens).
    func matmul(_ w: QuantizedMatrix, _ x: [Float], _ y: inout [Float], _ tokens: Int) {
        if tokens == 1 {
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { w.multiply(xp.baseAddress!, into: $0.baseAddress!, threads: threads) } }
        } else {
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { w.multiplyBatch(xp.baseAddress!, tokens: tokens, into: $0.baseAddress!, threads: threads) } }
        }
    }

    /// Causal attention of `count` queries (positions start…) against the cache.
    func attention(layer il: Int, q: [Float], cache: KVCache, start: Int, count T: Int, out: inout [Float],
                   window: Int?, probe: AttentionProbe?) {
        let c = config, d = c.headDim, group = c.heads / c.kvHeads
        let qDim = c.heads * d, kvDim = c.kvHeads * d
        let keys = cache.keys[il], values = cache.values[il]
        let work = T * c.heads
        nonisolated(unsafe) let probeRef = probe
        q.withUnsafeBufferPointer { qp in
            keys.withUnsafeBufferPointer { kp in
                values.withUnsafeBufferPointer { vp in
                    out.withUnsafeMutableBufferPointer { op in
                        nonisolated(unsafe) let qb = qp.baseAddress!, kb = kp.baseAddress!, vb = vp.baseAddress!, ob = op.baseAddress!
                        let workers = min(threads, max(1, work))
                        // Probes are called in a fixed order: run single-threaded when one is attached.
                        let lanes = probeRef == nil ? workers : 1
                        DispatchQueue.concurrentPerform(iterations: lanes) { w in
                            var scores = [Float](repeating: 0, count: start + T)
                            var acc = [Float](repeating: 0, count: d)
                            var qh = [Float](repeating: 0, count: d)
                            var item = w
                            while item < work {
                                let t = item / c.heads, head = item % c.heads, kvHead = head / group
                                let pos = start + t
                                let first = window.map { max(0, pos - $0 + 1) } ?? 0
                                // As ggml's f16 × f32 product: the query is rounded to f16.
                                for i in 0..<d { qh[i] = HalfFloat.round(qb[t * qDim + head * d + i]) }
                                var maxScore = -Float.infinity
                                qh.withUnsafeBufferPointer { qp in
                                    for j in first...pos {
                                        let s = dotF32(qp.baseAddress!, kb + j * kvDim + kvHead * d, d)
                                        scores[j - first] = s
                                        maxScore = max(maxScore, s)
                                    }
                                }
                                let n = pos - first + 1
                                var sum: Float = 0
                                for j in 0..<n {
                                    let e = expf(scores[j] - maxScore)
                                    scores[j] = e
                                    sum += e
                                }
                                let inv = 1 / sum
                                for i in 0..<d { acc[i] = 0 }
                                acc.withUnsafeMutableBufferPointer { ap in
                                    for j in 0..<n {
                                        let p = scores[j] * inv
                                        scores[j] = p
                                        // The weights meet the f16 V as f16.
                                        axpy(HalfFloat.round(p), vb + (first + j) * kvDim + kvHead * d, ap.baseAddress!, d)
                                    }
                                }
                                for i in 0..<d { ob[t * qDim + head * d + i] = acc[i] }
                                if let probeRef {
                                    scores.withUnsafeBufferPointer { probeRef(il, head, pos, first, UnsafeBufferPointer(rebasing: $0[0..<n])) }
                                }
                                item += lanes
                            }
                        }
                    }
                }
            }
        }
    }

    /// NEOX rotary embedding (pairs i and i + d/2), θ_i = pos · base^(−2i/d), applied to the
    /// queries and keys of the same positions with one cos/sin per (position, i).
    func rope(_ q: inout [Float], _ k: inout [Float], positions start: Int, count T: Int, base: Float) {
        let d = config.headDim, half = d / 2
        func rotate(_ x: inout [Float], _ heads: Int, _ t: Int, _ i: Int, _ cs: Float, _ sn: Float) {
            for h in 0..<heads {
                let o = (t * heads + h) * d
                let x0 = x[o + i], x1 = x[o + i + half]
                x[o + i] = x0 * cs - x1 * sn
                x[o + i + half] = x0 * sn + x1 * cs
            }
        }
        var inv = [Float](repeating: 0, count: half)
        for i in 0..<half { inv[i] = powf(base, -2 * Float(i) / Float(d)) }
        for t in 0..<T { // position-major: q and k are walked in memory order
            let pos = Float(start + t)
            for i in 0..<half {
                let theta = pos * inv[i]
                let cs = cosf(theta), sn = sinf(theta)
                rotate(&q, config.heads, t, i, cs, sn)
                rotate(&k, config.kvHeads, t, i, cs, sn)
            }
        }
    }

    /// RMSNorm of every `width` slice: x / √(mean(x²) + ε) · weight.
    func rmsNorm(_ x: [Float], into y: inout [Float], weight: [Float], width: Int) {
        let eps = config.rmsEpsilon
        for s in stride(from: 0, to: x.count, by: width) {
            var ss: Float = 0
            for i in 0..<width { ss += x[s + i] * x[s + i] }
            let scale = 1 / (ss / Float(width) + eps).squareRoot()
            for i in 0..<width { y[s + i] = x[s + i] * scale * weight[i] }
        }
    }
}

/// Which positions of a forward pass produce logits.
public enum LogitPositions: Sendable {
    case last
    case all
}

/// GELU as ggml's CPU backend computes it (`ggml_vec_gelu_f32` with `GGML_GELU_FP16`): a
/// table over binary16 inputs holding binary16 results, 0 below −10, identity above 10.
@inline(__always)
func geluF16(_ x: Float) -> Float {
    if x <= -10 { return 0 }
    if x >= 10 { return x }
    return HalfFloat.round(geluTanh(HalfFloat.round(x)))
}

/// GELU with the tanh approximation: ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
@inline(__always)
func geluTanh(_ x: Float) -> Float {
    0.5 * x * (1 + tanhf(0.797_884_56 * (x + 0.044715 * x * x * x)))
}
