// Reference dequantisation, bit-exact with ggml's `dequantize_row_*` (ggml/src/ggml-quants.c):
// the same integer unpacking and the same multiplication order (`d * sc * q`, `d1 * q - m1`),
// so every value equals ggml's float for float.

@inline(__always)
func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
}

@inline(__always)
private func byte(_ p: UnsafeRawPointer, _ offset: Int) -> UInt8 { p.load(fromByteOffset: offset, as: UInt8.self) }

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` (0…7) of a Q4_K block.
@inline(__always)
func scaleMinK4(_ j: Int, _ q: UnsafeRawPointer) -> (UInt8, UInt8) {
    if j < 4 {
        return (byte(q, j) & 63, byte(q, j + 4) & 63)
    }
    let sc = (byte(q, j + 4) & 0xF) | ((byte(q, j - 4) >> 6) << 4)
    let m = (byte(q, j + 4) >> 4) | ((byte(q, j) >> 6) << 4)
    return (sc, m)
}

/// Dequantises one block of `type` at `src` into `dst[0 ..< type.blockSize]`.
@inline(__always)
public func dequantizeBlock(_ type: GGMLType, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>) {
    switch type {
    case .f32:
        dst[0] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(as: UInt32.self)))
    case .f16:
        dst[0] = half(src, 0)
    case .bf16:
        dst[0] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(as: UInt16.self))) << 16)
    case .q4_0:
        let d = half(src, 0)
        for j in 0..<16 {
            let q = byte(src, 2 + j)
            dst[j] = Float(Int32(q & 0x0F) - 8) * d
            dst[j + 16] = Float(Int32(q >> 4) - 8) * d
        }
    case .q4_1:
        let d = half(src, 0), m = half(src, 2)
        for j in 0..<16 {
            let q = byte(src, 4 + j)
            dst[j] = Float(q & 0x0F) * d + m
            dst[j + 16] = Float(q >> 4) * d + m
        }
    case .q5_0:
        let d = half(src, 0)
        let qh = UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        for j in 0..<16 {
            let q = byte(src, 6 + j)
            let xh0 = UInt8(truncatingIfNeeded: ((qh >> UInt32(j)) << 4) & 0x10)
            let xh1 = UInt8(truncatingIfNeeded: (qh >> UInt32(j + 12)) & 0x10)
            dst[j] = Float(Int32((q & 0x0F) | xh0) - 16) * d
            dst[j + 16] = Float(Int32((q >> 4) | xh1) - 16) * d
        }
    case .q8_0:
        let d = half(src, 0)
        for j in 0..<32 {
            dst[j] = Float(src.load(fromByteOffset: 2 + j, as: Int8.self)) * d
        }
    case .q4_K:
        let d = half(src, 0), dmin = half(src, 2)
        let scales = src + 4
        var q = src + 16
        var y = dst
        var is_ = 0
        for _ in 0..<4 {
            let (sc1, m1i) = scaleMinK4(is_, scales)
            let d1 = d * Float(sc1), m1 = dmin * Float(m1i)
            let (sc2, m2i) = scaleMinK4(is_ + 1, scales)
            let d2 = d * Float(sc2), m2 = dmin * Float(m2i)
            for l in 0..<32 { y[l] = d1 * Float(byte(q, l) & 0xF) - m1 }
            for l in 0..<32 { y[l + 32] = d2 * Float(byte(q, l) >> 4) - m2 }
            q += 32
            y += 64
            is_ += 2
        }
    case .q6_K:
        let d = half(src, 208)
        var ql = src, qh = src + 128, sc = src + 192
        var y = dst
        for _ in 0..<2 {
            for l in 0..<32 {
                let is_ = l / 16
                let h = byte(qh, l)
                let q1 = Int32((byte(ql, l) & 0xF) | ((h & 3) << 4)) - 32
                let q2 = Int32((byte(ql, l + 32) & 0xF) | (((h >> 2) & 3) << 4)) - 32
                let q3 = Int32((byte(ql, l) >> 4) | (((h >> 4) & 3) << 4)) - 32
                let q4 = Int32((byte(ql, l + 32) >> 4) | (((h >> 6) & 3) << 4)) - 32
                y[l] = d * Float(sc.load(fromByteOffset: is_, as: Int8.self)) * Float(q1)
                y[l + 32] = d * Float(sc.load(fromByteOffset: is_ + 2, as: Int8.self)) * Float(q2)
                y[l + 64] = d * Float(sc.load(fromByteOffset: is_ + 4, as: Int8.self)) * Float(q3)
                y[l + 96] = d * Float(sc.load(fromByteOffset: is_ + 6, as: Int8.self)) * Float(q4)
            }
            y += 128
            ql += 64
            qh += 32
            sc += 8
        }
    }
}

/// Dequantises a row of `n` elements (a multiple of the block size).
public func dequantizeRow(_ type: GGMLType, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, count n: Int) {
    precondition(n % type.blockSize == 0, "row length \(n) is not a multiple of \(type.name)'s block of \(type.blockSize)")
    var s = src, d = dst
    for _ in 0..<(n / type.blockSize) {
        dequantizeBlock(type, s, d)
        s += type.blockBytes
        d += type.blockSize
    }
}
