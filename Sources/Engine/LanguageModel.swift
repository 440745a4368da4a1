// Decoder-only transformers over a memory-mapped GGUF, ported from llama.cpp's graphs:
//
// Gemma 3 (`src/models/gemma3.cpp`):
//   x = embed(token) · √hidden
//   per layer: h = RMSNorm(x)·w_attn_norm; q,k,v = h·W; q,k = per-head RMSNorm·w_q_norm / w_k_norm;
//              NEOX RoPE (base 10 000 on sliding-window layers, `gemma3.rope.freq_base` on global
//              ones); q · 1/√head_dim; causal attention (local layers see the last `window` keys);
//              o = attn·W_o; x += RMSNorm(o)·w_post_attention_norm
//              h = RMSNorm(x)·w_ffn_norm; x += RMSNorm(W_down(gelu_tanh(W_gate h) ⊙ W_up h))·w_post_ffw_norm
//   logits = RMSNorm(x)·w_output_norm · token_embdᵀ (tied)
//   GGUF already stores Gemma's RMSNorm weights as (1 + w). Layers with il % 6 == 5 are global.
//
// Llama family — Llama, Mistral, Qwen2, SmolLM (`src/models/llama.cpp`, `qwen2.cpp`):
//   x = embed(token)
//   per layer: h = RMSNorm(x)·w_attn_norm; q,k,v = h·W (+ b for Qwen2); NORM RoPE (adjacent
//              pairs, the converter permuted Q/K; `rope_freqs` factors and linear scaling when
//              the GGUF has them); softmax(q·kᵀ/√head_dim) over the cache (GQA: query head h
//              reads KV head h / (heads / kv_heads)); x += attn·W_o
//              h = RMSNorm(x)·w_ffn_norm; x += W_down(silu(W_gate h) ⊙ W_up h)
//   logits = RMSNorm(x)·w_output_norm · output (or token_embd when there is no output.weight)
import Foundation
import GGUF
import HalfFloat
import Kernels
import CKernels

/// The graph families the engine runs.
public enum Architecture: String, Sendable, CaseIterable {
    case gemma3, llama, mistral, qwen2

