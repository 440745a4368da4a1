import SeededRandom

/// A retrieval task the tool generates itself (DESIGN.md: no long-context benchmark data can be
/// downloaded here, and generated tasks let every length and depth be chosen).
public struct RetrievalTask: Sendable, Equatable {
    public var kind: String
    public var prompt: String
    /// The text a correct answer starts with (the first expected item).
    public var answer: String
    /// Every item a full answer holds: one for passkey, QA and the single and multi-key needles,
    /// all values of the key, every variable of the chain, the ten common words.
    public var expected: [String]
    /// Where the needle sits in the haystack, 0 … 1.
    public var depth: Double
    public var seed: UInt64
    /// The inserted sentence that holds the answer (its tokens are the trace's needle span).
    public var needle: String
    /// The answer counts anywhere in the continuation (a chat reply), not only at its start.
    public var answerAnywhere = false

    public init(kind: String, prompt: String, answer: String, depth: Double, seed: UInt64, needle: String) {
        self.kind = kind
        self.prompt = prompt
        self.answer = answer
        self.expected = [answer]
        self.depth = depth
        self.seed = seed
        self.needle = needle
    }

    /// A task whose answer has several items (`expected`); `needle` is the sentence holding the
    /// first, or "" when no one sentence holds the answer (common-word extraction).
    public init(kind: String, prompt: String, expected: [String], depth: Double, seed: UInt64, needle: String) {
        self.init(kind: kind, prompt: prompt, answer: expected[0], depth: depth, seed: seed, needle: needle)
        self.expected = expected
    }

    /// The half-open token ranges of the needle sentence and of the answer's first occurrence
    /// inside it, in `tokens` (the prompt as `tokenizer` encoded it); nil when not found.
    public func spans(in tokens: [Int32], tokenizer: Tokenizer) -> (needle: Range<Int>, answer: Range<Int>)? {
        var ends: [Int] = [] // byte offset after each token
        var bytes: [UInt8] = []
        for t in tokens {
            bytes += tokenizer.piece(t)
            ends.append(bytes.count)
        }
        func tokenRange(_ byteRange: Range<Int>) -> Range<Int> {
            let first = ends.firstIndex { $0 > byteRange.lowerBound }!
            let last = ends.firstIndex { $0 >= byteRange.upperBound }!
            return first..<(last + 1)
        }
        guard let at = find(Array(needle.utf8), in: bytes), let inNeedle = find(Array(answer.utf8), in: Array(needle.utf8)) else { return nil }
        let answerStart = at + inNeedle
        return (tokenRange(at..<(at + needle.utf8.count)), tokenRange(answerStart..<(answerStart + answer.utf8.count)))
    }

