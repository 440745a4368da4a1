import Engine
import Foundation
import Policies
import Reporting

// What the corpus says, as Docs/accuracy.md shows it: per model, kind and length the curves
// (tables and SVG charts, Wilson 95 % intervals), where the papers' ordering on retrieval holds or
// fails with the intervals behind each verdict, and how the score at a fixed kv-fraction moves
// with length. Everything is computed from the results files; nothing is typed in.

/// One pairwise claim of an ordering at one (model, kind, length, kv-fraction).
public struct OrderingClaim: Equatable, Sendable {
    public enum Verdict: String, CaseIterable, Sendable {
        case holdsApart = "holds, intervals apart"
        case holds = "holds, intervals overlap"
        case fails = "fails, intervals overlap"
        case failsApart = "fails, intervals apart"
        /// Both at 0 or both at 1: the task cannot tell the two apart at this fraction.
        case tied = "tied at 0 or 1"
    }

    public var better: PolicyKind
    public var worse: PolicyKind
    /// `better` > `worse` rather than ≥.
    public var strict: Bool
    public var model: String
    public var kind: TaskKind
    public var length: Int
    public var fraction: Double
    public var a: Proportion
    public var b: Proportion

    public var verdict: Verdict {
        if a.value == b.value, a.value == 0 || a.value == 1 { return .tied }
        if a.low > b.high { return .holdsApart }
        if a.high < b.low { return .failsApart }
        return (strict ? a.value > b.value : a.value >= b.value) ? .holds : .fails
    }

    public var claim: String { "\(better.rawValue) \(strict ? ">" : "≥") \(worse.rawValue)" }
}

public enum AccuracyReport {
    /// The papers' ordering on retrieval (REFERENCES.md): CompressKV ≥ SnapKV ≥ PyramidKV > StreamingLLM.
    public static let papersOrdering: [(better: PolicyKind, worse: PolicyKind, strict: Bool)] = [
        (.compressKV, .snapKV, false), (.snapKV, .pyramidKV, false), (.pyramidKV, .streamingLLM, true),
    ]
    /// The kinds that retrieve what a needle planted.
    public static let retrievalKinds: [TaskKind] = [.passkey, .singleNeedle, .multiKey, .multiValue]

    /// Every pairwise claim of the papers' ordering on the informative retrieval cells.
    public static func claims(_ cells: [AccuracyCell]) -> [OrderingClaim] {
        cells.filter { $0.isInformative && retrievalKinds.contains($0.kind) }.flatMap { cell in
            fractions(cell).flatMap { f in
                papersOrdering.compactMap { o -> OrderingClaim? in
                    guard let a = cell.point(o.better, f)?.accuracy, let b = cell.point(o.worse, f)?.accuracy, a.n > 0, b.n > 0 else { return nil }
                    return OrderingClaim(better: o.better, worse: o.worse, strict: o.strict, model: cell.model, kind: cell.kind, length: cell.length,
                                         fraction: f, a: a, b: b)
                }
            }
        }
    }

    static func fractions(_ cell: AccuracyCell) -> [Double] { Array(Set(cell.points.map(\.fraction))).sorted() }

    /// One row per (model, kind, length, policy); a column per kv-fraction.
    public static func table(_ cells: [AccuracyCell]) -> Table {
        let fractions = Array(Set(cells.flatMap { $0.points.map(\.fraction) })).sorted()
        var rows: [[String]] = []
        for cell in cells {
            let lead = [cell.model, cell.kind.rawValue, String(cell.length), "\(solved(cell))/\(cell.full.n) \(cell.full.text)"]
            guard cell.isInformative else {
                rows.append(lead + ["(full cache solves too few)"] + Array(repeating: "", count: fractions.count))
                continue
            }
            rows += policyRows(cell, fractions).map { lead + $0 }
        }
        return Table(columns: ["model", "kind", "length", "full cache solved", "policy"] + fractions.map(formatPercent), rows: rows,
                     rightAligned: Set(2..<(5 + fractions.count)))
    }

