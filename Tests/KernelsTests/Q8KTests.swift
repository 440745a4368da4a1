import CKernels
import Foundation
import Testing
@testable import Kernels

private func setHalf(_ bytes: inout [UInt8], _ offset: Int, _ v: Float) {
    let b = Float16(v).bitPattern
    bytes[offset] = UInt8(b & 0xFF)
    bytes[offset + 1] = UInt8(b >> 8)
}

/// Random K-quant blocks with small finite scales (d, and dmin for Q4_K).
private func kQuantMatrix(_ type: GGMLType, rows: Int, columns: Int, seed: UInt64) -> [UInt8] {
    var g = Bytes(state: seed)
    var bytes = (0..<(rows * type.rowBytes(columns))).map { _ in g.next() }
    for block in 0..<(bytes.count / type.blockBytes) {
        let base = block * type.blockBytes
        if type == .q4_K {
            setHalf(&bytes, base, Float(block % 5 + 1) / 512)
            setHalf(&bytes, base + 2, Float(block % 3 + 1) / 1024)
        } else {
            setHalf(&bytes, base + 208, Float(block % 5 + 1) / 2048)
        }
    }
    return bytes
}

/// The weight integers of one super-block, written plainly from ggml's block layouts: Q4_K's
/// nibbles (unsigned) with their 6-bit scales and mins per 32, Q6_K's 6-bit values minus 32 with
/// their int8 scales per 16.
private func integers(_ type: GGMLType, _ block: UnsafeRawPointer) -> (q: [Int], scale: (Int) -> Int, min: (Int) -> Int) {
    let byte = { (o: Int) in Int(block.load(fromByteOffset: o, as: UInt8.self)) }
    var q = [Int](repeating: 0, count: 256)
    if type == .q4_K {
        for g in 0..<4 {
            for l in 0..<32 {
                q[64 * g + l] = byte(16 + 32 * g + l) & 0xF
                q[64 * g + 32 + l] = byte(16 + 32 * g + l) >> 4
            }
        }
        return (q, { Int(scaleMinK4($0 / 32, block + 4).0) }, { Int(scaleMinK4($0 / 32, block + 4).1) })
    }
    for half in 0..<2 {
        for l in 0..<32 {
            let h = byte(128 + 32 * half + l)
            q[128 * half + l] = (byte(64 * half + l) & 0xF) | ((h & 3) << 4)
            q[128 * half + 32 + l] = (byte(64 * half + 32 + l) & 0xF) | (((h >> 2) & 3) << 4)
            q[128 * half + 64 + l] = (byte(64 * half + l) >> 4) | (((h >> 4) & 3) << 4)
            q[128 * half + 96 + l] = (byte(64 * half + 32 + l) >> 4) | (((h >> 6) & 3) << 4)
        }
    }
    return (q.map { $0 - 32 }, { Int(Int8(bitPattern: UInt8(byte(192 + $0 / 16)))) }, { _ in 0 })
}

/// The activation integers of token 0's super-block `b`, in element order.
private func activation(_ a: Q8KActivations, block b: Int) -> [Int] {
    (0..<256).map { e in Int(a.q[256 * b + e]) }
}