    private func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard !needle.isEmpty, needle.count <= haystack.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] && Array(haystack[i..<(i + needle.count)]) == needle {
            return i
        }
        return nil
    }

    /// The share of the expected items the continuation produced, 0 … 1 (RULER's exact scorer).
    /// One item: 1 when the continuation begins with it, ignoring leading spaces (contains it,
    /// with `answerAnywhere`). Several: the share of them it contains as whole words, in any order.
    public func score(_ generated: String) -> Double {
        if expected.count == 1 {
            return (answerAnywhere ? generated.contains(answer) : generated.drop { $0 == " " }.hasPrefix(answer)) ? 1 : 0
        }
        let words = Set(generated.split { !($0.isLetter || $0.isNumber) }.map(String.init))
        return Double(expected.filter { words.contains($0) }.count) / Double(expected.count)
    }

    /// The whole answer was produced.
    public func isCorrect(_ generated: String) -> Bool { score(generated) == 1 }
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
        let units = try fit(tokens, what: "passkey", tokenizer: tokenizer, build: build)
        return RetrievalTask(kind: "passkey", prompt: build(units), answer: key, depth: depth, seed: seed, needle: needle)
    }

    /// A question-answering prompt over a plain-prose haystack (our own text, below) holding
    /// four facts "<name>'s favourite <thing> is <value>." at seeded places; the asked fact
    /// sits at `depth`, the other three are distractors about other people. The prompt ends
    /// with the question and the start of the answer sentence, so the answer is the value.
    /// - Throws: `GenerationError` when `tokens` cannot hold the facts and the question.
    public static func qa(tokens: Int, depth: Double, seed: UInt64, tokenizer: Tokenizer) throws -> RetrievalTask {
        var rng = SplitMix64(seed: seed)
        func pick<T>(_ xs: [T]) -> T { xs[Int(rng.next() % UInt64(xs.count))] }
        var names = ["Ingrid", "Tomas", "Amara", "Keiko", "Rafael", "Olena", "Dmitri", "Priya", "Selma", "Nikolai", "Leona", "Jonah"]
        let things: [(String, [String])] = [
            ("colour", ["teal", "crimson", "amber", "violet", "olive", "indigo"]),
            ("city", ["Lisbon", "Oslo", "Nairobi", "Lima", "Hanoi", "Tallinn"]),
            ("fruit", ["mango", "quince", "apricot", "papaya", "fig", "lychee"]),
            ("instrument", ["cello", "banjo", "oboe", "harp", "tuba", "sitar"]),
        ]
        var facts: [(sentence: String, question: String, answer: String)] = []
        for (thing, values) in things {
            let i = Int(rng.next() % UInt64(names.count))
            let name = names.remove(at: i)
            let value = pick(values)
            facts.append(("\(name)'s favourite \(thing) is \(value). ", "What is \(name)'s favourite \(thing)? \(name)'s favourite \(thing) is", value))
        }
        let asked = Int(rng.next() % UInt64(facts.count))
        let distractorDepths = (0..<facts.count).map { _ in rng.nextUnit() }
        let intro = "Read the notes below about the people of a small harbour town, then answer the question at the end. "
        // The facts' sentences end with their space; `insert` adds it.
        let placed = facts.indices.map { f in (String(facts[f].sentence.dropLast()), f == asked ? depth : distractorDepths[f]) }
        func build(_ units: Int) -> String { intro + Self.insert(placed, into: units) + "\n" + facts[asked].question }
        let units = try fit(tokens, what: "QA", tokenizer: tokenizer, build: build)
        return RetrievalTask(kind: "qa", prompt: build(units), answer: facts[asked].answer, depth: depth, seed: seed,
                             needle: facts[asked].sentence)
    }

    /// A needle-in-a-haystack probe (Semantic Retrieval Head identification): the QA prose
    /// with `needle`'s sentence at `depth`, then its question and "Answer:" — or, with `chat`,
    /// notes and question as one user turn.
    public static func needle(_ needle: Needle, tokens: Int, depth: Double, tokenizer: Tokenizer, chat: ChatTemplate? = nil) throws -> RetrievalTask {
        let intro = "Read the notes below about a small harbour town, then answer the question at the end. "
        func build(_ units: Int) -> String {
            let notes = intro + Self.insert([(needle.sentence, depth)], into: units) + "\nQuestion: \(needle.question)"
            return chat.map { $0.render([ChatMessage(role: .user, content: notes)]) } ?? notes + "\nAnswer:"
        }
        let units = try fit(tokens, what: "needle", tokenizer: tokenizer, build: build)
        var task = RetrievalTask(kind: "needle", prompt: build(units), answer: needle.answer, depth: depth, seed: 0, needle: needle.sentence)
        task.answerAnywhere = true
        return task
    }

    /// The most filler units `build` can take within `tokens` tokens (token counts grow with units).
    /// - Throws: `GenerationError` when even no filler does not fit.
    static func fit(_ tokens: Int, what: String, tokenizer: Tokenizer, build: (Int) -> String) throws -> Int {
        func length(_ units: Int) -> Int { tokenizer.encode(build(units)).count }
        guard length(0) <= tokens else {
            throw GenerationError("a \(what) prompt needs at least \(length(0)) tokens; \(tokens) were asked for")
        }
        var lo = 0, hi = max(1, tokens / 16)
        while length(hi) <= tokens { lo = hi; hi *= 2 }
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if length(mid) <= tokens { lo = mid } else { hi = mid }
        }
        return lo
    }

    /// The QA haystack: plain sentences written for this project (no outside text).
    static let prose = [
        "The harbour wakes early, and the first boats leave before the bakery opens its shutters.",
        "Along the quay the nets are spread to dry on wooden frames that the wind has bleached grey.",
        "Children walk to school past the lighthouse, counting the gulls that sit on its railing.",
        "The market sells bread, cheese and smoked fish, and on Fridays a man sells old maps.",
        "In winter the ferry runs twice a day, and the waiting room smells of coffee and wet wool.",
        "The library keeps its newspapers in long drawers, sorted by year and then by the tide tables.",
        "On the hill above the town stands a chapel whose bell was cast from a ship's anchor.",
        "Most houses are painted in pale colours so that fishermen can pick out their own from the sea.",
        "The town council meets on the first Tuesday of every month in a room above the post office.",
        "A narrow path follows the cliffs to the next village, where the road ends at a stone pier.",
        "During the summer festival the square fills with lanterns and the band plays until midnight.",
        "The old customs house is now a museum of knots, compasses and ledgers of forgotten cargo.",
        "When storms come the shops close early and the harbour master raises a red flag on the mast.",
        "Every spring the boats are scraped, tarred and painted again before the season begins.",
        "The school has one classroom for the youngest pupils and another for everyone else.",
        "Tourists rarely stay long, but those who do learn the names of every rock in the bay.",
    ]
}
