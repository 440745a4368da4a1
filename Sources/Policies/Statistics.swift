// The attention statistics the policies read (DESIGN.md "What a trace holds"), for one prompt:
// per layer and query head, sums over the last w prompt queries of the post-softmax attention
// each key received (and of its square), and the attention accumulated over all prompt queries.
// The engine's probe fills them during a real run; replay reads them from a trace. Both then call
// the same policy functions, so the kept indices are the same by construction.

import Foundation

/// Why a policy cannot run.
public struct PolicyError: LocalizedError, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

/// One layer's statistics over a prompt of `keys` tokens.
public struct LayerStatistics: Sendable, Equatable {
    public let keys: Int
    public let queryHeads: Int
    public let kvHeads: Int
    /// w → per query head, per key j: Σ over the last w queries i of A[h, i, j].
    public var windowSums: [Int: [[Float]]]
    /// w → per query head, per key j: Σ over the last w queries i of A[h, i, j]².
    public var windowSquaredSums: [Int: [[Float]]]
    /// Per query head, per key j: Σ over every prompt query i of A[h, i, j] (H2O).
    public var accumulated: [[Float]]
    /// False for a sliding-window layer, which keeps its window and is never compressed.
    public var isGlobal: Bool

    public init(keys: Int, queryHeads: Int, kvHeads: Int, windowSums: [Int: [[Float]]], windowSquaredSums: [Int: [[Float]]] = [:],
                accumulated: [[Float]], isGlobal: Bool = true) {
        self.keys = keys
        self.queryHeads = queryHeads
        self.kvHeads = kvHeads
        self.windowSums = windowSums
        self.windowSquaredSums = windowSquaredSums
        self.accumulated = accumulated
        self.isGlobal = isGlobal
    }

    /// Query heads per KV head; query head h belongs to KV head h / groupSize (never
    /// `reshape(n_rep, n_kv)`, which mixes other groups' heads: REFERENCES.md, pitfalls).
    public var groupSize: Int { queryHeads / kvHeads }

    /// The query heads of KV head `g`.
    public func group(_ g: Int) -> Range<Int> { g * groupSize..<(g + 1) * groupSize }

    func window(_ w: Int, squared: Bool = false) throws -> [[Float]] {
        guard let sums = squared ? windowSquaredSums[w] : windowSums[w] else {
            let have = (squared ? windowSquaredSums : windowSums).keys.sorted()
            throw PolicyError("the statistics have no \(squared ? "squared " : "")window sums for w = \(w) (they have w = \(have.map(String.init).joined(separator: ", ")))")
        }
        return sums
    }
}

/// The kept prompt positions per (layer, KV head), ascending; a layer the policy does not
/// compress keeps every position.
public struct Selection: Sendable, Equatable {
    public var kept: [[[Int]]]

    public init(kept: [[[Int]]]) { self.kept = kept }

    /// Kept tokens per (layer, KV head).
    public var counts: [[Int]] { kept.map { $0.map(\.count) } }
}

// MARK: Scoring helpers shared by the policies

/// 1-D pooling along keys with stride 1 and padding k/2, as PyTorch's max_pool1d (padding
/// ignored) and avg_pool1d (padded zeros counted: divides by k).
public enum Pooling: String, Sendable, CaseIterable {
    case max, average

    public func apply(_ x: [Float], kernel k: Int) -> [Float] {
        guard k > 1, !x.isEmpty else { return x }
        let half = k / 2
        return x.indices.map { j in
            let lo = Swift.max(0, j - half), hi = Swift.min(x.count - 1, j + half)
            switch self {
            case .max: return x[lo...hi].max()!
            case .average: return x[lo...hi].reduce(0, +) / Float(k)
            }
        }
    }
}

/// The `count` best positions of `scores` (highest first, the lower position on a tie), ascending.
func topIndices(_ scores: [Float], count: Int, offset: Int = 0) -> [Int] {
    guard count < scores.count else { return scores.indices.map { $0 + offset } }
    guard count > 0 else { return [] }
    let order = scores.indices.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
    return order.prefix(count).map { $0 + offset }.sorted()
}
