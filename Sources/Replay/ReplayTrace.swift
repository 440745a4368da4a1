import Foundation
import Policies
import TraceFormat

// A trace loaded for replay: the statistics the policies read, and the decode steps' attention
// rows and cache values the accuracy proxies need.

/// Why a trace cannot be replayed.
public struct ReplayError: LocalizedError, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

public struct ReplayTrace: Sendable {
    public let path: String
    public let header: TraceHeader
    public let prompt: [UInt32]
    public let generated: [UInt32]
    public let needle: Range<Int>?
    public let answer: Range<Int>?
    /// Per layer, as the engine's probe collected them.
    public let statistics: [LayerStatistics]
    /// step → layer → query head → weights over positions 0 … n − 1 + step (empty for layers
    /// the trace has no rows for: sliding-window layers).
    let rows: [[[[Float]]]]
    /// layer → KV head → values, position-major (empty for layers without them).
    let values: [[[Float]]]
    /// Real runs recorded with the trace: "full", and "POLICY@BUDGET" for compressed ones.
    public let outcomes: [String: RunOutcome]

    public var promptLength: Int { prompt.count }
    public var model: ModelIdentity { header.model }
    public var decodeSteps: Int { rows.count }

    /// Reads a finished trace.
    /// - Throws: `TraceError` (file and offset) for an unreadable file, `ReplayError` when it
    ///   lacks what replay needs.
    public init(path: String) throws {
        let reader = try TraceReader(path: path)
        self.path = path
        header = reader.header
        let m = header.model
        guard reader.isFinished else {
            // Where it stops (the reader's problem names the file and offset).
            let at = reader.indexProblem.map { "\($0)" } ?? "\(path): no valid trailer at offset \(reader.fileSize)"
            throw ReplayError("\(at); the trace is unfinished (an interrupted recording): `ckv-sim trace repair` makes it readable")
        }
        var prompt: [UInt32]?, generated: [UInt32] = []
        var needle: Range<Int>?, answer: Range<Int>?
        var sums = Array(repeating: [Int: [[Float]]](), count: m.layers)
        var squares = sums
        var accumulated = Array(repeating: [[Float]](repeating: [], count: m.queryHeads), count: m.layers)
        var rows: [[[[Float]]]] = []
        var values = Array(repeating: [[Float]](repeating: [], count: m.kvHeads), count: m.layers)
        var outcomes: [String: RunOutcome] = [:]
        func check(_ ok: Bool, _ what: @autoclosure () -> String) throws {
            guard ok else { throw ReplayError("\(path): \(what())") }
        }
        try reader.forEachRecord { _, record in
            switch record {
            case let .tokens(role, ids):
                if role == .prompt { prompt = ids } else { generated = ids }
            case let .span(role, start, end):
                if role == .needle { needle = Int(start)..<Int(end) } else { answer = Int(start)..<Int(end) }
            case let .headStatistic(s):
                let l = Int(s.layer), h = Int(s.head)
                try check(l < m.layers && h < m.queryHeads, "statistic for layer \(l) head \(h) outside the model's \(m.layers) × \(m.queryHeads)")
                switch s.kind {
                case .windowSum: sums[l][Int(s.window), default: Array(repeating: [], count: m.queryHeads)][h] = s.values
                case .windowSquaredSum: squares[l][Int(s.window), default: Array(repeating: [], count: m.queryHeads)][h] = s.values
                case .accumulated: accumulated[l][h] = s.values
                }
            case let .decodeAttention(a):
                let step = Int(a.step), l = Int(a.layer), h = Int(a.head)
                try check(l < m.layers && h < m.queryHeads, "attention row for layer \(l) head \(h) outside the model")
                // A row of step s weighs the prompt and s generated keys: a step beyond its own row is no step.
                try check(step < a.values.count, "attention row of decode step \(step) holds only \(a.values.count) weights")
                while rows.count <= step { rows.append(Array(repeating: Array(repeating: [], count: m.queryHeads), count: m.layers)) }
                rows[step][l][h] = a.values
            case let .cacheVectors(c) where c.kind == .value:
                try check(Int(c.layer) < m.layers && Int(c.kvHead) < m.kvHeads && c.dimension == m.headDim,
                          "cache values for layer \(c.layer) KV head \(c.kvHead) do not fit the model")
                values[Int(c.layer)][Int(c.kvHead)] = c.values
            case let .annotation(key, value):
                if let label = RunOutcome.label(ofKey: key), let outcome = RunOutcome(annotationValue: value) { outcomes[label] = outcome }
            default:
                break
            }
        }
        guard let prompt else { throw ReplayError("\(path): the trace has no prompt tokens") }
        // Attention mass and output error are measured on the decode steps' rows: without them
        // there is nothing to score (a perfect score from no data is no evidence).
        guard !rows.isEmpty else { throw ReplayError("\(path): the trace has no decode attention rows, so replay has nothing to measure") }
        let n = prompt.count
        let global = Set(m.globalLayers ?? Array(0..<m.layers))
        var statistics: [LayerStatistics] = []
        for l in 0..<m.layers {
            for h in 0..<m.queryHeads {
                try check(accumulated[l][h].count == n, "layer \(l) head \(h) has no accumulated attention over the \(n) prompt keys")
                // A window the trace holds for one head it holds for every head, over every prompt key.
                for (kind, windows) in [("sums", sums[l]), ("squared sums", squares[l])] {
                    for (w, heads) in windows {
                        try check(heads[h].count == n, "layer \(l) head \(h) has window-\(w) \(kind) over \(heads[h].count) keys, the prompt has \(n)")
                    }
                }
            }
            statistics.append(LayerStatistics(keys: n, queryHeads: m.queryHeads, kvHeads: m.kvHeads, windowSums: sums[l],
                                              windowSquaredSums: squares[l], accumulated: accumulated[l], isGlobal: global.contains(l)))
        }
        for (step, layers) in rows.enumerated() {
            for l in global {
                for h in 0..<m.queryHeads {
                    try check(layers[l][h].count == n + step, "decode step \(step) of layer \(l) head \(h) has \(layers[l][h].count) weights, expected \(n + step)")
                }
                for g in 0..<m.kvHeads {
                    try check(values[l][g].count >= (n + step) * m.headDim, "layer \(l) KV head \(g) holds values for fewer than the \(n + step) positions step \(step) attends to")
                }
            }
        }
        self.prompt = prompt
        self.generated = generated
        self.needle = needle
        self.answer = answer
        self.statistics = statistics
        self.rows = rows
        self.values = values
        self.outcomes = outcomes
    }

    /// The layers replay measures (those with decode rows: the global ones).
    public var measuredLayers: [Int] {
        guard let first = rows.first else { return [] }
        return first.indices.filter { !first[$0][0].isEmpty }
    }
}
