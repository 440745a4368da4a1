/// Fast, exact IEEE binary16 conversions for baseline x86-64 builds, where `Float16` goes
/// through software routines: a 64K-entry decode table and Giesen's round-to-nearest-even encode.
public enum HalfFloat {
    /// Every binary16 bit pattern as a binary32 value (exact).
    public static let table: [Float] = (0...UInt16.max).map { Float(Float16(bitPattern: $0)) }

    /// The binary32 value of binary16 `bits`.
    @inlinable @inline(__always)
    public static func float(_ bits: UInt16) -> Float {
        table.withUnsafeBufferPointer { $0[Int(bits)] }
    }

    /// `v` rounded to binary16 (nearest, ties to even): the same bits as `Float16(v).bitPattern`.
    /// Method: F. Giesen, "float_to_half_fast3_rtne" (2016): rebias the exponent with one add
    /// that also rounds; subnormal results come from adding 0.5 and reading the low bits.
    @inlinable @inline(__always)
    public static func bits(_ v: Float) -> UInt16 {
        let x = v.bitPattern
        let sign = UInt16(truncatingIfNeeded: (x >> 16) & 0x8000)
        let a = x & 0x7FFF_FFFF
        if a >= 0x4780_0000 { // ≥ 65536, infinity or NaN
            return sign | (a > 0x7F80_0000 ? 0x7E00 : 0x7C00)
        }
        if a < 0x3880_0000 { // below 2⁻¹⁴: a subnormal half or zero
            let shifted = Float(bitPattern: a) + 0.5
            return sign | UInt16(truncatingIfNeeded: shifted.bitPattern &- 0x3F00_0000)
        }
        let odd = (a >> 13) & 1
        let rebiased = a &+ 0xC800_0FFF &+ odd // exponent −112, round half to even
        return sign | UInt16(truncatingIfNeeded: rebiased >> 13)
    }

    /// `v` after a round trip through binary16.
    @inlinable @inline(__always)
    public static func round(_ v: Float) -> Float { float(bits(v)) }
}