    var isLlamaFamily: Bool { self != .gemma3 }
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
    /// The window of sliding-window layers (nil: every layer is global).
    public var slidingWindow: Int?

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
        self.slidingWindow = slidingWindow
    }

    init(gguf f: GGUFFile, architecture: Architecture) throws {
        let prefix = architecture.rawValue
        func key(_ k: String) -> String { "\(prefix).\(k)" }
        let hidden = try f.int(key("embedding_length"))
        let heads = try f.int(key("attention.head_count"))
        let gemma = architecture == .gemma3
        var scale: Float = 1
        if let type = f.metadata[key("rope.scaling.type")]?.string, type != "none" {
            guard type == "linear" else {
                throw ModelLoadError("\(f.path): \(key("rope.scaling.type")) '\(type)' is not supported (none and linear are)")
            }
            scale = 1 / Float(f.metadata[key("rope.scaling.factor")]?.double ?? 1)
        }
        self.init(architecture: architecture, layers: try f.int(key("block_count")), hidden: hidden, heads: heads,
                  kvHeads: f.metadata[key("attention.head_count_kv")]?.int ?? heads,
                  headDim: f.metadata[key("attention.key_length")]?.int ?? hidden / heads,
                  ffn: try f.int(key("feed_forward_length")),
                  vocab: try f.strings("tokenizer.ggml.tokens").count,
                  contextLength: try f.int(key("context_length")),
                  rmsEpsilon: Float(f.metadata[key("attention.layer_norm_rms_epsilon")]?.double ?? (gemma ? 1e-6 : 1e-5)),
                  ropeBase: Float(f.metadata[key("rope.freq_base")]?.double ?? (gemma ? 1_000_000 : 10_000)),
                  ropeBaseLocal: gemma ? 10_000 : nil, ropeFrequencyScale: scale,
                  slidingWindow: gemma ? f.metadata[key("attention.sliding_window")]?.int ?? 512 : nil)
    }

    /// True for layers that attend to the whole sequence (Gemma 3: il % 6 == 5; Llama: all).
    public func isGlobal(_ layer: Int) -> Bool { architecture != .gemma3 || layer % 6 == 5 }

    /// The keys a query of `layer` sees back from itself (nil: all).
    public func window(_ layer: Int) -> Int? { isGlobal(layer) ? nil : slidingWindow }

    /// Query heads per KV head.
    public var groupSize: Int { heads / kvHeads }
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
    let blocks: [Block]
    /// Per-pair RoPE frequency divisors (`rope_freqs.weight`, Llama 3), else nil.
    let ropeFactors: [Float]?
    /// Worker threads for the matrix products and attention.
    public var threads = 2

    struct Block {
        var attnNorm, ffnNorm: [Float]
        /// Gemma 3 only: per-head q/k norms and the norms after attention and FFN.
        var qNorm, kNorm, postAttnNorm, postFfwNorm: [Float]?
        /// Qwen2 only: projection biases.
        var bq, bk, bv: [Float]?
        var wq, wk, wv, wo, gate, up, down: QuantizedMatrix
    }

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
        let q = c.heads * c.headDim, kv = c.kvHeads * c.headDim
        let gemma = arch == .gemma3
        func optional(_ name: String, _ count: Int) throws -> [Float]? {
            file.tensor(named: name) == nil ? nil : try Weights.vector(file, name, count: count)
        }
        let blocks: [Block] = try (0..<c.layers).map { il in
            let p = "blk.\(il)."
            return Block(attnNorm: try Weights.vector(file, p + "attn_norm.weight", count: c.hidden),
                         ffnNorm: try Weights.vector(file, p + "ffn_norm.weight", count: c.hidden),
                         qNorm: gemma ? try Weights.vector(file, p + "attn_q_norm.weight", count: c.headDim) : nil,
                         kNorm: gemma ? try Weights.vector(file, p + "attn_k_norm.weight", count: c.headDim) : nil,
                         postAttnNorm: gemma ? try Weights.vector(file, p + "post_attention_norm.weight", count: c.hidden) : nil,
                         postFfwNorm: gemma ? try Weights.vector(file, p + "post_ffw_norm.weight", count: c.hidden) : nil,
                         bq: try optional(p + "attn_q.bias", q), bk: try optional(p + "attn_k.bias", kv), bv: try optional(p + "attn_v.bias", kv),
                         wq: try Weights.matrix(file, p + "attn_q.weight", rows: q, columns: c.hidden),
                         wk: try Weights.matrix(file, p + "attn_k.weight", rows: kv, columns: c.hidden),
                         wv: try Weights.matrix(file, p + "attn_v.weight", rows: kv, columns: c.hidden),
                         wo: try Weights.matrix(file, p + "attn_output.weight", rows: c.hidden, columns: q),
                         gate: try Weights.matrix(file, p + "ffn_gate.weight", rows: c.ffn, columns: c.hidden),
                         up: try Weights.matrix(file, p + "ffn_up.weight", rows: c.ffn, columns: c.hidden),
                         down: try Weights.matrix(file, p + "ffn_down.weight", rows: c.hidden, columns: c.ffn))
        }
        self.blocks = blocks
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
        let gemma = c.architecture == .gemma3
        var x = [Float](repeating: 0, count: T * H)
        x.withUnsafeMutableBufferPointer { xp in
            for (t, token) in tokens.enumerated() { embedding.row(Int(token), into: xp.baseAddress! + t * H) }
            if gemma {
                let scale = Float(H).squareRoot()
                for i in xp.indices { xp[i] *= scale }
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
            if let bias = b.bq { addBias(&q, bias) }
            if let bias = b.bk { addBias(&k, bias) }
            if let bias = b.bv { addBias(&v, bias) }
            if let w = b.qNorm { rmsNorm(q, into: &q, weight: w, width: c.headDim) }
            if let w = b.kNorm { rmsNorm(k, into: &k, weight: w, width: c.headDim) }
            rope(&q, &k, positions: start, count: T, base: c.isGlobal(il) ? c.ropeBase : c.ropeBaseLocal)
            let qScale = 1 / Float(c.headDim).squareRoot()
            // Gemma scales q before the product (ggml_scale); Llama scales the scores in the softmax.
            if gemma { for i in q.indices { q[i] *= qScale } }
            cache.append(layer: il, keys: k, values: v, tokens: T, firstPosition: start)
            attention(layer: il, q: q, cache: cache, start: start, count: T, out: &attn, window: c.window(il),
                      scoreScale: gemma ? 1 : qScale, probe: probe)
            matmul(b.wo, attn, &o, T)
            if let w = b.postAttnNorm { rmsNorm(o, into: &o, weight: w, width: H) }
            for i in x.indices { x[i] += o[i] }
            rmsNorm(x, into: &h, weight: b.ffnNorm, width: H)
            matmul(b.gate, h, &g, T)
            matmul(b.up, h, &u, T)
            if gemma {
                for i in g.indices { g[i] = geluF16(g[i]) * u[i] }
            } else {
                swiglu(&g, u)
            }
            matmul(b.down, g, &o, T)
            if let w = b.postFfwNorm { rmsNorm(o, into: &o, weight: w, width: H) }
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
        matmul(output, normed, &logits, wanted.count)
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

    func addBias(_ y: inout [Float], _ bias: [Float]) {
        for s in stride(from: 0, to: y.count, by: bias.count) {
            for i in bias.indices { y[s + i] += bias[i] }
        }
    }

    /// Causal attention of `count` queries (positions start…) against the cache: query head h
    /// reads KV head h / groupSize; scores are (q · k) · scoreScale.
    ///
    /// The arithmetic is llama.cpp's (non-flash) attention on an f16 cache, operation for
    /// operation: q rounded to f16; each score a dot in tinyBLAS's order (a batch) or
    /// `ggml_vec_dot_f16`'s (one token); softmax with ggml's vectorised exp over 8-cell groups
    /// aligned at cell 0, the group sums added in double; the weights rounded to f16 and each
    /// output dimension a dot of the weights with the transposed values in the same two orders.
    /// A work item is one token and either a whole GQA group (its query heads share every key
    /// and value load) or, when there are too few tokens to keep the threads busy, one head.
    func attention(layer il: Int, q: [Float], cache: KVCache, start: Int, count T: Int, out: inout [Float],
                   window: Int?, scoreScale: Float, probe: AttentionProbe?) {
        let c = config, d = c.headDim, group = c.groupSize
        let qDim = c.heads * d
        let keys = cache.keys[il], values = cache.values[il]
        let capacity = cache.capacity, stride = cache.valueStride
        // Slots before this call's tokens, per KV head (cache.append already added them).
        let before = cache.lengths[il].map { $0 - T }
        let slotPositions = cache.positions?[il]
        let headsPerItem = T * c.kvHeads >= 2 * threads ? group : 1
        let itemsPerToken = c.heads / headsPerItem
        let work = T * itemsPerToken
        // One token's products follow ggml_vec_dot_f16 (32-cell groups), a batch's tinyBLAS (8).
        let order = T == 1 ? Int32(CKV_ORDER_VEC_DOT_F16.rawValue) : Int32(CKV_ORDER_GEMM.rawValue)
        let align = T == 1 ? 32 : 8
        nonisolated(unsafe) let probeRef = probe
        q.withUnsafeBufferPointer { qp in
            keys.withUnsafeBufferPointer { kp in
                values.withUnsafeBufferPointer { vp in
                    out.withUnsafeMutableBufferPointer { op in
                        nonisolated(unsafe) let qb = qp.baseAddress!, kb = kp.baseAddress!, vb = vp.baseAddress!, ob = op.baseAddress!
                        let workers = min(threads, max(1, work))
                        // Probes are called in a fixed order: run single-threaded when one is attached.
                        let lanes = probeRef == nil ? workers : 1
                        WorkerPool.shared.run(iterations: lanes, threads: lanes) { w in
                            // Per head of an item: its scores (then softmax numerators and weights
                            // as floats) and its f16 weights, one slot per cache cell.
                            var scores = [Float](repeating: 0, count: headsPerItem * stride)
                            var weights = [Float](repeating: 0, count: headsPerItem * stride)
                            var qh = [Float](repeating: 0, count: headsPerItem * d)
                            var item = w
                            while item < work {
                                let t = item / itemsPerToken, head0 = (item % itemsPerToken) * headsPerItem
                                let kvHead = head0 / group
                                // `pos` is this query's last visible slot; `first` the first one the
                                // sliding window (by original position) lets it see.
                                let pos = before[kvHead] + t
                                let first: Int = window.map { w in
                                    let oldest = start + t - w + 1
                                    guard let p = slotPositions?[kvHead] else { return max(0, oldest) }
                                    var lo = 0, hi = pos
                                    while lo < hi { let mid = (lo + hi) / 2; if p[mid] < oldest { lo = mid + 1 } else { hi = mid } }
                                    return lo
                                } ?? 0
                                let begin = first / align * align, end = (pos + align) / align * align
                                let kHead = kb + kvHead * capacity * d, vHead = vb + kvHead * d * stride
                                let outItem = ob + t * qDim + head0 * d
                                scores.withUnsafeMutableBufferPointer { sp in
                                    weights.withUnsafeMutableBufferPointer { wp in
                                        qh.withUnsafeMutableBufferPointer { qhp in
                                            ckv_round_to_half(qb + t * qDim + head0 * d, qhp.baseAddress!, headsPerItem * d)
                                            ckv_attention_scores(order, qhp.baseAddress!, Int32(headsPerItem), d, kHead, Int32(d),
                                                                 Int32(first), Int32(pos + 1), scoreScale, sp.baseAddress!, stride)
                                        }
                                        for r in 0..<headsPerItem {
                                            let row = sp.baseAddress! + r * stride
                                            let inv = softmaxNumerators(row, first: first, last: pos)
                                            ckv_attention_weights(row, Int32(first), Int32(pos + 1), inv, wp.baseAddress! + r * stride,
                                                                  Int32(begin), Int32(end))
                                        }
                                        ckv_attention_values(order, wp.baseAddress!, Int32(headsPerItem), stride, vHead, stride, Int32(d),
                                                             Int32(begin), Int32(end), outItem, d)
                                        if let probeRef {
                                            for r in 0..<headsPerItem {
                                                let row = UnsafeBufferPointer(start: sp.baseAddress! + r * stride + first, count: pos + 1 - first)
                                                probeRef(il, head0 + r, start + t, first, row)
                                            }
                                        }
                                    }
                                }
                                item += lanes
                            }
                        }
                    }
                }
            }
        }
    }

    /// Rotary embedding of the queries and keys of the same positions, one cos/sin per
    /// (position, pair). Angles as ggml's `rope_cache_init`: θ₀ = pos · freq_scale and each next
    /// pair's θ is the previous one times base^(−2/d) (divided by `rope_freqs` when present).
    /// Gemma pairs i with i + d/2 (NEOX); the Llama family pairs 2i with 2i + 1.
    func rope(_ q: inout [Float], _ k: inout [Float], positions start: Int, count T: Int, base: Float) {
        let d = config.headDim, half = d / 2
        let neox = config.architecture == .gemma3
        let thetaScale = powf(base, -2 / Float(d))
        var cs = [Float](repeating: 0, count: half), sn = [Float](repeating: 0, count: half)
        func rotate(_ x: inout [Float], _ heads: Int, _ t: Int) {
            x.withUnsafeMutableBufferPointer { xp in
                for h in 0..<heads {
                    let o = (t * heads + h) * d
                    for i in 0..<half {
                        let a = neox ? o + i : o + 2 * i, b = neox ? a + half : a + 1
                        let x0 = xp[a], x1 = xp[b]
                        // As GCC contracts ggml's x0·cos − x1·sin: the first product fused.
                        xp[a] = (-(x1 * sn[i])).addingProduct(x0, cs[i])
                        xp[b] = (x1 * cs[i]).addingProduct(x0, sn[i])
                    }
                }
            }
        }
        for t in 0..<T {
            var theta = Float(start + t)
            for i in 0..<half {
                let angle = config.ropeFrequencyScale * (ropeFactors.map { theta / $0[i] } ?? theta)
                cs[i] = cosf(angle)
                sn[i] = sinf(angle)
                theta *= thetaScale
            }
            rotate(&q, config.heads, t)
            rotate(&k, config.kvHeads, t)
        }
    }

    /// RMSNorm of every `width` slice: x / √(mean(x²) + ε) · weight, as ggml: the squares
    /// summed in double, the mean rounded to float.
    func rmsNorm(_ x: [Float], into y: inout [Float], weight: [Float], width: Int) {
        let eps = config.rmsEpsilon
        for s in stride(from: 0, to: x.count, by: width) {
            var ss: Double = 0
            for i in 0..<width { ss += Double(x[s + i] * x[s + i]) }
            let mean = Float(ss / Double(width))
            let scale = 1 / (mean + eps).squareRoot()
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
    return geluTable[Int(HalfFloat.bits(x))]
}

/// ggml's `ggml_table_gelu_f16`: for every binary16 input, its GELU rounded to binary16.
let geluTable: [Float] = (0...UInt16.max).map { HalfFloat.round(geluTanh(HalfFloat.float($0))) }

/// GELU with the tanh approximation, as ggml's `ggml_gelu_f32`: ½x(1 + tanh(√(2/π)·x·(1 +
/// 0.044715·x·x))), the 1 + (0.044715·x)·x fused the way GCC contracts ggml's C.
@inline(__always)
func geluTanh(_ x: Float) -> Float {
    let inner = Float(1).addingProduct(0.044715 * x, x)
    return 0.5 * x * (1 + tanhf(0.797_884_560_802_865_355_879_892_119_868_76 * x * inner))
}

/// g = silu(g) ⊙ u with ggml's vectorised SiLU (`ggml_vec_swiglu_f32`), 8 at a time, the
/// remainder with the scalar formula.
func swiglu(_ g: inout [Float], _ u: [Float]) {
    g.withUnsafeMutableBufferPointer { gp in
        u.withUnsafeBufferPointer { up in
            var i = 0
            while i + 8 <= gp.count {
                let x = UnsafeRawPointer(gp.baseAddress! + i).loadUnaligned(as: SIMD8<Float>.self)
                let v = UnsafeRawPointer(up.baseAddress! + i).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(gp.baseAddress! + i).storeBytes(of: ggmlSiLU(x) * v, as: SIMD8<Float>.self)
                i += 8
            }
            while i < gp.count {
                gp[i] = gp[i] / (1 + expf(-gp[i])) * up[i]
                i += 1
            }
        }
    }
}

/// Replaces the scores in cells first…last by exp(score − max), computed in 8-cell groups
/// aligned at cell 0 (cells outside the range count as exp(−∞) = 0), and returns 1 / Σ with
/// the group sums added in double, as ggml's softmax.
func softmaxNumerators(_ sp: UnsafeMutablePointer<Float>, first: Int, last pos: Int) -> Float {
    var maxScore = -Float.infinity
    for j in first...pos { maxScore = max(maxScore, sp[j]) }
    var sum: Double = 0
    let base = UnsafeMutableRawPointer(sp)
    let maxima = SIMD8<Float>(repeating: maxScore)
    for g in stride(from: first / 8 * 8, through: pos, by: 8) {
        var lane: SIMD8<Float>
        if g >= first, g + 7 <= pos {
            lane = base.loadUnaligned(fromByteOffset: 4 * g, as: SIMD8<Float>.self)
        } else { // a group at the window's or the causal edge
            lane = SIMD8(repeating: -.infinity)
            for m in 0..<8 where g + m >= first && g + m <= pos { lane[m] = sp[g + m] }
        }
        let e = ggmlExp(lane - maxima)
        base.storeBytes(of: e, toByteOffset: 4 * g, as: SIMD8<Float>.self)
        sum += Double(ggmlSum(e))
    }
    return Float(1 / sum)
}
