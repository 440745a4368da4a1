import SeededRandom

// The RULER-style task kinds (issue #19), generated here over haystacks of our own text: a kind,
// a length in tokens, a needle depth and a seed give one prompt and the items its answer must hold.

/// A kind of generated task, by the name users type.
public enum TaskKind: String, CaseIterable, Sendable, Codable {
    /// A 5-digit key in repeated filler.
    case passkey
    /// One word → 7-digit number needle in prose.
    case singleNeedle = "single-needle"
    /// The asked key among 2–4 distractor needles of the same form.
    case multiKey = "multi-key"
    /// Every value of one key (four needles).
    case multiValue = "multi-value"
    /// A chain of `VAR X = Y` assignments: every name bound to the value.
    case variableTracking = "variable-tracking"
    /// The ten most frequent words of a numbered list.
    case commonWords = "common-words"
    /// Four facts in prose, one asked.
    case qa

    /// The names, for help and errors.
    public static var names: [String] { allCases.map(\.rawValue) }

    /// Parses a name.
    /// - Throws: `GenerationError` listing the known names.
    public init(parsing name: String) throws {
        guard let kind = TaskKind(rawValue: name.lowercased()) else {
            throw GenerationError("unknown task kind '\(name)' (known: \(TaskKind.names.joined(separator: ", ")))")
        }
        self = kind
    }

    /// Tokens to decode: room for the whole answer and a little more.
    public var answerTokens: Int {
        switch self {
        case .passkey, .qa: 8
        case .singleNeedle, .multiKey: 12
        case .multiValue: 40
        case .variableTracking: 32
        case .commonWords: 48
        }
    }

    /// The task of this kind with `tokens` prompt tokens (at most) under `tokenizer`, the asked
    /// needle at `depth`, everything else drawn from `seed`.
    /// - Throws: `GenerationError` when `tokens` cannot hold the task.
    public func generate(tokens: Int, depth: Double, seed: UInt64, tokenizer: Tokenizer) throws -> RetrievalTask {
        switch self {
        case .passkey: try Tasks.passkey(tokens: tokens, depth: depth, seed: seed, tokenizer: tokenizer)
        case .qa: try Tasks.qa(tokens: tokens, depth: depth, seed: seed, tokenizer: tokenizer)
        case .singleNeedle: try Tasks.magicNumbers(keys: 1, valuesPerKey: 1, tokens: tokens, depth: depth, seed: seed, tokenizer: tokenizer, kind: self)
        case .multiKey:
            // The asked key and 2–4 distractors.
            try Tasks.magicNumbers(keys: 3 + Int(seed % 3), valuesPerKey: 1, tokens: tokens, depth: depth, seed: seed, tokenizer: tokenizer, kind: self)
        case .multiValue: try Tasks.magicNumbers(keys: 1, valuesPerKey: 4, tokens: tokens, depth: depth, seed: seed, tokenizer: tokenizer, kind: self)
        case .variableTracking: try Tasks.variableTracking(tokens: tokens, depth: depth, seed: seed, tokenizer: tokenizer)
        case .commonWords: try Tasks.commonWords(tokens: tokens, seed: seed, tokenizer: tokenizer)
        }
    }
}

extension Tasks {
    /// "Special magic number" needles in the QA prose: `keys` words, each with `valuesPerKey`
    /// 7-digit numbers; the first key is asked. Its first needle sits at `depth`, its other values
    /// and the distractor keys' needles at seeded depths. One value: "What is the special magic
    /// number for K …"; several: "What are all the special magic numbers for K …".
    static func magicNumbers(keys: Int, valuesPerKey: Int, tokens: Int, depth: Double, seed: UInt64, tokenizer: Tokenizer,
                             kind: TaskKind) throws -> RetrievalTask {
        var rng = SplitMix64(seed: seed)
        let words = Self.draw(keys, from: Self.words, rng: &rng)
        var used = Set<Int>()
        func number() -> String {
            while true {
                let n = 1_000_000 + Int(rng.next() % 9_000_000)
                if used.insert(n).inserted { return String(n) }
            }
        }
        let needles: [(sentence: String, value: String, depth: Double)] = words.enumerated().flatMap { k, word in
            (0..<valuesPerKey).map { v in
                let value = number()
                return ("One of the special magic numbers for \(word) is: \(value).", value, k == 0 && v == 0 ? depth : rng.nextUnit())
            }
        }
        let asked = words[0]
        let question = valuesPerKey == 1
            ? "What is the special magic number for \(asked) mentioned in the provided text? The special magic number for \(asked) mentioned in the provided text is"
            : "What are all the special magic numbers for \(asked) mentioned in the provided text? The special magic numbers for \(asked) mentioned in the provided text are"
        let intro = "Some special magic numbers are hidden within the following text. Make sure to memorize them. I will quiz you about the numbers afterwards. "
        func build(_ units: Int) -> String {
            intro + Self.insert(needles.map { ($0.sentence, $0.depth) }, into: units) + "\n" + question
        }
        let units = try fit(tokens, what: kind.rawValue, tokenizer: tokenizer, build: build)
        let expected = needles.prefix(valuesPerKey).map(\.value)
        return RetrievalTask(kind: kind.rawValue, prompt: build(units), expected: expected, depth: depth, seed: seed, needle: needles[0].sentence)
    }

