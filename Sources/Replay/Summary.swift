import Foundation
import Policies
import Reporting

// Aggregating replay results over many traces: per model × policy × budget, the real compressed
// runs' accuracy and greedy agreement beside the replay proxies, and how well each proxy ranks
// the configurations the way accuracy does (Spearman's rank correlation).

/// One model × policy × budget over every trace that has it.
public struct SummaryCell: Sendable, Equatable {
    public var model: String
    public var policy: String
    /// The budget spelled as the user asked (tokens, or a kv-fraction).
    public var budget: String
    public var traces: Int
    public var keptFraction: Double
    public var attentionMass: Double
    public var outputError: Double
    /// Real compressed runs that found the answer, of those recorded.
    public var correct: Int
    public var runs: Int
    public var agreement: Double?
}

public enum Summary {
    /// Groups `results` (with the budget label each was asked at) by model, policy and budget.
    public static func cells(_ results: [(label: String, result: ReplayResult)]) -> [SummaryCell] {
        var order: [String] = []
        var groups: [String: [(String, ReplayResult)]] = [:]
        for (label, r) in results {
            let key = "\(r.model)\u{1}\(r.policy)\u{1}\(label)"
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append((label, r))
        }
        return order.map { key in
            let rs = groups[key]!.map(\.1)
            let n = Double(rs.count)
            let outcomes = rs.compactMap(\.outcome)
            let agreements = rs.compactMap(\.greedyAgreement)
            return SummaryCell(model: rs[0].model, policy: rs[0].policy, budget: groups[key]![0].0, traces: rs.count,
                               keptFraction: rs.map(\.keptFraction).reduce(0, +) / n,
                               attentionMass: rs.map(\.attentionMass).reduce(0, +) / n,
                               outputError: rs.map(\.outputError).reduce(0, +) / n,
                               correct: outcomes.filter(\.correct).count, runs: outcomes.count,
                               agreement: agreements.isEmpty ? nil : agreements.reduce(0, +) / Double(agreements.count))
        }
    }

    /// Spearman's rank correlation (average ranks for ties); nil for fewer than 3 points or a constant series.
    public static func spearman(_ x: [Double], _ y: [Double]) -> Double? {
        guard x.count == y.count, x.count >= 3 else { return nil }
        func ranks(_ v: [Double]) -> [Double] {
            let order = v.indices.sorted { v[$0] < v[$1] }
            var r = [Double](repeating: 0, count: v.count)
            var i = 0
            while i < order.count {
                var j = i
                while j + 1 < order.count, v[order[j + 1]] == v[order[i]] { j += 1 }
                for k in i...j { r[order[k]] = Double(i + j) / 2 + 1 }
                i = j + 1
            }
            return r
        }
        let rx = ranks(x), ry = ranks(y)
        let mx = rx.reduce(0, +) / Double(rx.count), my = ry.reduce(0, +) / Double(ry.count)
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for i in rx.indices {
            sxy += (rx[i] - mx) * (ry[i] - my)
            sxx += (rx[i] - mx) * (rx[i] - mx)
            syy += (ry[i] - my) * (ry[i] - my)
        }
        guard sxx > 0, syy > 0 else { return nil }
        return sxy / (sxx * syy).squareRoot()
    }

    /// The Markdown report: per model, the table and the proxies' rank correlations with accuracy.
    public static func markdown(_ cells: [SummaryCell]) -> String {
        var out = ""
        for model in orderedUnique(cells.map(\.model)) {
            let mine = cells.filter { $0.model == model }
            out += "## \(model)\n\n"
            var table = Table(columns: ["policy", "budget", "traces", "kept", "attention mass (replay)", "output error (replay)",
                                        "answer found (real runs)", "greedy agreement (real runs)"], rightAligned: Set(1...7))
            for c in mine {
                let found = c.runs > 0 ? "\(c.correct)/\(c.runs) (\(Int((Double(c.correct) / Double(c.runs) * 100).rounded())) %)" : "—"
                table.append([c.policy, c.budget, "\(c.traces)", formatPercent((c.keptFraction * 1000).rounded() / 1000),
                              Format.fixed(c.attentionMass, 3), Format.fixed(c.outputError, 3), found, c.agreement.map { Format.fixed($0, 2) } ?? "—"])
            }
            out += table.markdown + "\n"
            let measured = mine.filter { $0.runs > 0 }
            let accuracy = measured.map { Double($0.correct) / Double($0.runs) }
            let agreement = measured.compactMap(\.agreement)
            func rho(_ a: [Double], _ b: [Double]) -> String { spearman(a, b).map { String(format: "%+.2f", $0) } ?? "n/a" }
            out += "\nRank correlation across the \(measured.count) policy × budget cells with real runs (Spearman ρ): "
            out += "attention mass vs accuracy \(rho(measured.map(\.attentionMass), accuracy)), "
            out += "output error vs accuracy \(rho(measured.map(\.outputError), accuracy))"
            if agreement.count == measured.count {
                out += "; attention mass vs greedy agreement \(rho(measured.map(\.attentionMass), agreement)), "
                out += "output error vs greedy agreement \(rho(measured.map(\.outputError), agreement))"
            }
            out += ".\n\n"
            out += ordering(mine)
        }
        return out
    }

    /// Whether the papers' ordering at small budgets (CompressKV ≥ SnapKV ≥ PyramidKV > StreamingLLM)
    /// holds in the real runs, per budget, stated with the numbers.
    static func ordering(_ cells: [SummaryCell]) -> String {
        let order = ["compresskv", "snapkv", "pyramidkv", "streamingllm"]
        let budgets = orderedUnique(cells.map(\.budget)).filter { Int($0) != nil }.sorted { Int($0)! < Int($1)! }.prefix(2)
        var out = ""
        for b in budgets {
            let accuracy = order.map { p in cells.first { $0.policy == p && $0.budget == b && $0.runs > 0 }.map { Double($0.correct) / Double($0.runs) } }
            guard accuracy.allSatisfy({ $0 != nil }) else { continue }
            let a = accuracy.map { $0! }
            let holds = a[0] >= a[1] && a[1] >= a[2] && a[2] > a[3]
            let figures = zip(order, a).map { "\($0) \(Int(($1 * 100).rounded())) %" }.joined(separator: ", ")
            out += "- Budget \(b): \(figures) — the papers' ordering CompressKV ≥ SnapKV ≥ PyramidKV > StreamingLLM \(holds ? "holds" : "does not hold") here.\n"
        }
        return out.isEmpty ? "" : "Ordering at the smallest budgets (real runs):\n\n" + out + "\n"
    }

    static func orderedUnique(_ xs: [String]) -> [String] {
        var seen = Set<String>()
        return xs.filter { seen.insert($0).inserted }
    }
}
