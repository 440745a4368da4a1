import Testing
@testable import Engine
@testable import Replay

@Suite("replay summaries and profiling helpers")
struct SummaryTests {
    @Test("Spearman's ρ: perfect, reversed, ties averaged, undefined for constants")
    func spearman() throws {
        #expect(Summary.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == 1)
        #expect(Summary.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == -1)
        // x ranks 1, 2.5, 2.5, 4 against y ranks 1, 2, 3, 4: ρ = 4.5 / √(4.5 · 5).
        let rho = try #require(Summary.spearman([1, 2, 2, 3], [1, 2, 3, 4]))
        #expect(abs(rho - 4.5 / (4.5 * 5).squareRoot()) < 1e-12)
        #expect(Summary.spearman([1, 1, 1], [1, 2, 3]) == nil)
        #expect(Summary.spearman([1, 2], [1, 2]) == nil)
    }

    @Test("ROUGE-1 recall counts the reference's words with multiplicity, case- and punctuation-blind")
    func rouge() {
        #expect(rouge1Recall(reference: "Admiral Whiskers", candidate: "The cat is admiral whiskers.") == 1)
        #expect(rouge1Recall(reference: "the blue hall on Fishmonger Street", candidate: "in the blue hall") == 0.5)
        #expect(rouge1Recall(reference: "the the", candidate: "the") == 0.5)
        #expect(rouge1Recall(reference: "", candidate: "x") == 0)
    }
}
