import Testing
@testable import Kernels

private func halfBytes(_ v: Float) -> [UInt8] {
    let b = Float16(v).bitPattern
    return [UInt8(b & 0xFF), UInt8(b >> 8)]
}

private func dequantize(_ type: GGMLType, _ block: [UInt8]) -> [Float] {
    precondition(block.count == type.blockBytes)
    var out = [Float](repeating: .nan, count: type.blockSize)
    block.withUnsafeBytes { src in out.withUnsafeMutableBufferPointer { dequantizeBlock(type, src.baseAddress!, $0.baseAddress!) } }
    return out
}

/// Each block is packed by hand from known integers; the expected values follow the format's
/// definition (ggml-common.h), written independently of the kernel.
@Suite("dequantisation of hand-built blocks")
struct DequantizeTests {
    @Test func q4_0() {
        let d: Float = 0.5
        let nibbles = (0..<32).map { UInt8($0 % 16) } // element j has nibble j % 16
        let qs = (0..<16).map { nibbles[$0] | (nibbles[$0 + 16] << 4) }
        let got = dequantize(.q4_0, halfBytes(d) + qs)
        #expect(got == nibbles.map { Float(Int($0) - 8) * d })
    }

    @Test func q4_1() {
        let d: Float = 0.25, m: Float = -1.5
        let nibbles = (0..<32).map { UInt8((7 * $0) % 16) }
        let qs = (0..<16).map { nibbles[$0] | (nibbles[$0 + 16] << 4) }
        let got = dequantize(.q4_1, halfBytes(d) + halfBytes(m) + qs)
        #expect(got == nibbles.map { Float($0) * d + m })
    }

    @Test func q5_0() {
        let d: Float = 0.125
        let q = (0..<32).map { UInt8((5 * $0 + 3) % 32) } // 5-bit values
        var qh: UInt32 = 0
        for j in 0..<32 where q[j] & 0x10 != 0 { qh |= 1 << UInt32(j) }
        let qs = (0..<16).map { (q[$0] & 0xF) | ((q[$0 + 16] & 0xF) << 4) }
        let block = halfBytes(d) + [UInt8(qh & 0xFF), UInt8((qh >> 8) & 0xFF), UInt8((qh >> 16) & 0xFF), UInt8(qh >> 24)] + qs
        #expect(dequantize(.q5_0, block) == q.map { Float(Int($0) - 16) * d })
    }

    @Test func q8_0() {
        let d: Float = 0.0625
        let q: [Int8] = (0..<32).map { Int8($0 * 8 - 128 + 3) }
        #expect(dequantize(.q8_0, halfBytes(d) + q.map { UInt8(bitPattern: $0) }) == q.map { Float($0) * d })
    }

    @Test func q4_K() {
        let d: Float = 0.5, dmin: Float = 0.25
        let sc: [UInt8] = [1, 7, 63, 20, 33, 5, 48, 12], mn: [UInt8] = [0, 3, 62, 9, 40, 1, 17, 63]
        // Pack 8 six-bit scales and mins (the inverse of get_scale_min_k4).
        var scales = [UInt8](repeating: 0, count: 12)
        for j in 0..<4 {
            scales[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6)
            scales[j + 4] = (mn[j] & 63) | ((mn[j + 4] >> 4) << 6)
            scales[j + 8] = (sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4)
        }
        let q = (0..<256).map { UInt8(($0 * 11 + 5) % 16) }
        // 4 chunks of 64: bytes hold sub-block 2c in low nibbles, 2c + 1 in high nibbles.
        var qs = [UInt8]()
        for c in 0..<4 {
            for l in 0..<32 { qs.append(q[64 * c + l] | (q[64 * c + 32 + l] << 4)) }
        }
        let got = dequantize(.q4_K, halfBytes(d) + halfBytes(dmin) + scales + qs)
        let expected = (0..<256).map { i -> Float in
            let s = i / 32
            return d * Float(sc[s]) * Float(q[i]) - dmin * Float(mn[s])
        }
        #expect(got == expected)
    }

