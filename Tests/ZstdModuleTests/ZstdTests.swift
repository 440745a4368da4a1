import Testing
@testable import ZstdModule

/// Compressible but not trivial bytes: a seeded walk over a small alphabet.
private func sample(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return UInt8(truncatingIfNeeded: (state >> 59) + 97)
    }
}

@Suite("zstd binding")
struct ZstdTests {
    @Test("one-shot round trip", arguments: [0, 1, 17, 4096, 1 << 20])
    func roundTrip(count: Int) throws {
        let input = sample(count, seed: UInt64(count))
        let packed = try Zstd.compress(input)
        #expect(try Zstd.decompress(packed) == input)
        #expect(try ZstdDecompressor().decompress(packed, size: count) == input)
    }

    @Test("streaming round trip in uneven chunks, both directions")
    func streaming() throws {
        let input = sample(700_000, seed: 7)
        let compressor = try ZstdStreamCompressor(level: 5)
        var packed: [UInt8] = []
        var position = 0
        var chunk = 1
        try input.withUnsafeBytes { raw in
            while position < raw.count {
                let n = min(chunk, raw.count - position)
                try compressor.compress(UnsafeRawBufferPointer(rebasing: raw[position..<position + n])) { packed += $0 }
                position += n
                chunk = chunk * 3 + 1
            }
        }
        try compressor.finish { packed += $0 }
        // A one-shot decoder reads the streamed frame …
        #expect(try Zstd.decompress(packed) == input)
        // … and a streaming decoder fed 1,000-byte pieces rebuilds it too.
        let decompressor = try ZstdStreamDecompressor()
        var out: [UInt8] = []
        try packed.withUnsafeBytes { raw in
            for start in stride(from: 0, to: raw.count, by: 1000) {
                try decompressor.decompress(UnsafeRawBufferPointer(rebasing: raw[start..<min(start + 1000, raw.count)])) { out += $0 }
            }
        }
        try decompressor.finish()
        #expect(out == input)
    }

    @Test("higher levels compress at least as well on compressible data")
    func levels() throws {
        // Text-like: seeded choices among a few words, which long matches reward.
        let words = ["the ", "grass ", "is ", "green ", "and ", "sky ", "blue ", "while ", "rivers ", "run "]
        let input = Array(sample(40_000, seed: 3).map { words[Int($0) % words.count] }.joined().utf8)
        let fast = try Zstd.compress(input, level: 1).count
        let strong = try Zstd.compress(input, level: 19).count
        #expect(strong <= fast)
        #expect(Zstd.levels.contains(Zstd.defaultLevel))
    }

    @Test("a level out of range is an error, not a trap")
    func badLevel() {
        #expect(throws: ZstdError.self) { try ZstdCompressor(level: Zstd.levels.upperBound + 1) }
    }

    @Test("corrupt input renders libzstd's own error name")
    func corrupt() throws {
        var packed = try Zstd.compress(sample(10_000, seed: 1))
        packed[packed.count / 2] ^= 0xFF
        packed[packed.count - 2] ^= 0xFF // the content checksum
        do {
            _ = try Zstd.decompress(packed)
            Issue.record("corrupt frame decompressed")
        } catch let error as ZstdError {
            #expect(error.code != 0)
            #expect(!error.message.isEmpty && error.message != "No error detected")
            #expect(error.description.hasPrefix("zstd decompress"))
        }
        #expect(throws: ZstdError.self) { try Zstd.decompress(Array("not zstd".utf8)) }
    }

    @Test("a stream cut inside a frame is reported at finish")
    func truncatedStream() throws {
        let packed = try Zstd.compress(sample(50_000, seed: 2))
        let decompressor = try ZstdStreamDecompressor()
        try packed.withUnsafeBytes { raw in
            try decompressor.decompress(UnsafeRawBufferPointer(rebasing: raw[0..<raw.count - 10])) { _ in }
        }
        #expect(throws: ZstdError.self) { try decompressor.finish() }
    }

    @Test("decompression refuses output above the limit")
    func limit() throws {
        let packed = try Zstd.compress([UInt8](repeating: 0, count: 100_000))
        #expect(throws: ZstdError.self) { try Zstd.decompress(packed, maxSize: 1000) }
    }
}
