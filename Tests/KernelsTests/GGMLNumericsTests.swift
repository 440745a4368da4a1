import CKernels
import Foundation
import Testing
@testable import Kernels

/// A seeded generator for the fixtures (no dependence on the system RNG).
struct Bytes {
    var state: UInt64
    mutating func next() -> UInt8 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return UInt8(truncatingIfNeeded: state >> 56)
    }
    mutating func unit() -> Float { Float(next()) / 255 * 2 - 1 }
}

private func halfBits(_ v: Float) -> [UInt8] {
    let b = Float16(v).bitPattern
    return [UInt8(b & 0xFF), UInt8(b >> 8)]
}

/// A matrix of random blocks with small finite scales.
private func randomMatrix(_ type: GGMLType, rows: Int, columns: Int, seed: UInt64) -> [UInt8] {
    var g = Bytes(state: seed)
    var bytes = (0..<(rows * type.rowBytes(columns))).map { _ in g.next() }
    for block in 0..<(bytes.count / type.blockBytes) {
        for o in type == .q4_1 ? [0, 2] : [0] {
            let h = halfBits(Float(block % 7 + 1) / 128 * (o == 2 ? -1 : 1))
            bytes[block * type.blockBytes + o] = h[0]
            bytes[block * type.blockBytes + o + 1] = h[1]
        }
    }
    return bytes
}

@Suite("ggml's numerics")
struct GGMLNumericsTests {
    @Test("the vectorised exp is within 2 ulp of exp, 0 at −∞ and saturates like ggml")
    func exp() {
        var x: Float = -87
        while x < 88 {
            let v = ggmlExp(SIMD8(repeating: x))
            let reference = Foundation.exp(Double(x))
            #expect(abs(Double(v[0]) - reference) <= 2 * Double(Float(reference).ulp), "exp(\(x))")
            x += 0.173
        }
        let edges = ggmlExp(SIMD8(-.infinity, -200, -104, 0, 1, 89, 200, .infinity))
        #expect(edges[0] == 0 && edges[1] == 0 && edges[3] == 1)
        #expect(edges[2] < Float.leastNormalMagnitude)
        #expect(abs(edges[4] - 2.7182817) < 1e-6)
        #expect(edges[5] == .infinity && edges[6] == .infinity && edges[7] == .infinity)
        let s = ggmlSiLU(SIMD8(-20, -1, 0, 0.5, 1, 3, 10, 40))
        for (i, v) in [-20, -1, 0, 0.5, 1, 3, 10, 40].enumerated() {
            let reference = v / (1 + Foundation.exp(-v))
            #expect(abs(Double(s[i]) - reference) <= 4 * Double(Float(abs(reference)).ulp) + 1e-30)
        }
    }

    @Test("sums run in ggml's order")
    func reductionOrder() {
        // Values chosen so that any other association order rounds differently.
        let v = SIMD8<Float>(1e8, 1, -1e8, 1, 3, 0.5, 7, 0.25)
        #expect(ggmlSum(v) == ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7])))
    }

