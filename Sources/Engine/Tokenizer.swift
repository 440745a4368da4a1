import GGUF
import HeapModule
import Foundation

/// GGUF token types (`tokenizer.ggml.token_type`).
public enum TokenType: Int32, Sendable {
    case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
}

/// Why a tokenizer cannot be built from a GGUF.
public struct TokenizerError: LocalizedError, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

/// A tokenizer read from GGUF metadata: the vocabulary, special-token handling and BOS/EOS, with
/// the algorithm chosen by `tokenizer.ggml.model` (`llama` → SentencePiece, `gpt2` → byte-level
/// BPE with the pre-tokenizer `tokenizer.ggml.pre` names).
///
/// Pipeline, as llama.cpp's `llama_vocab::tokenize` (src/llama-vocab.cpp): split the text on
/// special tokens (control, user-defined and unknown ones, longest first; control tokens only when
/// `parseSpecial`), then tokenize each plain fragment with the model's algorithm, and add BOS as
/// `tokenizer.ggml.add_bos_token` says.
public struct Tokenizer: Sendable {
    public let tokens: [[UInt8]]
    public let scores: [Float]
    public let types: [TokenType]
    public let bos: Int32?
    public let eos: Int32?
    public let addBOS: Bool
    public let addSpacePrefix: Bool
    /// The BPE merges (nil for SentencePiece).
    let bpe: MergeTable?
    let lookup: [[UInt8]: Int32]
    /// Special tokens, longest text first.
    let specials: [Int32]
    let byteTokens: [Int32]

