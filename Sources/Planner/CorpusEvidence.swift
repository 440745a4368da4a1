import Accuracy
import Foundation
import Policies

/// What the accuracy corpus (`Accuracy/*.jsonl`, `ckv-sim corpus run`) says about a policy at a
/// kv-fraction: the share of the samples the full cache solves that the policy still solves,
/// pooled over every task kind and length where the full cache solves enough samples to tell
/// (`AccuracyCell.isInformative`), with its Wilson 95 % interval, interpolated linearly between
/// the two recorded kv-fractions around the asked one.
public struct CorpusEvidence: Codable, Sendable, Equatable {
    /// The reference models the corpus ran.
    public var models: [String]
    /// The kv-fraction asked (a row's request-weighted one) and the recorded ones it lies
    /// between (one when it is at or above the largest recorded).
    public var fraction: Double
    public var recorded: [Double]
    public var accuracy: Double
    public var low: Double
    public var high: Double
    /// Samples behind the estimate (the fewer of the two recorded points).
    public var samples: Int
    public var lengths: [Int]
    public var kinds: [String]

    /// The loss the recommendation uses: one minus the interval's lower end.
    public var pessimisticLoss: Double { 1 - low }

    /// "0.93 [0.85–0.97] of full-cache-solved at kv 10 % (n 120; 1024–2048 tokens)".
    public var text: String {
        let lengthText = lengths.count == 1 ? "\(lengths[0])" : "\(lengths.first ?? 0)–\(lengths.last ?? 0)"
        return String(format: "%.2f [%.2f–%.2f]", accuracy, low, high) + " of full-solved at kv \(formatPercent((fraction * 1000).rounded() / 1000)) (n \(samples); \(lengthText) tokens)"
    }
}

/// The corpus results files of a directory, pooled per policy and kv-fraction.
public struct AccuracyCorpus: Sendable {
    public let models: [String]
    public let lengths: [Int]
    public let kinds: [String]
    /// Per policy, its recorded kv-fractions ascending with the pooled proportion at each.
    let curves: [PolicyKind: [(fraction: Double, accuracy: Proportion)]]

    /// The `.jsonl` results in `directory`; nil when it has none.
    /// - Throws: `CorpusError` naming the file and line of a damaged one.
    public static func load(directory: String) throws -> AccuracyCorpus? {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".jsonl") }.sorted()
        guard !names.isEmpty else { return nil }
        let cells = try names.flatMap { try CorpusFile.read((directory as NSString).appendingPathComponent($0)).file.cells }
        return AccuracyCorpus(cells: cells)
    }

    /// Pools `cells` (only the informative ones count).
    public init(cells: [AccuracyCell]) {
        let informative = cells.filter(\.isInformative)
        models = Array(Set(informative.map(\.model))).sorted()
        lengths = Array(Set(informative.map(\.length))).sorted()
        kinds = Array(Set(informative.map(\.kind.rawValue))).sorted()
        var sums: [PolicyKind: [Double: (successes: Double, n: Int)]] = [:]
        for cell in informative {
            for p in cell.points where p.accuracy.n > 0 {
                let old = sums[p.policy, default: [:]][p.fraction] ?? (0, 0)
                sums[p.policy, default: [:]][p.fraction] = (old.successes + p.accuracy.value * Double(p.accuracy.n), old.n + p.accuracy.n)
            }
        }
        curves = sums.mapValues { byFraction in
            byFraction.sorted { $0.key < $1.key }.map { ($0.key, Proportion(successes: $0.value.successes, n: $0.value.n)) }
        }
    }

    /// The evidence for `policy` at kv-fraction `fraction`; nil when the corpus has no run of
    /// the policy or the fraction is below the smallest it recorded (no extrapolation down).
    public func evidence(_ policy: PolicyKind, fraction: Double) -> CorpusEvidence? {
        guard let curve = curves[policy], let first = curve.first, fraction >= first.fraction else { return nil }
        func make(_ recorded: [Double], _ a: Proportion, _ b: Proportion, _ t: Double) -> CorpusEvidence {
            func mix(_ x: Double, _ y: Double) -> Double { x + (y - x) * t }
            return CorpusEvidence(models: models, fraction: fraction, recorded: recorded, accuracy: mix(a.value, b.value), low: mix(a.low, b.low),
                                  high: mix(a.high, b.high), samples: min(a.n, b.n), lengths: lengths, kinds: kinds)
        }
        guard let upper = curve.firstIndex(where: { $0.fraction > fraction }) else {
            let last = curve[curve.count - 1]
            return make([last.fraction], last.accuracy, last.accuracy, 0)
        }
        let lo = curve[upper - 1], hi = curve[upper]
        let t = (fraction - lo.fraction) / (hi.fraction - lo.fraction)
        return make(t == 0 ? [lo.fraction] : [lo.fraction, hi.fraction], lo.accuracy, hi.accuracy, t)
    }
}
