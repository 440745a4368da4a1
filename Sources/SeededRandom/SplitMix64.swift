/// SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators",
/// OOPSLA 2014): `z = (s += 0x9E3779B97F4A7C15); z = (z ^ z>>30) * 0xBF58476D1CE4E5B9;
/// z = (z ^ z>>27) * 0x94D049BB133111EB; z ^ z>>31`. Small, fast and fully determined by its
/// seed: every random draw in ckv-sim comes from one of these, seeded explicitly.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// An independent generator for a named subsystem: a new draw in one part shifts no other.
    public func derived(_ label: String) -> SplitMix64 {
        // FNV-1a of the label, mixed with the parent's state.
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in label.utf8 { h = (h ^ UInt64(b)) &* 0x0100_0000_01B3 }
        var g = SplitMix64(seed: state ^ h)
        _ = g.next()
        return g
    }

    /// A uniform double in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }
}
