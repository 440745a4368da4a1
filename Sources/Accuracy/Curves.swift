import Engine
import Foundation
import Policies

// Accuracy curves from corpus results: per model, task kind and length, how the full cache does
// and, on the samples it solves, each policy's score against the kv-fraction, with Wilson 95 %
// intervals. A sample the full cache fails says nothing about compression: it is counted in the
// full cache's rate and left out of the policies' scores.

/// A proportion with its Wilson score interval.
public struct Proportion: Codable, Equatable, Sendable {
    /// The mean score (successes / n for 0/1 scores).
    public var value: Double
    public var n: Int
    public var low: Double
    public var high: Double

    /// Wilson's 95 % interval for `successes` (fractional scores allowed: their sum) out of `n`.
    public init(successes: Double, n: Int, z: Double = 1.959964) {
        self.n = n
        guard n > 0 else {
            (value, low, high) = (.nan, 0, 1)
            return
        }
        let p = successes / Double(n), nn = Double(n), z2 = z * z
        let centre = (p + z2 / (2 * nn)) / (1 + z2 / nn)
        let half = z / (1 + z2 / nn) * (p * (1 - p) / nn + z2 / (4 * nn * nn)).squareRoot()
        value = p
        // Exact at the ends (rounding leaves centre − half a hair above 0 when p = 0).
        low = min(p, max(0, centre - half))
        high = max(p, min(1, centre + half))
    }

    /// "0.93 [0.80–0.98]", or "—" without samples.
    public var text: String {
        n == 0 ? "—" : String(format: "%.2f [%.2f–%.2f]", value, low, high)
    }
}

/// One point of a curve: a policy at a kv-fraction.
public struct CurvePoint: Codable, Equatable, Sendable {
    public var policy: PolicyKind
    public var fraction: Double
    /// Over the samples the full cache solves.
    public var accuracy: Proportion
    /// Mean replay proxies over the same samples.
    public var attentionMass: Double
    public var outputError: Double
}

/// A model's results for one task kind at one length.
public struct AccuracyCell: Codable, Equatable, Sendable {
    public var model: String
    public var kind: TaskKind
    public var length: Int
    /// Mean prompt tokens of the samples (the prompt fills the length as closely as the text allows).
    public var promptTokens: Double
    /// The full cache's success over every sample (score 1).
    public var full: Proportion
    public var points: [CurvePoint]

    /// The full cache solves too few samples for the policies' scores to mean anything.
    public var isInformative: Bool { full.n > 0 && full.value * Double(full.n) >= 5 }

    public func point(_ policy: PolicyKind, _ fraction: Double) -> CurvePoint? {
        points.first { $0.policy == policy && $0.fraction == fraction }
    }

    enum CodingKeys: String, CodingKey {
        case model, kind, length, full, points
        case promptTokens = "prompt_tokens"
    }
}

extension CorpusFile {
    /// The file's results per kind and length, in the settings' order.
    public var cells: [AccuracyCell] {
        let byCell = Dictionary(grouping: samples) { "\($0.key.kind.rawValue) \($0.key.length)" }
        return settings.kinds.flatMap { kind in
            settings.lengths.compactMap { length -> AccuracyCell? in
                guard let group = byCell["\(kind.rawValue) \(length)"], !group.isEmpty else { return nil }
                let solved = group.filter { $0.fullScore == 1 }
                let points = settings.policies.flatMap { policy in
                    settings.fractions.map { fraction -> CurvePoint in
                        let runs = solved.compactMap { s in s.runs.first { $0.policy == policy && $0.fraction == fraction } }
                        let mean = { (f: (CorpusRun) -> Double) in runs.isEmpty ? Double.nan : runs.map(f).reduce(0, +) / Double(runs.count) }
                        return CurvePoint(policy: policy, fraction: fraction, accuracy: Proportion(successes: runs.map(\.score).reduce(0, +), n: runs.count),
                                          attentionMass: mean(\.attentionMass), outputError: mean(\.outputError))
                    }
                }
                return AccuracyCell(model: settings.model, kind: kind, length: length,
                                    promptTokens: Double(group.map(\.promptTokens).reduce(0, +)) / Double(group.count),
                                    full: Proportion(successes: Double(group.filter { $0.fullScore == 1 }.count), n: group.count), points: points)
            }
        }
    }
}