    @Test("activations quantise as ggml's Q8_1: d = amax/127, round half to even, s = d·Σq")
    func activationQuantisation() {
        var g = Bytes(state: 9)
        let x = (0..<64).map { _ in g.unit() * 3 }
        x.withUnsafeBufferPointer { xp in
            let a = Q8Activations(xp.baseAddress!, tokens: 2, columns: 32)
            for b in 0..<2 {
                let block = Array(x[32 * b..<32 * b + 32])
                let amax = block.map(abs).max()!
                let q = block.map { ($0 * (127 / amax)).rounded(.toNearestOrEven) }
                #expect(a.d[b] == Float(Float16(amax / 127)))
                #expect(a.s[b] == Float(Float16(amax / 127 * q.reduce(0, +))))
                for j in 0..<32 { #expect(a.q[32 * b + j] == Int8(q[j])) }
            }
        }
        let zeros = [Float](repeating: 0, count: 32)
        zeros.withUnsafeBufferPointer { #expect(Q8Activations($0.baseAddress!, tokens: 1, columns: 32).q.allSatisfy { $0 == 0 }) }
    }

    @Test("activation quantisation: ties round to even, vector code = portable code, split over threads = whole")
    func quantisationPaths() {
        // amax 127 makes the factor exactly 1, so x.5 values are ties.
        let ties: [Float] = [127, 2.5, -3.5, 0.5, -0.5, 1.5, 126.5, -2.5] + (0..<24).map { Float($0) - 11.5 }
        var g = Bytes(state: 21)
        var x = ties + (0..<(32 * 255)).map { _ in g.unit() * Float(1 + Int(g.next() % 8)) }
        x += [Float](repeating: 0, count: 256) // a zero block (Q8_K) and zero Q8 blocks
        let q8Blocks = x.count / 32, q8kBlocks = x.count / 256
        x.withUnsafeBufferPointer { xp in
            let whole = Q8Activations(xp.baseAddress!, tokens: 1, columns: x.count)
            let split = Q8Activations(xp.baseAddress!, tokens: 1, columns: x.count, threads: 2)
            #expect(whole.q == split.q && whole.d == split.d && whole.s == split.s)
            #expect(Array(whole.q[0..<8]) == [127, 2, -4, 0, 0, 2, 126, -2])
            var q = [Int8](repeating: 1, count: x.count), d = [Float](repeating: 1, count: q8Blocks), s = d
            ckv_quantize_q8_portable(xp.baseAddress!, q8Blocks, &q, &d, &s)
            #expect(q == whole.q && d == whole.d && s == whole.s)

            let wholeK = Q8KActivations(xp.baseAddress!, tokens: 1, columns: x.count)
            let splitK = Q8KActivations(xp.baseAddress!, tokens: 1, columns: x.count, threads: 2)
            #expect(wholeK.q == splitK.q && wholeK.d == splitK.d && wholeK.bsums == splitK.bsums)
            var qk = [Int8](repeating: 1, count: x.count), dk = [Float](repeating: 1, count: q8kBlocks)
            var sums = [Int32](repeating: 1, count: 16 * q8kBlocks)
            ckv_quantize_q8k_portable(xp.baseAddress!, q8kBlocks, &qk, &dk, &sums)
            #expect(qk == wholeK.q && dk == wholeK.d && sums == wholeK.bsums)
            #expect(dk.last == 0 && sums.suffix(16).allSatisfy { $0 == 0 } && qk.suffix(256).allSatisfy { $0 == 0 })
        }
    }

    /// ggml's `vec_dot_q4_1_q8_1` (and the Q8_0 ones) on AVX2, written plainly: integer lane sums
    /// of four consecutive products, each lane accumulated with one fused multiply-add per block,
    /// the lanes summed in ggml's order, the Q4_1 offsets added last.
    private func reference(_ m: QuantizedMatrix, row r: Int, _ a: Q8Activations, token t: Int) -> Float {
        var acc = [Float](repeating: 0, count: 8)
        var offset: Float = 0
        let blocks = m.columns / 32
        var ints = [Float](repeating: 0, count: 32)
        for b in 0..<blocks {
            let src = m.data + r * m.rowBytes + b * m.type.blockBytes
            dequantizeBlock(m.type, src, &ints) // dequantised values …
            let d = half(src, 0)
            let mn: Float = m.type == .q4_1 ? half(src, 2) : 0
            // … back to the integers: exact, since every value is q·d (+ m) with small q.
            let q = ints.map { (($0 - mn) / d).rounded() }
            for l in 0..<8 {
                var lane = 0
                for k in 0..<4 {
                    let j = 4 * l + k
                    lane += Int(q[j]) * Int(a.q[t * m.columns + 32 * b + j])
                }
                acc[l] = acc[l].addingProduct(d * a.d[t * blocks + b], Float(lane))
            }
            offset += mn * a.s[t * blocks + b]
        }
        return ggmlSum(SIMD8(acc)) + offset
    }

    @Test("Q8 products: decode and prefill paths are bit-identical to ggml's lane order", arguments: [GGMLType.q4_0, .q4_1, .q5_0, .q8_0])
    func q8Products(type: GGMLType) {
        let rows = 21, columns = 96, tokens = 6
        var bytes = randomMatrix(type, rows: rows, columns: columns, seed: 7 &+ UInt64(type.rawValue))
        // One subnormal scale (the portable code converts binary16 by hand).
        bytes[type.blockBytes] = 0x03
        bytes[type.blockBytes + 1] = 0x00
        var g = Bytes(state: 3)
        let x = (0..<(tokens * columns)).map { _ in g.unit() * 4 }
        bytes.withUnsafeBytes { raw in
            let m = QuantizedMatrix(type: type, rows: rows, columns: columns, data: raw.baseAddress!)
            var batch = [Float](repeating: 0, count: tokens * rows)
            x.withUnsafeBufferPointer { xp in batch.withUnsafeMutableBufferPointer { m.multiplyBatch(xp.baseAddress!, tokens: tokens, into: $0.baseAddress!) } }
            for t in 0..<tokens {
                var single = [Float](repeating: 0, count: rows)
                x.withUnsafeBufferPointer { xp in single.withUnsafeMutableBufferPointer { m.multiply(xp.baseAddress! + t * columns, into: $0.baseAddress!) } }
                let a = x.withUnsafeBufferPointer { Q8Activations($0.baseAddress! + t * columns, tokens: 1, columns: columns) }
                for r in 0..<rows {
                    #expect(single[r] == batch[t * rows + r], "\(type.name) token \(t) row \(r): decode vs prefill")
                    #expect(single[r] == reference(m, row: r, a, token: 0), "\(type.name) token \(t) row \(r): vs ggml's order")
                    let portable = a.q.withUnsafeBufferPointer {
                        ckv_q8_dot_portable(Int32(type.rawValue), m.data + r * m.rowBytes, Int32(columns / 32), $0.baseAddress!, a.d, a.s)
                    }
                    #expect(single[r] == portable, "\(type.name) token \(t) row \(r): vs the portable C kernel")
                }
            }
        }
    }
}
