import HalfFloat
import Foundation

/// The KV cache of one sequence, sized to the request (prompt + tokens to generate), not to the
/// model's context: per layer and KV head, the keys and values of the slots it holds, in
/// binary16 (llama.cpp's default cache type, so the numerics are an f16 cache's). Keys are
/// slot-major (`headDim` values per slot); values are stored transposed, one row of slots per
/// dimension (`valueStride` apart), as llama.cpp keeps V for its non-flash attention, so the
/// weighted sum over slots runs along contiguous memory.
///
/// Compression (`compact`) keeps chosen positions per (layer, KV head) and packs them into the
/// first slots; later tokens are appended after them. Until then a slot is its position.
public struct KVCache: Sendable {
    /// Slots per (layer, KV head).
    public let capacity: Int
    public let layers: Int
    public let kvHeads: Int
    public let headDim: Int
    /// Distance between two dimensions' rows of the transposed values: `capacity` rounded up to
    /// 32 slots, so attention can read whole 32-slot groups (unused slots hold finite values).
    let valueStride: Int
    /// Per layer: binary16 keys, [kvHead][slot][dimension].
    var keys: [[UInt16]]
    /// Per layer: binary16 values, [kvHead][dimension][slot] (rows `valueStride` long).
    var values: [[UInt16]]
    /// Slots in use per (layer, KV head).
    public internal(set) var lengths: [[Int]]
    /// The original positions of the slots per (layer, KV head), once something was evicted.
    public internal(set) var positions: [[[Int]]]?
    /// Tokens seen so far (the next token's position).
    public internal(set) var count = 0

    init(layers: Int, kvHeads: Int, headDim: Int, capacity: Int) {
        self.capacity = capacity
        self.layers = layers
        self.kvHeads = kvHeads
        self.headDim = headDim
        valueStride = (capacity + 31) / 32 * 32
        keys = Array(repeating: [UInt16](repeating: 0, count: kvHeads * capacity * headDim), count: layers)
        values = Array(repeating: [UInt16](repeating: 0, count: kvHeads * headDim * valueStride), count: layers)
        lengths = Array(repeating: Array(repeating: 0, count: kvHeads), count: layers)
    }

    /// Bytes allocated.
    public var bytes: Int { layers * kvHeads * (capacity + valueStride) * headDim * 2 }

    /// Tokens held, over all layers and KV heads.
    public var heldTokens: Int { lengths.joined().reduce(0, +) }

    /// The keys held by (`layer`, `kvHead`), slot after slot (`headDim` values each; a slot is
    /// its position until the cache is compacted).
    public func keys(layer: Int, kvHead h: Int) -> [Float] {
        let base = h * capacity * headDim
        return keys[layer][base..<(base + lengths[layer][h] * headDim)].map(HalfFloat.float)
    }

    /// The values held by (`layer`, `kvHead`), slot after slot (`headDim` values each).
    public func values(layer: Int, kvHead h: Int) -> [Float] {
        let d = headDim, n = lengths[layer][h], base = h * d * valueStride
        var out = [Float](repeating: 0, count: n * d)
        values[layer].withUnsafeBufferPointer { v in
            for e in 0..<d {
                for slot in 0..<n { out[slot * d + e] = HalfFloat.float(v[base + e * valueStride + slot]) }
            }
        }
        return out
    }

    /// Stores `tokens` new keys and values of `layer` (token-major, KV heads side by side) after
    /// each head's last slot, rounded to binary16.
    mutating func append(layer l: Int, keys k: [Float], values v: [Float], tokens T: Int, firstPosition: Int) {
        let d = headDim, kvDim = kvHeads * headDim, stride = valueStride
        for h in 0..<kvHeads {
            let slot0 = lengths[l][h]
            precondition(slot0 + T <= capacity, "KV cache overflow")
            let keyBase = (h * capacity + slot0) * d, valueBase = h * d * stride + slot0
            keys[l].withUnsafeMutableBufferPointer { kp in
                values[l].withUnsafeMutableBufferPointer { vp in
                    for t in 0..<T {
                        for e in 0..<d {
                            kp[keyBase + t * d + e] = HalfFloat.bits(k[t * kvDim + h * d + e])
                            vp[valueBase + e * stride + t] = HalfFloat.bits(v[t * kvDim + h * d + e])
                        }
                    }
                }
            }
            lengths[l][h] += T
            if positions != nil { positions![l][h] += Array(firstPosition..<(firstPosition + T)) }
        }
    }

    /// Keeps only the positions `kept[layer][head]` (ascending, each held now), packed into the
    /// first slots in order.
    /// - Throws: `KVCacheError` when the selection does not fit the cache's shape or names a
    ///   position the cache does not hold.
    public mutating func compact(_ kept: [[[Int]]]) throws {
        guard kept.count == layers, kept.allSatisfy({ $0.count == kvHeads }) else {
            throw KVCacheError("the selection has \(kept.count) layers × \(kept.first?.count ?? 0) heads; the cache has \(layers) × \(kvHeads)")
        }
        var newPositions = positions ?? lengths.map { $0.map { Array(0..<$0) } }
        let d = headDim
        for l in 0..<layers {
            for h in 0..<kvHeads {
                let held = newPositions[l][h]
                var slot = 0
                for (target, position) in kept[l][h].enumerated() {
                    while slot < held.count, held[slot] < position { slot += 1 }
                    guard slot < held.count, held[slot] == position else {
                        throw KVCacheError("layer \(l) head \(h): position \(position) is not in the cache")
                    }
                    if slot != target {
                        let from = (h * capacity + slot) * d, to = (h * capacity + target) * d
                        let rows = h * d * valueStride
                        for e in 0..<d {
                            keys[l][to + e] = keys[l][from + e]
                            values[l][rows + e * valueStride + target] = values[l][rows + e * valueStride + slot]
                        }
                    }
                }
                lengths[l][h] = kept[l][h].count
                newPositions[l][h] = kept[l][h]
            }
        }
        positions = newPositions
    }
}

/// Why a cache operation cannot be done.
public struct KVCacheError: LocalizedError, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}