    /// Reads the vocabulary of `file`.
    /// - Throws: `TokenizerError` for an unsupported `tokenizer.ggml.model` or a malformed vocabulary.
    public init(gguf file: GGUFFile) throws {
        let model = try file.string("tokenizer.ggml.model")
        guard model == "llama" || model == "gpt2" else {
            throw TokenizerError("\(file.path): tokenizer.ggml.model '\(model)' is not supported (llama = SentencePiece and gpt2 = byte-level BPE are)")
        }
        guard let list = file.metadata["tokenizer.ggml.tokens"]?.array else { throw GGUFError.missingKey(path: file.path, key: "tokenizer.ggml.tokens") }
        tokens = list.map { Array(($0.string ?? "").utf8) }
        scores = file.metadata["tokenizer.ggml.scores"]?.array?.map { Float($0.double ?? 0) } ?? Array(repeating: 0, count: list.count)
        types = file.metadata["tokenizer.ggml.token_type"]?.array?.map { $0.int.flatMap { Int32(exactly: $0) }.flatMap(TokenType.init(rawValue:)) ?? .normal }
            ?? Array(repeating: .normal, count: list.count)
        guard scores.count == tokens.count, types.count == tokens.count else {
            throw TokenizerError("\(file.path): tokenizer.ggml.scores / token_type do not match the \(tokens.count) tokens")
        }
        func special(_ key: String) throws -> Int32? {
            guard let id = file.metadata[key]?.int else { return nil }
            guard (0..<list.count).contains(id) else { throw TokenizerError("\(file.path): \(key) is \(id), outside the vocabulary of \(list.count) tokens") }
            return Int32(id)
        }
        bos = try special("tokenizer.ggml.bos_token_id")
        eos = try special("tokenizer.ggml.eos_token_id")
        var lookup: [[UInt8]: Int32] = [:]
        lookup.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() where lookup[t] == nil { lookup[t] = Int32(i) }
        self.lookup = lookup
        if model == "gpt2" {
            let name = file.metadata["tokenizer.ggml.pre"]?.string ?? "default"
            // llama.cpp's aliases for the same splitters.
            let aliases: [String: PreTokenizer] = ["gpt-2": .gpt2, "gpt2": .gpt2, "smollm": .smollm, "llama-bpe": .llama3, "llama3": .llama3,
                                                   "llama-v3": .llama3, "qwen2": .qwen2]
            guard let pre = aliases[name] else {
                throw TokenizerError("\(file.path): tokenizer.ggml.pre '\(name)' is not supported (known: \(aliases.keys.sorted().joined(separator: ", ")))")
            }
            bpe = try MergeTable(tokens: tokens, lookup: lookup, merges: try file.strings("tokenizer.ggml.merges"), pre: pre)
            addBOS = file.metadata["tokenizer.ggml.add_bos_token"]?.bool ?? (pre == .llama3)
            addSpacePrefix = false
        } else {
            bpe = nil
            addBOS = file.metadata["tokenizer.ggml.add_bos_token"]?.bool ?? true
            addSpacePrefix = file.metadata["tokenizer.ggml.add_space_prefix"]?.bool ?? true
        }
        let tokenList = tokens, typeList = types
        specials = (0..<Int32(tokenList.count))
            .filter { [.control, .userDefined, .unknown].contains(typeList[Int($0)]) && !tokenList[Int($0)].isEmpty }
            .sorted { tokenList[Int($0)].count > tokenList[Int($1)].count || (tokenList[Int($0)].count == tokenList[Int($1)].count && $0 < $1) }
        var bytes = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            let hex = String(b, radix: 16, uppercase: true)
            bytes[b] = lookup[Array("<0x\(hex.count == 1 ? "0" + hex : hex)>".utf8)] ?? -1
        }
        byteTokens = bytes
    }

    /// Token ids of `text`.
    /// - Parameters:
    ///   - addSpecial: add BOS if the model asks for it.
    ///   - parseSpecial: recognise control tokens written in the text (`<start_of_turn>`).
    public func encode(_ text: String, addSpecial: Bool = true, parseSpecial: Bool = true) -> [Int32] {
        var out: [Int32] = []
        if addSpecial, addBOS, let bos { out.append(bos) }
        for fragment in partition(Array(text.utf8), parseSpecial: parseSpecial) {
            switch fragment {
            case let .token(id): out.append(id)
            case let .text(bytes):
                if let bpe {
                    bpe.encode(bytes, into: &out) { lookup[[$0]] }
                } else {
                    sentencePiece(bytes, into: &out)
                }
            }
        }
        return out
    }

    enum Fragment: Equatable {
        case text([UInt8])
        case token(Int32)
    }

    /// Splits on special tokens, longest first (llama.cpp `tokenizer_st_partition`).
    func partition(_ text: [UInt8], parseSpecial: Bool) -> [Fragment] {
        var fragments: [Fragment] = [.text(text)]
        // Adjacent byte pairs present in the text: a special whose first two bytes never occur
        // together cannot occur, and is skipped without scanning (an exact shortcut).
        var pairs = [Bool](repeating: false, count: 65536)
        for i in 0..<max(0, text.count - 1) { pairs[Int(text[i]) << 8 | Int(text[i + 1])] = true }
        for id in specials {
            let type = types[Int(id)]
            if !parseSpecial, type == .control || type == .unknown { continue }
            let needle = tokens[Int(id)]
            if needle.count >= 2, !pairs[Int(needle[0]) << 8 | Int(needle[1])] { continue }
            var next: [Fragment] = []
            next.reserveCapacity(fragments.count)
            for fragment in fragments {
                guard case let .text(bytes) = fragment, bytes.count >= needle.count else {
                    next.append(fragment)
                    continue
                }
                var start = 0
                var i = 0
                let first = needle[0]
                while i + needle.count <= bytes.count {
                    if bytes[i] == first, bytes[i..<i + needle.count].elementsEqual(needle) {
                        if i > start { next.append(.text(Array(bytes[start..<i]))) }
                        next.append(.token(id))
                        i += needle.count
                        start = i
                    } else {
                        i += 1
                    }
                }
                if start < bytes.count { next.append(.text(Array(bytes[start...]))) }
            }
            fragments = next
        }
        return fragments
    }

    // MARK: SentencePiece (llama.cpp llm_tokenizer_spm)

    private struct Symbol {
        var start: Int
        var length: Int
        var prev: Int
        var next: Int
    }

    private struct Bigram: Comparable {
        var left: Int
        var right: Int
        var score: Float
        var size: Int
        // Higher score first; on a tie the leftmost pair.
        static func < (a: Bigram, b: Bigram) -> Bool { a.score < b.score || (a.score == b.score && a.left > b.left) }
    }

    /// Merges UTF-8 characters pairwise by the highest-scoring vocabulary entry until no pair is
    /// in the vocabulary; what is left and not a token falls back to `<0xXX>` byte tokens.
    func sentencePiece(_ raw: [UInt8], into out: inout [Int32]) {
        guard !raw.isEmpty else { return }
        var text: [UInt8] = []
        text.reserveCapacity(raw.count + 3)
        if addSpacePrefix { text += [0xE2, 0x96, 0x81] }
        for b in raw {
            if b == 0x20 { text += [0xE2, 0x96, 0x81] } else { text.append(b) } // ' ' → '▁'
        }
        var symbols: [Symbol] = []
        var offset = 0
        while offset < text.count {
            let n = min(utf8Width(text[offset]), text.count - offset)
            symbols.append(Symbol(start: offset, length: n, prev: symbols.count - 1, next: offset + n == text.count ? -1 : symbols.count + 1))
            offset += n
        }
        var queue = Heap<Bigram>()
        func tryAdd(_ left: Int, _ right: Int) {
            guard left >= 0, right >= 0 else { return }
            let l = symbols[left], r = symbols[right]
            let piece = Array(text[l.start..<l.start + l.length + r.length])
            guard let id = lookup[piece] else { return }
            queue.insert(Bigram(left: left, right: right, score: scores[Int(id)], size: piece.count))
        }
        for i in 1..<symbols.count { tryAdd(i - 1, i) }
        while let bigram = queue.popMax() {
            let left = symbols[bigram.left], right = symbols[bigram.right]
            if left.length == 0 || right.length == 0 || left.length + right.length != bigram.size { continue }
            symbols[bigram.left].length += right.length
            symbols[bigram.right].length = 0
            symbols[bigram.left].next = right.next
            if right.next >= 0 { symbols[right.next].prev = bigram.left }
            tryAdd(symbols[bigram.left].prev, bigram.left)
            tryAdd(bigram.left, symbols[bigram.left].next)
        }
        var i = 0
        while i != -1 {
            let s = symbols[i]
            let piece = Array(text[s.start..<s.start + s.length])
            if let id = lookup[piece] {
                out.append(id)
            } else {
                for b in piece { out.append(byteTokens[Int(b)]) }
            }
            i = s.next
        }
    }

    // MARK: Decoding

    /// The bytes token `id` stands for: '▁' becomes a space (SentencePiece), GPT-2's byte
    /// characters their bytes (BPE), `<0xXX>` its byte; control tokens are empty unless `special`.
    public func piece(_ id: Int32, special: Bool = false) -> [UInt8] {
        guard id >= 0, Int(id) < tokens.count else { return [] }
        let t = tokens[Int(id)]
        switch types[Int(id)] {
        case .control, .unknown, .unused:
            return special ? t : []
        case .byte:
            if t.count == 6, let b = UInt8(String(decoding: t[3..<5], as: UTF8.self), radix: 16) { return [b] }
            return t
        case .normal, .userDefined:
            if bpe != nil {
                guard types[Int(id)] == .normal else { return t }
                var out: [UInt8] = []
                for s in String(decoding: t, as: UTF8.self).unicodeScalars {
                    if let b = ByteAlphabet.decode[s.value] { out.append(b) } else { out += Array(String(s).utf8) }
                }
                return out
            }
            var out: [UInt8] = []
            var i = 0
            while i < t.count {
                if i + 2 < t.count, t[i] == 0xE2, t[i + 1] == 0x96, t[i + 2] == 0x81 {
                    out.append(0x20)
                    i += 3
                } else {
                    out.append(t[i])
                    i += 1
                }
            }
            return out
        }
    }

    /// Tokens that end a generation: EOS and the end-of-turn markers of the known chat formats
    /// present in the vocabulary (as llama.cpp's end-of-generation set).
    public var endOfGeneration: Set<Int32> {
        var out = Set([eos].compactMap { $0 })
        for marker in ["<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|end_of_text|>"] {
            if let id = lookup[Array(marker.utf8)], types[Int(id)] == .control || types[Int(id)] == .userDefined { out.insert(id) }
        }
        return out
    }

    /// The text of `ids` (invalid UTF-8 replaced).
    public func decode(_ ids: [Int32], special: Bool = false) -> String {
        String(decoding: ids.flatMap { piece($0, special: special) }, as: UTF8.self)
    }
}
