import HeapModule

// Byte-level BPE (`tokenizer.ggml.model = gpt2`), following llama.cpp's `llm_tokenizer_bpe_session`
// (src/llama-vocab.cpp) and its pre-tokenizers (src/unicode.cpp):
//   1. the pre-tokenizer named by `tokenizer.ggml.pre` splits the text into words;
//   2. each word's UTF-8 bytes are mapped to GPT-2's printable byte alphabet (' ' → 'Ġ');
//   3. the word's characters are merged pairwise, lowest merge rank first (leftmost on a tie),
//      until no adjacent pair has a rank;
//   4. each symbol becomes its token, or, if it is not in the vocabulary, its single bytes' tokens.

/// The word splitters llama.cpp uses for the `tokenizer.ggml.pre` values this engine knows.
public enum PreTokenizer: String, Sendable, CaseIterable {
    /// GPT-2's regex `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`.
    case gpt2 = "gpt-2"
    /// SmolLM (also StarCoder): every number character on its own, then GPT-2's regex.
    case smollm
    /// Llama 3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
    case llama3 = "llama-bpe"
    /// Qwen 2: Llama 3's regex with single digits (`\p{N}`).
    case qwen2

    /// Splits `text` (Unicode scalars) into words, as ranges.
    func split(_ text: [Unicode.Scalar]) -> [Range<Int>] {
        switch self {
        case .gpt2: return WordSplitter(text).gpt2(in: 0..<text.count)
        case .smollm:
            let splitter = WordSplitter(text)
            return splitter.eachNumberAlone(in: 0..<text.count).flatMap { splitter.gpt2(in: $0) }
        case .llama3: return WordSplitter(text).llama3(in: 0..<text.count, maxDigits: 3)
        case .qwen2: return WordSplitter(text).llama3(in: 0..<text.count, maxDigits: 1)
        }
    }
}

/// The character classes the pre-tokenizer regexes use.
enum CharacterClass {
    case letter, number, whitespace, other

    init(_ s: Unicode.Scalar) {
        // White_Space first: llama.cpp's \s is that property, and it wins over the category (\n is Cc).
        if s.properties.isWhitespace { self = .whitespace; return }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: self = .letter
        case .decimalNumber, .letterNumber, .otherNumber: self = .number
        default: self = .other // llama.cpp counts unassigned code points here too
        }
    }
}

/// Hand-written equivalents of the regexes (the same as llama.cpp's custom splitters): a word
/// never crosses the bounds of the range it is given.
struct WordSplitter {
    let text: [Unicode.Scalar]
    let classes: [CharacterClass]

    init(_ text: [Unicode.Scalar]) {
        self.text = text
        classes = text.map(CharacterClass.init)
    }