@Suite("K-quant products on Q8_K activations")
struct Q8KTests {
    @Test("Q8_K quantisation: d = 1/(127/amax), round half to even, per-16 sums, zero blocks stay zero")
    func quantisation() {
        var x = [Float](repeating: 0, count: 512)
        for j in 0..<256 { x[j] = Float(j % 17) / 4 - 2 }
        x[5] = -8 // amax
        x[6] = 8 * 63.5 / 127 // exactly half-way between two levels: rounds to even (64)
        let a = x.withUnsafeBufferPointer { Q8KActivations($0.baseAddress!, tokens: 1, columns: 512) }
        #expect(a.d[0] == 1 / (127 / Float(8)))
        let q = activation(a, block: 0)
        #expect(q[5] == -127 && q[6] == 64)
        for j in 0..<16 { #expect(Int(a.bsums[j]) == q[(16 * j)..<(16 * j + 16)].reduce(0, +)) }
        #expect(a.d[1] == 0 && a.q[256...].allSatisfy { $0 == 0 } && a.bsums[16...].allSatisfy { $0 == 0 })
    }

    /// ggml's Q4_K order (repacked q4_K_8x8 kernels): gemv scales each super-block's integers
    /// once, gemm each pair of 32-element sub-blocks; acc − accMin at the end.
    private func q4K(_ m: QuantizedMatrix, row r: Int, _ a: Q8KActivations, pairwise: Bool) -> Float {
        var acc: Float = 0, accMin: Float = 0
        for b in 0..<(m.columns / 256) {
            let block = m.data + r * m.rowBytes + 144 * b
            let (q, scale, min) = integers(.q4_K, block)
            let x = activation(a, block: b)
            var isum = 0, imin = 0
            for sub in 0..<8 {
                isum += scale(32 * sub) * (0..<32).reduce(0) { $0 + q[32 * sub + $1] * x[32 * sub + $1] }
                imin += min(32 * sub) * (Int(a.bsums[16 * b + 2 * sub]) + Int(a.bsums[16 * b + 2 * sub + 1]))
                if pairwise && sub % 2 == 1 || !pairwise && sub == 7 {
                    acc = acc.addingProduct(Float(isum), half(block, 0) * a.d[b])
                    accMin = accMin.addingProduct(Float(imin), half(block, 2) * a.d[b])
                    isum = 0
                    imin = 0
                }
            }
        }
        return acc - accMin
    }

    /// ggml's Q6_K order: `ggml_vec_dot_q6_K_q8_K` (8 lanes, lane k holding the elements 4k…4k+3
    /// of every 32, one fused multiply-add per super-block, ggml's horizontal sum) below 8
    /// tokens; the tiled matmul (d_w · float(I), then one fused multiply-add by d_a) from 8 on.
    private func q6K(_ m: QuantizedMatrix, row r: Int, _ a: Q8KActivations, tiled: Bool) -> Float {
        var lanesAcc = [Float](repeating: 0, count: 8)
        var acc: Float = 0
        for b in 0..<(m.columns / 256) {
            let block = m.data + r * m.rowBytes + 210 * b
            let (q, scale, _) = integers(.q6_K, block)
            let x = activation(a, block: b)
            var lanes = [Int](repeating: 0, count: 8)
            // Lane k: the unsigned values' products at elements 4k…4k+3 of every 32, minus 32 · the
            // scaled activation sums of sub-blocks 2k, 2k + 1 (ggml's q8sclsub).
            for e in 0..<256 {
                lanes[(e % 32) / 4] += scale(e) * (q[e] + 32) * x[e]
                lanes[e / 32] -= 32 * scale(e) * x[e]
            }
            if tiled {
                acc = acc.addingProduct(half(block, 208) * Float(lanes.reduce(0, +)), a.d[b])
            } else {
                for k in 0..<8 { lanesAcc[k] = lanesAcc[k].addingProduct(a.d[b] * half(block, 208), Float(lanes[k])) }
            }
        }
        return tiled ? acc : ggmlSum(SIMD8(lanesAcc))
    }

    @Test("Q4_K and Q6_K products equal ggml's order written plainly, in decode and in prefill batches", arguments: [GGMLType.q4_K, .q6_K])
    func products(type: GGMLType) {
        let rows = 24, columns = 512
        let bytes = kQuantMatrix(type, rows: rows, columns: columns, seed: 11 &+ UInt64(type.rawValue))
        var g = Bytes(state: 5)
        let x = (0..<(10 * columns)).map { _ in g.unit() * 3 }
        bytes.withUnsafeBytes { raw in
            let m = QuantizedMatrix(type: type, rows: rows, columns: columns, data: raw.baseAddress!)
            #expect(m.quantizesActivations)
            // 1 token (gemv / vec_dot), 6 (Q4_K: 4 by gemm + 2 by gemv; Q6_K: vec_dot), 10 (Q6_K tiled).
            for tokens in [1, 6, 10] {
                var y = [Float](repeating: 0, count: tokens * rows)
                x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { m.multiplyBatch(xp.baseAddress!, tokens: tokens, into: $0.baseAddress!) } }
                // The portable C code (what a build without AVX2 runs) gives the same bits.
                var portable = [Float](repeating: 0, count: tokens * rows)
                let all = x.withUnsafeBufferPointer { Q8KActivations($0.baseAddress!, tokens: tokens, columns: columns) }
                portable.withUnsafeMutableBufferPointer { out in
                    ckv_q8k_products_portable(Int32(type.rawValue), m.data, m.rowBytes, Int32(columns / 256), 0, Int32(rows), all.q, all.d, all.bsums,
                                              Int32(tokens), out.baseAddress!, rows)
                }
                #expect(portable == y, "\(type.name) \(tokens) tokens: portable C code vs the vector one")
                for t in 0..<tokens {
                    let a = x.withUnsafeBufferPointer { Q8KActivations($0.baseAddress! + t * columns, tokens: 1, columns: columns) }
                    for r in 0..<rows {
                        let expected = type == .q4_K ? q4K(m, row: r, a, pairwise: t < tokens - tokens % 4) : q6K(m, row: r, a, tiled: tokens >= 8)
                        #expect(y[t * rows + r] == expected, "\(type.name) \(tokens) tokens, token \(t) row \(r)")
                    }
                }
            }
            // The integers are the dequantiser's: the product is the f32 one up to the activations' rounding.
            var w = [Float](repeating: 0, count: columns), y = [Float](repeating: 0, count: rows)
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { m.multiply(xp.baseAddress!, into: $0.baseAddress!) } }
            for r in 0..<rows {
                w.withUnsafeMutableBufferPointer { m.row(r, into: $0.baseAddress!) }
                let f32 = zip(w, x).reduce(0) { $0 + $1.0 * $1.1 }
                let scale = w.reduce(0) { $0 + abs($1) } * 3 / 127
                #expect(abs(y[r] - f32) <= scale, "\(type.name) row \(r): \(y[r]) vs f32 \(f32)")
            }
        }
    }
}