    /// RULER's variable tracking: `VAR A = 12345.` then four hops `VAR B = VAR A.` … spread from
    /// `depth` to the end of the prose, in order; the answer is the five names.
    static func variableTracking(tokens: Int, depth: Double, seed: UInt64, tokenizer: Tokenizer) throws -> RetrievalTask {
        var rng = SplitMix64(seed: seed)
        let letters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        var names: [String] = []
        while names.count < 5 {
            let name = String((0..<5).map { _ in letters[Int(rng.next() % 26)] })
            if !names.contains(name) { names.append(name) }
        }
        let value = String(10_000 + Int(rng.next() % 90_000))
        let start = min(max(depth, 0), 1)
        let places = (0..<names.count).map { i in start + (1 - start) * Double(i) / Double(names.count) }
        let statements = names.indices.map { i in
            (i == 0 ? "VAR \(names[0]) = \(value)." : "VAR \(names[i]) = VAR \(names[i - 1]).", places[i])
        }
        let intro = "Memorize and track the chain of variable assignments hidden in the following text. "
        let question = "Question: Find all variables that are assigned the value \(value) in the text above. Answer: According to the chain of variable assignments in the text above, \(names.count) variables are assigned the value \(value), they are:"
        func build(_ units: Int) -> String { intro + Self.insert(statements, into: units) + "\n" + question }
        let units = try fit(tokens, what: TaskKind.variableTracking.rawValue, tokenizer: tokenizer, build: build)
        return RetrievalTask(kind: TaskKind.variableTracking.rawValue, prompt: build(units), expected: names, depth: depth, seed: seed,
                             needle: statements[0].0)
    }

    /// RULER's common-word extraction: a numbered list where ten words appear often (30 times at
    /// 4k tokens and beyond, 20 at 2k, 10 below) and the others 3 times, shuffled; the answer is
    /// the ten. The list grows with uncommon words to fill `tokens`.
    static func commonWords(tokens: Int, seed: UInt64, tokenizer: Tokenizer) throws -> RetrievalTask {
        var rng = SplitMix64(seed: seed)
        let pool = Self.draw(Self.words.count, from: Self.words, rng: &rng)
        let common = Array(pool.prefix(10)), rare = Array(pool.dropFirst(10))
        let often = tokens >= 4096 ? 30 : tokens >= 2048 ? 20 : 10, seldom = 3
        let intro = "Below is a numbered list of words. In these words, some appear more often than others. Memorize the ones that appear most often.\n"
        let question = "\nQuestion: What are the 10 most common words in the above list? Answer: The top 10 words that appear most often in the list are:"
        func build(_ units: Int) -> String {
            // Uncommon words: the pool's, then pairs of them ("apple-river"), each unique; the shuffle
            // depends only on the seed and the length.
            func uncommon(_ i: Int) -> String {
                i < rare.count ? rare[i] : rare[i % rare.count] + "-" + rare[(i / rare.count - 1) % rare.count]
            }
            var list = common.flatMap { Array(repeating: $0, count: often) } + (0..<units).flatMap { Array(repeating: uncommon($0), count: seldom) }
            var shuffle = SplitMix64(seed: seed &+ UInt64(units))
            Self.shuffle(&list, rng: &shuffle)
            return intro + list.enumerated().map { "\($0.offset + 1). \($0.element)" }.joined(separator: " ") + question
        }
        let units = try fit(tokens, what: TaskKind.commonWords.rawValue, tokenizer: tokenizer, build: build)
        return RetrievalTask(kind: TaskKind.commonWords.rawValue, prompt: build(units), expected: common, depth: 0, seed: seed, needle: "")
    }

    /// `count` distinct items of `pool` in a seeded order.
    static func draw(_ count: Int, from pool: [String], rng: inout SplitMix64) -> [String] {
        var items = pool
        shuffle(&items, rng: &rng)
        return Array(items.prefix(count))
    }