    /// `\p{N}`: each number character alone; the text between them is kept as words too.
    func eachNumberAlone(in range: Range<Int>) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var start = range.lowerBound
        for i in range where classes[i] == .number {
            if i > start { out.append(start..<i) }
            out.append(i..<i + 1)
            start = i + 1
        }
        if start < range.upperBound { out.append(start..<range.upperBound) }
        return out
    }

    /// The length of a contraction `'s|'t|'re|'ve|'m|'ll|'d` at `pos` (ASCII case folded for
    /// Llama 3's `(?i:…)`), or nil.
    func contraction(at pos: Int, end: Int, caseInsensitive: Bool) -> Int? {
        guard text[pos] == "'", pos + 1 < end else { return nil }
        func letter(_ i: Int) -> Unicode.Scalar {
            let s = text[i]
            return caseInsensitive && ("A"..."Z").contains(s) ? Unicode.Scalar(s.value + 32)! : s
        }
        let n = letter(pos + 1)
        if n == "s" || n == "t" || n == "m" || n == "d" { return 2 }
        guard pos + 2 < end else { return nil }
        let nn = letter(pos + 2)
        return (n == "r" && nn == "e") || (n == "v" && nn == "e") || (n == "l" && nn == "l") ? 3 : nil
    }

    /// Splits `range` into consecutive words: `match(pos, end)` is where the word starting at
    /// `pos` ends (past `pos`), as the pre-tokenizer's regex alternatives would match it.
    func words(in range: Range<Int>, match: (_ pos: Int, _ end: Int) -> Int) -> [Range<Int>] {
        var words: [Range<Int>] = []
        var pos = range.lowerBound
        while pos < range.upperBound {
            let next = match(pos, range.upperBound)
            words.append(pos..<next)
            pos = next
        }
        return words
    }

    /// The class of position `i`, nil at or past `end`.
    func cls(_ i: Int, _ end: Int) -> CharacterClass? { i < end ? classes[i] : nil }

    /// A whitespace run at `pos`: `\s+(?!\S)` keeps its last space for the next word, `\s+` at
    /// the end of the text takes it all; nil when `pos` is not whitespace.
    func whitespaceRun(at pos: Int, end: Int) -> Int? {
        var spaces = 0
        while cls(pos + spaces, end) == .whitespace { spaces += 1 }
        if spaces > 1, pos + spaces < end { return pos + spaces - 1 }
        return spaces > 0 ? pos + spaces : nil
    }

    func gpt2(in range: Range<Int>) -> [Range<Int>] {
        words(in: range) { pos, end in
            if let n = contraction(at: pos, end: end, caseInsensitive: false) { return pos + n }
            let space = text[pos] == " " ? 1 : 0
            let lead = cls(pos + space, end)
            if lead == .letter || lead == .number || lead == .other { // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
                var i = pos + space
                while cls(i, end) == lead { i += 1 }
                return i
            }
            return whitespaceRun(at: pos, end: end) ?? pos + 1 // no match: one character
        }
    }

    func llama3(in range: Range<Int>, maxDigits: Int) -> [Range<Int>] {
        func isNewline(_ i: Int, _ end: Int) -> Bool { i < end && (text[i] == "\r" || text[i] == "\n") }
        return words(in: range) { pos, end in
            let c = text[pos], cc = classes[pos]
            if let n = contraction(at: pos, end: end, caseInsensitive: true) { return pos + n }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(c == "\r" || c == "\n" || cc == .number), cc == .letter || cls(pos + 1, end) == .letter {
                var i = pos + 1
                while cls(i, end) == .letter { i += 1 }
                return i
            }
            // \p{N}{1,maxDigits}
            if cc == .number {
                var i = pos
                while cls(i, end) == .number, i - pos < maxDigits { i += 1 }
                return i
            }
            // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
            let space = c == " " ? 1 : 0
            if cls(pos + space, end) == .other {
                var i = pos + space
                while cls(i, end) == .other { i += 1 }
                while isNewline(i, end) { i += 1 }
                return i
            }
            // \s*[\r\n]+ ends at the run's last newline
            var spaces = 0, lastNewline = -1
            while cls(pos + spaces, end) == .whitespace {
                if isNewline(pos + spaces, end) { lastNewline = pos + spaces + 1 }
                spaces += 1
            }
            if lastNewline > 0 { return lastNewline }
            return whitespaceRun(at: pos, end: end) ?? pos + 1
        }
    }
}

/// GPT-2's reversible map from bytes to printable characters: the printable Latin-1 bytes stand
/// for themselves, the other 68 bytes map to U+0100 upwards in byte order.
enum ByteAlphabet {
    static let encode: [[UInt8]] = {
        var map = [UInt32](repeating: 0, count: 256)
        var extra: UInt32 = 256
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                map[b] = UInt32(b)
            } else {
                map[b] = extra
                extra += 1
            }
        }
        return map.map { Array(String(Unicode.Scalar($0)!).utf8) }
    }()

    static let decode: [UInt32: UInt8] = {
        var out: [UInt32: UInt8] = [:]
        for b in 0..<256 {
            let scalar = String(decoding: encode[b], as: UTF8.self).unicodeScalars.first!
            out[scalar.value] = UInt8(b)
        }
        return out
    }()
}

/// The merge table: symbols are interned strings (vocabulary entries keep their token ids;
/// strings only merges mention get ids past the vocabulary).
struct MergeTable: Sendable {
    struct Merge: Sendable {
        var rank: Int32
        var result: Int32
    }

    let pre: PreTokenizer
    /// Whole words that are tokens skip the merges (llama.cpp's `ignore_merges`, Llama 3).
    let ignoreMerges: Bool
    private(set) var strings: [[UInt8]]
    private(set) var ids: [[UInt8]: Int32]
    private var merges: [UInt64: Merge] = [:]
    let vocabularySize: Int

