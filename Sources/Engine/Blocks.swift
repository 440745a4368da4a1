import Foundation
import GGUF
import HalfFloat
import Kernels
import CKernels

// The blocks every architecture's graph is built from (Architectures/*.swift): projections,
// attention over the f16 cache, RoPE, RMSNorm and the gated MLPs, each ported operation for
// operation from ggml's CPU backend so the outputs match llama.cpp bit for bit.

/// How RoPE pairs a head's dimensions.
enum RoPEPairing: Sendable {
    /// i with i + d/2 (ggml's NEOX mode).
    case neox
    /// 2i with 2i + 1 (ggml's NORM mode; the converter permuted Q and K to match).
    case adjacent
}

/// The activation of a gated MLP: down(act(gate·h) ⊙ up·h).
enum GatedActivation: Sendable {
    /// GELU, tanh approximation, through ggml's f16 table (Gemma).
    case geluF16
    /// SiLU (SwiGLU; the Llama family).
    case silu
}

/// A layer's attention projections.
struct AttentionWeights: Sendable {
    var wq, wk, wv, wo: QuantizedMatrix

    init(_ file: GGUFFile, layer il: Int, config c: ModelConfig) throws {
        let p = "blk.\(il).", q = c.heads * c.headDim, kv = c.kvHeads * c.headDim
        wq = try Weights.matrix(file, p + "attn_q.weight", rows: q, columns: c.hidden)
        wk = try Weights.matrix(file, p + "attn_k.weight", rows: kv, columns: c.hidden)
        wv = try Weights.matrix(file, p + "attn_v.weight", rows: kv, columns: c.hidden)
        wo = try Weights.matrix(file, p + "attn_output.weight", rows: c.hidden, columns: q)
    }
}

/// A layer's gated MLP.
struct MLPWeights: Sendable {
    var gate, up, down: QuantizedMatrix

    init(_ file: GGUFFile, layer il: Int, config c: ModelConfig) throws {
        let p = "blk.\(il)."
        gate = try Weights.matrix(file, p + "ffn_gate.weight", rows: c.ffn, columns: c.hidden)
        up = try Weights.matrix(file, p + "ffn_up.weight", rows: c.ffn, columns: c.hidden)
        down = try Weights.matrix(file, p + "ffn_down.weight", rows: c.hidden, columns: c.ffn)
    }
}

/// The buffers one forward pass of `tokens` tokens reuses in every layer: the normed input `h`,
/// q, k, v, the attention output, a block's output `o` and the MLP's gate and up products.
struct Activations {
    var h, q, k, v, attn, o, g, u: [Float]

    init(config c: ModelConfig, tokens T: Int) {
        let qDim = c.heads * c.headDim, kvDim = c.kvHeads * c.headDim
        h = [Float](repeating: 0, count: T * c.hidden)
        q = [Float](repeating: 0, count: T * qDim)
        k = [Float](repeating: 0, count: T * kvDim)
        v = [Float](repeating: 0, count: T * kvDim)
        attn = [Float](repeating: 0, count: T * qDim)
        o = [Float](repeating: 0, count: T * c.hidden)
        g = [Float](repeating: 0, count: T * c.ffn)
        u = [Float](repeating: 0, count: T * c.ffn)
    }
}

extension LanguageModel {
    /// q, k, v = W · h for every token.
    func project(_ w: AttentionWeights, _ a: inout Activations, tokens T: Int) {
        matmul(w.wq, a.h, &a.q, T)
        matmul(w.wk, a.h, &a.k, T)
        matmul(w.wv, a.h, &a.v, T)
    }

    /// Appends k and v to layer `il`'s cache, attends (scores × `scoreScale`, the layer's window)
    /// and projects the result: o = W_o · attention.
    func attend(_ w: AttentionWeights, layer il: Int, _ a: inout Activations, cache: inout KVCache, start: Int, tokens T: Int,
                scoreScale: Float, probe: AttentionProbe?) {
        cache.append(layer: il, keys: a.k, values: a.v, tokens: T, firstPosition: start)
        attention(layer: il, q: a.q, cache: cache, start: start, count: T, out: &a.attn, window: config.window(il),
                  scoreScale: scoreScale, probe: probe)
        matmul(w.wo, a.attn, &a.o, T)
    }

    /// o = W_down(act(W_gate · h) ⊙ W_up · h).
    func gatedMLP(_ w: MLPWeights, _ a: inout Activations, tokens T: Int, activation: GatedActivation) {
        matmul(w.gate, a.h, &a.g, T)
        matmul(w.up, a.h, &a.u, T)
        switch activation {
        case .geluF16: for i in a.g.indices { a.g[i] = geluF16(a.g[i]) * a.u[i] }
        case .silu: swiglu(&a.g, a.u)
        }
        matmul(w.down, a.g, &a.o, T)
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
        // A head-local probe's lanes own heads: with few KV heads, items are single heads so both threads get work.
        let headLocal = probe != nil && probesAreHeadLocal
        let headsPerItem = T * c.kvHeads >= 2 * threads && !(headLocal && c.kvHeads < 2 * threads) ? group : 1
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
                        // An attached probe is called in a fixed order: single-threaded, or — when it
                        // is head-local — each lane owning fixed heads and taking their tokens in order.
                        let lanes = probeRef == nil ? workers : headLocal ? min(workers, itemsPerToken) : 1
                        WorkerPool.shared.run(iterations: lanes, threads: lanes) { w in
                            let items: [Int] = headLocal
                                ? (0..<T).flatMap { t in Swift.stride(from: w, to: itemsPerToken, by: lanes).map { t * itemsPerToken + $0 } }
                                : Array(Swift.stride(from: w, to: work, by: lanes))
                            // Per head of an item: its scores (then softmax numerators and weights
                            // as floats) and its f16 weights, one slot per cache cell.
                            var scores = [Float](repeating: 0, count: headsPerItem * stride)
                            var weights = [Float](repeating: 0, count: headsPerItem * stride)
                            var qh = [Float](repeating: 0, count: headsPerItem * d)
                            for item in items {
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
    /// `.neox` pairs i with i + d/2 (Gemma); `.adjacent` pairs 2i with 2i + 1 (the Llama family).
    func rope(_ q: inout [Float], _ k: inout [Float], positions start: Int, count T: Int, base: Float, pairing: RoPEPairing) {
        let d = config.headDim, half = d / 2
        let neox = pairing == .neox
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

/// x += y.
func addResidual(_ x: inout [Float], _ y: [Float]) {
    for i in x.indices { x[i] += y[i] }
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
