import SeededRandom

/// A retrieval task the tool generates itself (DESIGN.md: no long-context benchmark data can be
/// downloaded here, and generated tasks let every length and depth be chosen).
public struct RetrievalTask: Sendable, Equatable {
    public var kind: String
    public var prompt: String
    /// The text a correct answer starts with.
    public var answer: String
    /// Where the needle sits in the haystack, 0 … 1.
    public var depth: Double
    public var seed: UInt64

    /// True when `generated` (the model's continuation) begins with the answer, ignoring
    /// leading spaces.
    public func isCorrect(_ generated: String) -> Bool {
        generated.drop { $0 == " " }.hasPrefix(answer)
    }
}

public enum Tasks {
    /// The passkey retrieval prompt of REFERENCES.md ("Reference engine facts"): filler "The
    /// grass is green. …" around a needle that states a seeded 5-digit key twice, at `depth` of
    /// the filler, and the cue "What is the pass key? The pass key is". The filler is repeated
    /// until the prompt is as long as it can be within `tokens` tokens of `tokenizer`.
    /// - Throws: `GenerationError` when `tokens` cannot hold the needle and the cue.
    public static func passkey(tokens: Int, depth: Double, seed: UInt64, tokenizer: Tokenizer) throws -> RetrievalTask {
        var rng = SplitMix64(seed: seed)
        let key = String(10_000 + Int(rng.next() % 90_000))
        let filler = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
        let needle = "The pass key is \(key). Remember it. \(key) is the pass key. "
        let intro = "There is important info hidden inside a lot of irrelevant text. Find it and memorize it. "
        let cue = "What is the pass key? The pass key is"
        func build(_ units: Int) -> String {
            let before = Int((Double(units) * min(max(depth, 0), 1)).rounded())
            return intro + String(repeating: filler, count: before) + needle + String(repeating: filler, count: units - before) + cue
        }
        func length(_ units: Int) -> Int { tokenizer.encode(build(units)).count }
        guard length(0) <= tokens else {
            throw GenerationError("a passkey prompt needs at least \(length(0)) tokens; \(tokens) were asked for")
        }
        // The largest filler count that fits (token counts grow with the count).
        var lo = 0, hi = max(1, tokens / 8)
        while length(hi) <= tokens { lo = hi; hi *= 2 }
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if length(mid) <= tokens { lo = mid } else { hi = mid }
        }
        return RetrievalTask(kind: "passkey", prompt: build(lo), answer: key, depth: depth, seed: seed)
    }
}
