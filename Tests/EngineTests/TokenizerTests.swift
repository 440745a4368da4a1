import Testing
@testable import Engine

@Suite("byte-level BPE")
struct BytePairEncodingTests {
    private func words(_ pre: PreTokenizer, _ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        return pre.split(scalars).map { String(String.UnicodeScalarView(scalars[$0])) }
    }

    @Test("GPT-2's split: contractions, an optional leading space, whitespace runs keep their last space for the next word")
    func gpt2Split() {
        #expect(words(.gpt2, "I'll say it's 42 ok") == ["I", "'ll", " say", " it", "'s", " 42", " ok"])
        #expect(words(.gpt2, "a   b") == ["a", "  ", " b"])
        #expect(words(.gpt2, "end   ") == ["end", "   "])
        #expect(words(.gpt2, "x!? (y)") == ["x", "!?", " (", "y", ")"])
        #expect(words(.gpt2, "日本語 テキスト") == ["日本語", " テキスト"])
    }

    @Test("SmolLM's split puts every digit alone, so a space before a number stands apart")
    func smollmSplit() {
        #expect(words(.smollm, "in 2024, 7 cats") == ["in", " ", "2", "0", "2", "4", ",", " ", "7", " cats"])
        #expect(words(.smollm, "x½²") == ["x", "½", "²"])
    }

    @Test("Llama 3's split: numbers in threes, newlines kept together, case-insensitive contractions")
    func llama3Split() {
        #expect(words(.llama3, "1234567 IT'S\n\n  ok") == ["123", "456", "7", " IT", "'S", "\n\n", " ", " ok"])
        #expect(words(.qwen2, "12 ab") == ["1", "2", " ab"])
    }

    @Test("merges apply lowest rank first, leftmost on a tie; unknown bytes fall back to single-byte tokens")
    func merges() throws {
        // A tiny vocabulary in GPT-2's byte alphabet ('Ġ' is the space).
        let vocabulary = ["a", "b", "c", "Ġ", "ab", "abc", "Ġa", "bc", "x"].map { Array($0.utf8) }
        var lookup: [[UInt8]: Int32] = [:]
        for (i, t) in vocabulary.enumerated() { lookup[t] = Int32(i) }
        let table = try MergeTable(tokens: vocabulary, lookup: lookup, merges: ["a b", "ab c", "Ġ a", "b c"], pre: .gpt2)
        func encode(_ s: String) -> [String] {
            var out: [Int32] = []
            table.encode(Array(s.utf8), into: &out) { lookup[[$0]] }
            return out.map { String(decoding: vocabulary[Int($0)], as: UTF8.self) }
        }
        #expect(encode("abc") == ["abc"])
        // "Ġabc": (a,b) rank 0 beats (Ġ,a) rank 2; then (ab,c) rank 1; nothing merges Ġ with abc.
        #expect(encode("abc abc") == ["abc", "Ġ", "abc"])
        #expect(encode("bcb") == ["bc", "b"])
        // 'z' is not in the vocabulary and is not a single-byte token either: dropped, as llama.cpp does.
        #expect(encode("xz") == ["x"])
        #expect(throws: TokenizerError.self) { try MergeTable(tokens: vocabulary, lookup: lookup, merges: ["ab"], pre: .gpt2) }
    }

    @Test("GPT-2's byte alphabet is a bijection onto printable characters")
    func byteAlphabet() {
        let encoded = (0..<256).map { ByteAlphabet.encode[$0] }
        #expect(Set(encoded).count == 256)
        #expect(String(decoding: ByteAlphabet.encode[0x20], as: UTF8.self) == "Ġ")
        #expect(String(decoding: ByteAlphabet.encode[0x0A], as: UTF8.self) == "Ċ")
        for b in 0..<256 {
            let scalar = String(decoding: encoded[b], as: UTF8.self).unicodeScalars.first!
            #expect(ByteAlphabet.decode[scalar.value] == UInt8(b))
        }
    }
}

@Suite("streaming detokenisation")
struct UTF8StreamTests {
    @Test("a character split across pieces is held back until its last byte, then released whole")
    func splitCharacter() {
        var s = UTF8Stream()
        let euro = Array("€".utf8) // E2 82 AC
        #expect(s.append(Array("a".utf8) + euro[0..<1]) == Array("a".utf8))
        #expect(s.append(Array(euro[1..<2])) == [])
        #expect(s.append(Array(euro[2...]) + Array("b".utf8)) == euro + Array("b".utf8))
        let emoji = Array("🙂".utf8)
        #expect(s.append(Array(emoji[0..<3])) == [])
        #expect(s.finish() == Array(emoji[0..<3]))
        #expect(s.finish() == [])
    }

    @Test("seeded: any split of mixed text into pieces streams back to the same bytes, each chunk valid UTF-8")
    func anySplit() {
        let text = Array("Café — 日本語 🙂 plain ascii ½".utf8)
        var state: UInt64 = 0x9E37_79B9
        for _ in 0..<200 {
            var s = UTF8Stream(), out: [UInt8] = [], i = 0
            while i < text.count {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let n = min(text.count - i, 1 + Int(state >> 61))
                let chunk = s.append(Array(text[i..<i + n]))
                #expect(String(validating: chunk, as: UTF8.self) != nil)
                out += chunk
                i += n
            }
            out += s.finish()
            #expect(out == text)
        }
    }
}
