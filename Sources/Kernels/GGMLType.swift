/// The ggml tensor types the engine reads (numbers as in ggml's `enum ggml_type`).
///
/// Block layouts (ggml `ggml-common.h`), little-endian, `half` = IEEE binary16:
/// - Q4_0 (18 bytes / 32): `half d; u8 qs[16]` — x = d · (nibble − 8); low nibbles are
///   elements 0…15, high nibbles 16…31.
/// - Q4_1 (20 / 32): `half d, m; u8 qs[16]` — x = d · nibble + m.
/// - Q5_0 (22 / 32): `half d; u32 qh; u8 qs[16]` — element j's fifth bit is bit j of qh
///   (elements 0…31, low nibbles 0…15, high nibbles 16…31); x = d · (q − 16).
/// - Q8_0 (34 / 32): `half d; i8 qs[32]` — x = d · q.
/// - Q4_K (144 / 256): `half d, dmin; u8 scales[12]; u8 qs[128]` — 8 sub-blocks of 32 with
///   6-bit scales and mins packed in `scales` (`get_scale_min_k4`); x = d·sc · q − dmin·m.
/// - Q6_K (210 / 256): `u8 ql[128]; u8 qh[64]; i8 scales[16]; half d` — x = d · sc · (q − 32).
public enum GGMLType: UInt32, CaseIterable, Sendable {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q5_0 = 6
    case q8_0 = 8
    case q4_K = 12
    case q6_K = 14
    case bf16 = 30

    /// Elements per block.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: 1
        case .q4_0, .q4_1, .q5_0, .q8_0: 32
        case .q4_K, .q6_K: 256
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .q4_0: 18
        case .q4_1: 20
        case .q5_0: 22
        case .q8_0: 34
        case .q4_K: 144
        case .q6_K: 210
        }
    }

    public var name: String {
        switch self {
        case .f32: "F32"
        case .f16: "F16"
        case .q4_0: "Q4_0"
        case .q4_1: "Q4_1"
        case .q5_0: "Q5_0"
        case .q8_0: "Q8_0"
        case .q4_K: "Q4_K"
        case .q6_K: "Q6_K"
        case .bf16: "BF16"
        }
    }

    /// Bytes of a row of `n` elements (n a multiple of the block size).
    /// Bytes of a tensor of this type with GGUF `dimensions` (the first is the row length), nil
    /// when a row is not whole blocks or the size overflows.
    public func dataBytes(dimensions: [Int]) -> Int? {
        guard let columns = dimensions.first, columns > 0, columns % blockSize == 0, dimensions.allSatisfy({ $0 > 0 }) else { return nil }
        var bytes = rowBytes(columns)
        for d in dimensions.dropFirst() {
            let (product, overflow) = bytes.multipliedReportingOverflow(by: d)
            guard !overflow else { return nil }
            bytes = product
        }
        return bytes
    }

    public func rowBytes(_ n: Int) -> Int { n / blockSize * blockBytes }
}
