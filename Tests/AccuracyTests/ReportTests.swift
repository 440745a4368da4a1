import Foundation
import Testing
@testable import Accuracy
import Engine
import Policies

/// A cell of `kind` at `length` whose policies score `scores[policy]` (successes of `n`) at every fraction given.
private func cell(_ kind: TaskKind, length: Int = 1024, full: Int = 30, n: Int = 30, _ scores: [PolicyKind: [Double: Int]]) -> AccuracyCell {
    let points = scores.keys.sorted { $0.rawValue < $1.rawValue }.flatMap { policy in
        scores[policy]!.keys.sorted().map { f in
            CurvePoint(policy: policy, fraction: f, accuracy: Proportion(successes: Double(scores[policy]![f]!), n: full), attentionMass: 0.5, outputError: 0.1)
        }
    }
    return AccuracyCell(model: "Test Model", kind: kind, length: length, promptTokens: Double(length - 10),
                        full: Proportion(successes: Double(full), n: n), points: points)
}

@Suite("accuracy report")
struct AccuracyReportTests {
    private func claim(_ a: Int, _ b: Int, strict: Bool = false) -> OrderingClaim {
        OrderingClaim(better: .snapKV, worse: .pyramidKV, strict: strict, model: "m", kind: .passkey, length: 1024, fraction: 0.1,
                      a: Proportion(successes: Double(a), n: 30), b: Proportion(successes: Double(b), n: 30))
    }

    @Test("a verdict follows the point estimates, and says when the Wilson intervals are apart")
    func verdicts() {
        #expect(claim(28, 5).verdict == .holdsApart)
        #expect(claim(16, 14).verdict == .holds)
        #expect(claim(14, 16).verdict == .fails)
        #expect(claim(2, 25).verdict == .failsApart)
        #expect(claim(15, 15).verdict == .holds)
        #expect(claim(15, 15, strict: true).verdict == .fails)
        #expect(claim(0, 0).verdict == .tied && claim(30, 30, strict: true).verdict == .tied)
        #expect(claim(15, 15, strict: true).claim == "snapkv > pyramidkv")
    }

    @Test("claims come from the informative retrieval cells only, one per pair of the ordering and kv-fraction")
    func claims() {
        let scores: [PolicyKind: [Double: Int]] = [.compressKV: [0.1: 25, 0.2: 30], .snapKV: [0.1: 20, 0.2: 30], .pyramidKV: [0.1: 10, 0.2: 29], .streamingLLM: [0.1: 0, 0.2: 5]]
        let cells = [cell(.passkey, scores), cell(.qa, scores), cell(.multiKey, full: 3, scores)]
        let all = AccuracyReport.claims(cells)
        #expect(all.count == 6 && all.allSatisfy { $0.kind == .passkey })
        let at10 = all.filter { $0.fraction == 0.1 }.map(\.verdict)
        #expect(at10 == [.holds, .holds, .holdsApart])
        #expect(all.first { $0.fraction == 0.2 && $0.better == .compressKV }?.verdict == .tied)
    }

    @Test("the report has a table and a chart per informative cell, the ordering and the length sections; the same input gives the same bytes")
    func markdown() {
        let scores: [PolicyKind: [Double: Int]] = [.compressKV: [0.1: 25, 0.2: 30], .snapKV: [0.1: 20, 0.2: 30], .pyramidKV: [0.1: 10, 0.2: 29], .streamingLLM: [0.1: 2, 0.2: 5]]
        let cells = [cell(.passkey, length: 1024, scores), cell(.passkey, length: 2048, scores), cell(.qa, full: 2, scores)]
        let md = AccuracyReport.markdown(cells) { "charts/" + AccuracyReport.chartName($0) }
        #expect(md.contains("![passkey at 1024 tokens](charts/test-model-passkey-1024.svg)"))
        #expect(md.contains("![passkey at 2048 tokens](charts/test-model-passkey-2048.svg)") && !md.contains("qa-1024.svg"))
        #expect(md.contains("too few for the policies' scores to mean anything"))
        #expect(!md.components(separatedBy: "#### qa")[1].contains("| length | policy |"))
        #expect(md.contains("### The papers' ordering on retrieval") && md.contains("| compresskv ≥ snapkv | 0 | 2 | 0 | 0 | 2 |"))
        #expect(md.contains("#### Test Model, passkey") && md.contains("| 10% | snapkv | 0.67 [0.49–0.81] | 0.67 [0.49–0.81] | +0.00 |"))
        #expect(md == AccuracyReport.markdown(cells) { "charts/" + AccuracyReport.chartName($0) })
        let svg = AccuracyReport.chart(cells[0])
        #expect(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>") && svg == AccuracyReport.chart(cells[0]))
        for p in ["compresskv", "snapkv", "pyramidkv", "streamingllm"] { #expect(svg.contains(">\(p)</text>")) }
        // A whisker per point: 4 policies × 2 fractions.
        #expect(svg.components(separatedBy: "opacity=\"0.6\"").count - 1 == 8)
    }
}