    /// One kind's cells: a row per (length, policy), a column per kv-fraction.
    static func kindTable(_ cells: [AccuracyCell]) -> Table {
        let fractions = Array(Set(cells.flatMap { $0.points.map(\.fraction) })).sorted()
        let rows = cells.flatMap { cell in policyRows(cell, fractions).map { [String(cell.length)] + $0 } }
        return Table(columns: ["length", "policy"] + fractions.map(formatPercent), rows: rows, rightAligned: Set([0] + Array(2..<(2 + fractions.count))))
    }

    /// A row per policy `cell` holds: its name, then its score at each of `fractions`.
    static func policyRows(_ cell: AccuracyCell, _ fractions: [Double]) -> [[String]] {
        PolicyKind.allCases.filter { p in cell.points.contains { $0.policy == p } }.map { policy in
            [policy.rawValue] + fractions.map { cell.point(policy, $0)?.accuracy.text ?? "—" }
        }
    }

    /// The cells' models, in order of first appearance.
    static func models(_ cells: [AccuracyCell]) -> [String] {
        cells.map(\.model).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
    }

    static func solved(_ cell: AccuracyCell) -> Int { Int((cell.full.value * Double(cell.full.n)).rounded()) }

    /// How far a results file is: samples recorded of those its settings ask for, per length.
    public static func progress(_ file: CorpusFile, path: String) -> String {
        let s = file.settings
        let counts = Dictionary(grouping: file.samples, by: \.key.length).mapValues(\.count)
        let perLength = zip(s.lengths, s.samples).map { length, n in "\(length) tokens \(counts[length] ?? 0) of \(n * s.kinds.count)" }
        return "`\(path)`: \(s.model), \(s.kinds.count) kinds × \(s.policies.count) policies × kv-fractions \(s.fractions.map(formatPercent).joined(separator: ", ")), seed \(s.seed)"
            + (s.chat ? ", chat format" : "") + "; samples recorded: " + perLength.joined(separator: ", ") + ".\n"
    }