    @Test func q6_K() {
        let d: Float = 0.03125
        let sc: [Int8] = [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12, 13, -14, 15, -16]
        let q = (0..<256).map { UInt8(($0 * 13 + 7) % 64) } // 6-bit values
        var ql = [UInt8](repeating: 0, count: 128), qh = [UInt8](repeating: 0, count: 64)
        // Element n·128 + l + 32k (k = 0…3) of half n: low 4 bits in ql[64n + l (+32 for k odd)]'s
        // low (k < 2) or high (k ≥ 2) nibble, high 2 bits in qh[32n + l] at bit 2k.
        for n in 0..<2 {
            for l in 0..<32 {
                for k in 0..<4 {
                    let v = q[128 * n + l + 32 * k]
                    let lo = v & 0xF, hi = v >> 4
                    let index = 64 * n + l + (k % 2 == 1 ? 32 : 0)
                    ql[index] |= k < 2 ? lo : lo << 4
                    qh[32 * n + l] |= hi << UInt8(2 * k)
                }
            }
        }
        let got = dequantize(.q6_K, ql + qh + sc.map { UInt8(bitPattern: $0) } + halfBytes(d))
        let expected = (0..<256).map { i -> Float in d * Float(sc[i / 16]) * Float(Int(q[i]) - 32) }
        #expect(got == expected)
    }

    @Test func plainFormats() {
        #expect(dequantize(.f16, halfBytes(-2.5)) == [-2.5])
        #expect(dequantize(.bf16, [0x80, 0x3F]) == [1.0])
        let one = Float(1.75).bitPattern
        #expect(dequantize(.f32, [UInt8(one & 0xFF), UInt8((one >> 8) & 0xFF), UInt8((one >> 16) & 0xFF), UInt8(one >> 24)]) == [1.75])
    }
}

@Suite("matrix-vector product")
struct MatVecTests {
    /// A seeded random matrix in each format, multiplied by the SIMD kernel (2 threads) and by a
    /// double-precision dot over the reference dequantisation: equal within float rounding.
    @Test(arguments: GGMLType.allCases)
    func matchesReference(type: GGMLType) {
        var state: UInt64 = 42 &+ UInt64(type.rawValue)
        func next() -> UInt8 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        let rows = 37, columns = 512
        var bytes = [UInt8]((0..<(rows * type.rowBytes(columns))).map { _ in next() })
        // Keep scales finite and small: overwrite half-precision scale fields with a safe value.
        if type == .f16 || type == .f32 || type == .bf16 {
            bytes = [UInt8]()
            for i in 0..<(rows * columns) {
                let v = Float(Int(i % 17) - 8) / 8
                switch type {
                case .f32: let b = v.bitPattern; bytes += [UInt8(b & 0xFF), UInt8((b >> 8) & 0xFF), UInt8((b >> 16) & 0xFF), UInt8(b >> 24)]
                case .f16: bytes += halfBytes(v)
                default: let b = v.bitPattern >> 16; bytes += [UInt8(b & 0xFF), UInt8(b >> 8)]
                }
            }
        } else {
            let offsets: [Int] = switch type {
            case .q4_1: [0, 2]
            case .q4_K: [0, 2]
            case .q6_K: [208]
            default: [0]
            }
            for block in 0..<(bytes.count / type.blockBytes) {
                for o in offsets {
                    let h = halfBytes(Float(Int(block % 5) + 1) / 64)
                    bytes[block * type.blockBytes + o] = h[0]
                    bytes[block * type.blockBytes + o + 1] = h[1]
                }
            }
        }
        let x = (0..<columns).map { Float(Int($0 % 13) - 6) / 3 }
        var y = [Float](repeating: 0, count: rows)
        var row = [Float](repeating: 0, count: columns)
        bytes.withUnsafeBytes { raw in
            let m = QuantizedMatrix(type: type, rows: rows, columns: columns, data: raw.baseAddress!)
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { m.multiply(xp.baseAddress!, into: $0.baseAddress!) } }
            // The quantised types multiply 8-bit activations, as ggml: the reference uses the same
            // quantised x (q · d per block: Q8_0/Q8_1 blocks of 32, Q8_K blocks of 256).
            let xq: [Float] = x.withUnsafeBufferPointer { xp in
                if type.multipliesQ8Activations {
                    let a = Q8Activations(xp.baseAddress!, tokens: 1, columns: columns)
                    return (0..<columns).map { j in Float(a.q[j]) * a.d[j / 32] }
                }
                if type.multipliesQ8KActivations {
                    let a = Q8KActivations(xp.baseAddress!, tokens: 1, columns: columns)
                    return (0..<columns).map { j in Float(a.q[j]) * a.d[j / 256] }
                }
                return Array(xp)
            }
            for r in 0..<rows {
                row.withUnsafeMutableBufferPointer { m.row(r, into: $0.baseAddress!) }
                let reference = zip(row, xq).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                let magnitude = zip(row, xq).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
                #expect(abs(Double(y[r]) - reference) <= 1e-5 * max(magnitude, 1), "\(type.name) row \(r)")
            }
        }
    }
}