    /// Fisher–Yates with our generator, written out so the order never depends on the standard
    /// library's shuffle algorithm.
    static func shuffle(_ items: inout [String], rng: inout SplitMix64) {
        for i in stride(from: items.count - 1, to: 0, by: -1) { items.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
    }

    /// `units` prose sentences with each sentence of `needles` (without its trailing space) inserted
    /// at its depth (0 … 1): the haystack of QA, the needle probes and the magic-number and
    /// variable-tracking kinds.
    static func insert(_ needles: [(String, Double)], into units: Int) -> String {
        var sentences = (0..<units).map { Self.prose[$0 % Self.prose.count] + " " }
        // Deepest first so earlier indices stay valid; equal places keep the needles' order.
        let places = needles.indices.map { ($0, Int((Double(units) * min(max(needles[$0].1, 0), 1)).rounded())) }
            .sorted { ($0.1, $0.0) > ($1.1, $1.0) }
        for (i, at) in places { sentences.insert(needles[i].0 + " ", at: at) }
        return sentences.joined()
    }

    /// Plain English nouns for keys and word lists (our own list).
    static let words = [
        "apple", "anchor", "badge", "basket", "beacon", "blanket", "bottle", "bridge", "bucket", "button",
        "cabin", "camera", "candle", "canyon", "carpet", "castle", "cellar", "chair", "cherry", "chimney",
        "circle", "cloud", "clover", "coffee", "comet", "copper", "cotton", "crayon", "crystal", "curtain",
        "daisy", "desert", "diamond", "dolphin", "donkey", "dragon", "drum", "eagle", "engine", "falcon",
        "feather", "fence", "ferry", "fiddle", "forest", "fountain", "garden", "garlic", "glacier", "goblet",
        "granite", "guitar", "hammer", "harbor", "helmet", "honey", "island", "jacket", "jungle", "kettle",
        "ladder", "lantern", "lemon", "lizard", "magnet", "mantle", "marble", "meadow", "mirror", "monkey",
        "mountain", "mustard", "needle", "oyster", "paddle", "palace", "parrot", "pebble", "pencil", "pepper",
        "pillow", "planet", "pocket", "potato", "puzzle", "quilt", "rabbit", "radish", "ribbon", "river",
        "rocket", "saddle", "salmon", "sandal", "saucer", "scarf", "shovel", "silver", "spider", "spoon",
        "statue", "stone", "sugar", "summit", "tablet", "teapot", "thimble", "thunder", "ticket", "tiger",
        "timber", "tomato", "tower", "trumpet", "tulip", "turtle", "umbrella", "valley", "velvet", "violin",
        "wagon", "walnut", "window", "winter", "wizard", "yogurt", "zebra", "acorn", "almond", "arrow",
    ]
}

/// One sample's place in a set of generated tasks: its kind, requested length and index.
public struct SampleKey: Hashable, Codable, Sendable, CustomStringConvertible {
    public var kind: TaskKind
    public var length: Int
    public var index: Int
    public init(kind: TaskKind, length: Int, index: Int) {
        self.kind = kind
        self.length = length
        self.index = index
    }
    public var description: String { "\(kind.rawValue) \(length) #\(index)" }
}

/// Which generated tasks a run holds — the accuracy corpus's samples, or the tasks exported for
/// a recording elsewhere — so the same settings name the same tasks wherever they run.
public struct SamplePlan: Equatable, Sendable {
    public var kinds: [TaskKind]
    /// Prompt lengths in tokens, and the samples at each (same order).
    public var lengths: [Int]
    public var samples: [Int]
    public var seed: UInt64

    public init(kinds: [TaskKind], lengths: [Int], samples: [Int], seed: UInt64) {
        self.kinds = kinds
        self.lengths = lengths
        self.samples = samples
        self.seed = seed
    }

    /// Every sample, in the order it runs: length, then kind, then index (so a run cut short has
    /// every kind at the shorter lengths).
    public var keys: [SampleKey] {
        zip(lengths, samples).flatMap { length, count in
            kinds.flatMap { kind in (0..<count).map { SampleKey(kind: kind, length: length, index: $0) } }
        }
    }

    /// The task generator's seed of a sample: the plan's seed mixed with the sample's key.
    public func seed(of key: SampleKey) -> UInt64 {
        let kindIndex = UInt64(TaskKind.allCases.firstIndex(of: key.kind)!)
        var mix = SplitMix64(seed: seed ^ (kindIndex << 56) ^ (UInt64(key.length) << 20) ^ UInt64(key.index))
        return mix.next()
    }

    /// Needle depths spread evenly over the samples of one length: (i + ½) / n.
    public func depth(of key: SampleKey) -> Double {
        let n = samples[lengths.firstIndex(of: key.length)!]
        return (Double(key.index) + 0.5) / Double(n)
    }

    /// The sample's task under `tokenizer`.
    public func task(_ key: SampleKey, tokenizer: Tokenizer) throws -> RetrievalTask {
        try key.kind.generate(tokens: key.length, depth: depth(of: key), seed: seed(of: key), tokenizer: tokenizer)
    }
}