    /// A file name for `cell`'s chart: "smollm2-135m-…-passkey-1024.svg".
    public static func chartName(_ cell: AccuracyCell) -> String {
        let model = cell.model.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "-" }
        return "\(String(model).split(separator: "-").joined(separator: "-"))-\(cell.kind.rawValue)-\(cell.length).svg"
    }

    /// Accuracy against kv-fraction per policy, with each point's interval as a whisker.
    public static func chart(_ cell: AccuracyCell) -> String {
        let series = PolicyKind.allCases.enumerated().compactMap { i, policy -> SVGChart.Series? in
            let points = cell.points.filter { $0.policy == policy && $0.accuracy.n > 0 }.sorted { $0.fraction < $1.fraction }
            guard !points.isEmpty else { return nil }
            return SVGChart.Series(name: policy.rawValue, points: points.map { ($0.fraction, $0.accuracy.value) },
                                   intervals: points.map { ($0.accuracy.low, $0.accuracy.high) }, color: SVGChart.palette[i % SVGChart.palette.count])
        }
        return SVGChart.line(title: "\(cell.kind.rawValue), \(cell.length) tokens: \(solved(cell))/\(cell.full.n) solved by the full cache",
                             xLabel: "kv-fraction", yLabel: "score on the samples the full cache solves", series: series, logX: true,
                             baseline: 1, yMax: 1)
    }

    /// The corpus section of Docs/accuracy.md. `chartLink(cell)` is where `cell`'s chart is, relative
    /// to the document (nil: no charts).
    public static func markdown(_ cells: [AccuracyCell], chartLink: ((AccuracyCell) -> String)? = nil) -> String {
        var out = ""
        for model in models(cells) {
            let mine = cells.filter { $0.model == model }
            out += "### \(model)\n\n"
            for kind in TaskKind.allCases {
                let byLength = mine.filter { $0.kind == kind }
                guard !byLength.isEmpty else { continue }
                out += "#### \(kind.rawValue)\n\n"
                out += byLength.map { c in
                    "\(c.length) tokens (prompts of \(Int(c.promptTokens.rounded())) on average): the full cache solves \(solved(c)) of \(c.full.n) samples, \(c.full.text)"
                        + (c.isInformative ? "" : "; too few for the policies' scores to mean anything")
                }.joined(separator: ". ") + ".\n\n"
                let informative = byLength.filter(\.isInformative)
                guard !informative.isEmpty else { continue }
                if let chartLink {
                    out += informative.map { "![\(kind.rawValue) at \($0.length) tokens](\(chartLink($0)))" }.joined(separator: "\n") + "\n\n"
                }
                out += kindTable(informative).markdown + "\n\n"
            }
        }
        out += orderingSection(cells)
        out += lengthSection(cells)
        return out
    }

    static func orderingSection(_ cells: [AccuracyCell]) -> String {
        let all = claims(cells)
        var out = "### The papers' ordering on retrieval\n\n"
        out += "CompressKV ≥ SnapKV ≥ PyramidKV > StreamingLLM, checked at every kv-fraction of every informative "
        out += "retrieval cell (\(retrievalKinds.map(\.rawValue).joined(separator: ", "))). A claim holds or fails by the point "
        out += "estimates; \"intervals apart\" means the two Wilson 95 % intervals do not overlap, the only verdicts the samples "
        out += "support on their own. Both at 0 or both at 1 is a tie the task cannot break.\n\n"
        let verdicts = OrderingClaim.Verdict.allCases
        let summary = Table(columns: ["claim"] + verdicts.map(\.rawValue), rows: papersOrdering.map { o in
            let mine = all.filter { $0.better == o.better && $0.worse == o.worse }
            return [mine.first?.claim ?? "\(o.better.rawValue) vs \(o.worse.rawValue)"] + verdicts.map { v in String(mine.filter { $0.verdict == v }.count) }
        }, rightAligned: Set(1...verdicts.count))
        out += summary.markdown + "\n\n"
        let decided = all.filter { $0.verdict == .holdsApart || $0.verdict == .failsApart }
        if !decided.isEmpty {
            out += "The verdicts with intervals apart:\n\n"
            out += Table(columns: ["claim", "kind", "length", "kv-fraction", "first", "second", "verdict"], rows: decided.map { c in
                [c.claim, c.kind.rawValue, String(c.length), formatPercent(c.fraction), c.a.text, c.b.text, c.verdict.rawValue]
            }, rightAligned: [2, 3, 4, 5]).markdown + "\n\n"
        }
        return out
    }

    /// The kv-fractions the length section reads (where they were run).
    public static let lengthFractions = [0.1, 0.2]

    static func lengthSection(_ cells: [AccuracyCell]) -> String {
        var out = "### Loss with length at a fixed kv-fraction\n\n"
        out += "Per kind measured at two lengths or more, each policy's score at a fixed kv-fraction by length, on the samples "
        out += "the full cache solves; the last column compares the shortest and the longest length (\"apart\": their intervals do not overlap).\n\n"
        var any = false
        for model in models(cells) {
            for kind in TaskKind.allCases {
                let byLength = cells.filter { $0.model == model && $0.kind == kind && $0.isInformative }.sorted { $0.length < $1.length }
                guard byLength.count >= 2, let first = byLength.first, let last = byLength.last else { continue }
                let fractions = lengthFractions.filter { f in byLength.allSatisfy { $0.points.contains { $0.fraction == f } } }
                guard !fractions.isEmpty else { continue }
                any = true
                var rows: [[String]] = []
                for f in fractions {
                    for policy in PolicyKind.allCases {
                        let points = byLength.compactMap { $0.point(policy, f)?.accuracy }.filter { $0.n > 0 }
                        guard points.count == byLength.count, let a = points.first, let b = points.last else { continue }
                        let change = b.value - a.value
                        let apart = b.high < a.low || b.low > a.high
                        rows.append([formatPercent(f), policy.rawValue] + points.map(\.text)
                                    + [String(format: "%+.2f", change) + (apart ? ", apart" : "")])
                    }
                }
                out += "#### \(model), \(kind.rawValue)\n\n"
                out += Table(columns: ["kv-fraction", "policy"] + byLength.map { "\($0.length) tokens" } + ["\(first.length) → \(last.length)"], rows: rows,
                             rightAligned: Set(2...(2 + byLength.count))).markdown + "\n\n"
            }
        }
        if !any { out += "No kind is measured at two informative lengths yet.\n\n" }
        return out
    }
}