    init(tokens: [[UInt8]], lookup: [[UInt8]: Int32], merges lines: [String], pre: PreTokenizer) throws {
        self.pre = pre
        ignoreMerges = pre == .llama3
        strings = tokens
        ids = lookup
        vocabularySize = tokens.count
        merges.reserveCapacity(lines.count)
        for (rank, line) in lines.enumerated() {
            let bytes = Array(line.utf8)
            // llama.cpp splits at the first space after the first byte.
            guard let cut = bytes.dropFirst().firstIndex(of: 0x20) else {
                throw TokenizerError("tokenizer.ggml.merges[\(rank)] '\(line)' is not two symbols separated by a space")
            }
            let left = intern(Array(bytes[..<cut])), right = intern(Array(bytes[(cut + 1)...]))
            let result = intern(Array(bytes[..<cut]) + Array(bytes[(cut + 1)...]))
            let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
            if merges[key] == nil { merges[key] = Merge(rank: Int32(rank), result: result) }
        }
    }

    private mutating func intern(_ s: [UInt8]) -> Int32 {
        if let id = ids[s] { return id }
        let id = Int32(strings.count)
        strings.append(s)
        ids[s] = id
        return id
    }

    private struct Bigram: Comparable {
        var left: Int
        var right: Int
        var leftSymbol: Int32
        var rightSymbol: Int32
        var rank: Int32
        var result: Int32
        // The lowest rank first, then the leftmost pair (`popMax` takes the greatest).
        static func < (a: Bigram, b: Bigram) -> Bool { a.rank > b.rank || (a.rank == b.rank && a.left > b.left) }
    }

    /// Encodes one plain-text fragment (no special tokens in it).
    func encode(_ text: [UInt8], into out: inout [Int32], byteToken: (UInt8) -> Int32?) {
        let scalars = Array(String(decoding: text, as: UTF8.self).unicodeScalars)
        for word in pre.split(scalars) {
            var mapped: [UInt8] = []
            for s in scalars[word] {
                for b in String(s).utf8 { mapped += ByteAlphabet.encode[Int(b)] }
            }
            encodeWord(mapped, into: &out, byteToken: byteToken)
        }
    }

    private func encodeWord(_ word: [UInt8], into out: inout [Int32], byteToken: (UInt8) -> Int32?) {
        if ignoreMerges, let id = ids[word], Int(id) < vocabularySize {
            out.append(id)
            return
        }
        // Symbols: one per character, as interned ids (-1 for a string no merge or token has).
        var symbol: [Int32] = []
        var spans: [Range<Int>] = []
        var i = 0
        while i < word.count {
            let n = min(utf8Width(word[i]), word.count - i)
            symbol.append(ids[Array(word[i..<i + n])] ?? -1)
            spans.append(i..<i + n)
            i += n
        }
        var next = Array(1...symbol.count).map { $0 == symbol.count ? -1 : $0 }
        var prev = Array(-1..<(symbol.count - 1))
        var alive = [Bool](repeating: true, count: symbol.count)
        var queue = Heap<Bigram>()
        func push(_ l: Int, _ r: Int) {
            guard l >= 0, r >= 0, symbol[l] >= 0, symbol[r] >= 0 else { return }
            let key = UInt64(UInt32(bitPattern: symbol[l])) << 32 | UInt64(UInt32(bitPattern: symbol[r]))
            guard let m = merges[key] else { return }
            queue.insert(Bigram(left: l, right: r, leftSymbol: symbol[l], rightSymbol: symbol[r], rank: m.rank, result: m.result))
        }
        for k in 1..<max(1, symbol.count) { push(k - 1, k) }
        while let b = queue.popMax() {
            guard alive[b.left], alive[b.right], symbol[b.left] == b.leftSymbol, symbol[b.right] == b.rightSymbol,
                  next[b.left] == b.right else { continue }
            symbol[b.left] = b.result
            spans[b.left] = spans[b.left].lowerBound..<spans[b.right].upperBound
            alive[b.right] = false
            next[b.left] = next[b.right]
            if next[b.right] >= 0 { prev[next[b.right]] = b.left }
            push(prev[b.left], b.left)
            push(b.left, next[b.left])
        }
        var k = 0
        while k >= 0, k < symbol.count {
            let id = symbol[k]
            if id >= 0, Int(id) < vocabularySize {
                out.append(id)
            } else {
                for byte in word[spans[k]] { if let t = byteToken(byte) { out.append(t) } }
            }
            k = next[k]
        }
    }
}

@inline(__always)
func utf8Width(_ lead: UInt8) -> Int {
    switch lead >> 4 {
    case 0xF: 4
    case 0xE: 3
    case 0xC, 0xD: 2
    default: 1
    }
}

