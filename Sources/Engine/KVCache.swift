import HalfFloat

/// The KV cache of one sequence, sized to the request (prompt + tokens to generate), not to the
/// model's context: per layer and KV head, the keys and values of the slots it holds, head-major.
/// Values are rounded to binary16 as they are stored (llama.cpp's default cache type, so the
/// numerics are an f16 cache's) and kept as f32 so the attention loops run in SIMD.
///
/// Compression (`compact`) keeps chosen positions per (layer, KV head) and packs them into the
/// first slots; later tokens are appended after them. Until then a slot is its position.
public struct KVCache: Sendable {
    /// Slots per (layer, KV head).
    public let capacity: Int
    public let layers: Int
    public let kvHeads: Int
    public let headDim: Int
    var keys: [[Float]]
    var values: [[Float]]
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
        keys = Array(repeating: [Float](repeating: 0, count: kvHeads * capacity * headDim), count: layers)
        values = keys
        lengths = Array(repeating: Array(repeating: 0, count: kvHeads), count: layers)
    }

    /// Bytes allocated.
    public var bytes: Int { layers * kvHeads * capacity * headDim * 4 * 2 }

    /// Tokens held, over all layers and KV heads.
    public var heldTokens: Int { lengths.joined().reduce(0, +) }

    /// The values held by (`layer`, `kvHead`), slot after slot (`headDim` floats each; a slot is
    /// its position until the cache is compacted). Exactly binary16 values.
    public func values(layer: Int, kvHead h: Int) -> ArraySlice<Float> {
        let base = h * capacity * headDim
        return values[layer][base..<(base + lengths[layer][h] * headDim)]
    }

    /// Stores `tokens` new keys and values of `layer` (token-major, KV heads side by side) after
    /// each head's last slot.
    mutating func append(layer l: Int, keys k: [Float], values v: [Float], tokens T: Int, firstPosition: Int) {
        let d = headDim, kvDim = kvHeads * headDim
        for h in 0..<kvHeads {
            let base = (h * capacity + lengths[l][h]) * d
            precondition(lengths[l][h] + T <= capacity, "KV cache overflow")
            for t in 0..<T {
                for e in 0..<d {
                    keys[l][base + t * d + e] = HalfFloat.round(k[t * kvDim + h * d + e])
                    values[l][base + t * d + e] = HalfFloat.round(v[t * kvDim + h * d + e])
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
                        for e in 0..<d {
                            keys[l][to + e] = keys[l][from + e]
                            values[l][to + e] = values[l][from + e]
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
public struct KVCacheError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
