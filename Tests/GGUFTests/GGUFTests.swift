import Foundation
import Testing
import TestSupport
@testable import GGUF
import Hardware

/// Builds GGUF v3 bytes: metadata of every type and a few tensor infos.
struct GGUFBuilder {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }

    static func sample(alignment: UInt32 = 32) -> [UInt8] {
        var b = GGUFBuilder()
        b.bytes += Array("GGUF".utf8)
        b.u32(3)
        b.u64(2) // tensors
        b.u64(15) // metadata
        func key(_ k: String, _ type: UInt32) { b.string(k); b.u32(type) }
        key("general.architecture", 8); b.string("llama")
        key("general.alignment", 4); b.u32(alignment)
        key("llama.block_count", 4); b.u32(2)
        key("llama.embedding_length", 4); b.u32(64)
        key("llama.attention.head_count", 4); b.u32(4)
        key("llama.attention.head_count_kv", 4); b.u32(2)
        key("llama.feed_forward_length", 4); b.u32(128)
        key("llama.context_length", 4); b.u32(2048)
        key("t.u8", 0); b.u8(200)
        key("t.i8", 1); b.u8(0xFF)
        key("t.f32", 6); b.u32(Float(1.5).bitPattern)
        key("t.bool", 7); b.u8(1)
        key("t.i64", 11); b.u64(UInt64(bitPattern: -5))
        key("t.f64", 12); b.u64(Double(-2.25).bitPattern)
        key("tokenizer.ggml.tokens", 9); b.u32(8); b.u64(3); b.string("<s>"); b.string("a"); b.string("b")
        b.string("token_embd.weight"); b.u32(2); b.u64(64); b.u64(3); b.u32(0); b.u64(0)
        b.string("blk.0.attn_q.weight"); b.u32(2); b.u64(64); b.u64(64); b.u32(8); b.u64(768)
        while b.bytes.count % Int(alignment) != 0 { b.u8(0) }
        b.bytes += [UInt8](repeating: 7, count: 768 + 64 * 64 / 32 * 34)
        return b.bytes
    }
}

private func write(_ bytes: [UInt8]) throws -> String { try TestSupport.temporaryFile("model.gguf", bytes) }

let repositoryRoot = TestSupport.repositoryRoot

@Suite("GGUF reader")
struct GGUFTests {
    @Test("metadata of every type, tensor infos and the data offset")
    func parse() throws {
        let path = try write(GGUFBuilder.sample())
        let f = try GGUFFile(path: path)
        #expect(f.version == 3)
        #expect(f.architecture == "llama")
        #expect(try f.int("llama.block_count") == 2)
        #expect(f.metadata["t.u8"] == .uint8(200))
        #expect(f.metadata["t.i8"] == .int8(-1))
        #expect(try f.double("t.f32") == 1.5)
        #expect(f.metadata["t.bool"]?.bool == true)
        #expect(try f.int("t.i64") == -5)
        #expect(try f.double("t.f64") == -2.25)
        #expect(try f.strings("tokenizer.ggml.tokens") == ["<s>", "a", "b"])
        #expect(f.keys.first == "general.architecture")
        #expect(f.tensors.count == 2)
        let q = try #require(f.tensor(named: "blk.0.attn_q.weight"))
        #expect(q.dimensions == [64, 64] && q.type == 8)
        #expect(f.dataOffset % 32 == 0)
        #expect(q.fileOffset == f.dataOffset + 768)
        #expect(throws: GGUFError.missingKey(path: path, key: "llama.rope.freq_base")) { try f.double("llama.rope.freq_base") }
        #expect(throws: GGUFError.wrongType(path: path, key: "general.architecture", expected: "an integer", found: "string")) {
            try f.int("general.architecture")
        }
    }

    @Test("cut anywhere in the header: truncated at a named offset, never a crash")
    func truncation() throws {
        let bytes = GGUFBuilder.sample()
        let headerEnd = try GGUFFile(path: try write(bytes)).dataOffset
        for cut in stride(from: 4, to: headerEnd - 20, by: 7) {
            let path = try write(Array(bytes[0..<cut]))
            do {
                _ = try GGUFFile(path: path)
                Issue.record("cut at \(cut) parsed")
            } catch let error as GGUFError {
                guard case .truncated = error else { Issue.record("cut at \(cut): \(error)"); continue }
                #expect(error.description.hasPrefix(path))
            }
        }
    }

    @Test("not a GGUF, a future version, a wild length: one clear error each")
    func badFiles() throws {
        let text = try write(Array("hello world, not a model".utf8))
        #expect(throws: GGUFError.notGGUF(path: text)) { try GGUFFile(path: text) }
        var v9 = GGUFBuilder.sample()
        v9[4] = 9
        let future = try write(v9)
        #expect(throws: GGUFError.unsupportedVersion(path: future, version: 9)) { try GGUFFile(path: future) }
        var wild = GGUFBuilder.sample()
        for i in 24..<32 { wild[i] = 0xFF } // the first key's length
        #expect((try? GGUFFile(path: try write(wild))) == nil)
        #expect(throws: GGUFError.self) { try GGUFFile(path: "/nonexistent/model.gguf") }
    }

    @Test("the reference models' GGUF metadata", arguments: [
        ("gemma-3-270m-q4_k_m.gguf", "gemma3", 18, 640, 262_144),
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "llama", 30, 576, 49_152),
    ])
    func referenceModels(file: String, architecture: String, layers: Int, hidden: Int, vocab: Int) throws {
        let path = repositoryRoot.appendingPathComponent("Models/\(file)").path
        try #require(FileManager.default.fileExists(atPath: path), "run scripts/setup.sh to install \(file)")
        let f = try GGUFFile(path: path)
        #expect(f.architecture == architecture)
        #expect(try f.int("\(architecture).block_count") == layers)
        #expect(try f.int("\(architecture).embedding_length") == hidden)
        #expect(try f.strings("tokenizer.ggml.tokens").count == vocab)
        #expect(f.tensors.allSatisfy { $0.fileOffset + 1 <= f.fileSize })
    }
}

/// Seeded damaged GGUF headers (issue #21): each reads or is refused in one line naming the file,
/// by the reader and by the catalogue's importer; none traps.
@Suite("fuzzed GGUF headers")
struct GGUFFuzzTests {
    @Test("1,500 copies of a small GGUF with a nasty 4- or 8-byte value written at a seeded place in its header")
    func fuzz() throws {
        let sample = GGUFBuilder.sample()
        var state: UInt64 = 77
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let nasty: [UInt64] = [0, 1, 3, 0xFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1 << 40, 0x7FFF_FFFF_FFFF_FFFF, .max]
        var read = 0, refused = 0
        let headerEnd = sample.count - (768 + 64 * 64 / 32 * 34)
        for i in 0..<1500 {
            var bytes = sample
            let at = 8 + Int(next() % UInt64(headerEnd - 16))
            let value = nasty[Int(next() % UInt64(nasty.count))], width = next() % 2 == 0 ? 4 : 8
            for k in 0..<width where at + k < bytes.count { bytes[at + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
            let path = try TestSupport.temporaryFile("fuzz-\(i).gguf", bytes)
            do {
                _ = try GGUFFile(path: path)
                _ = try ModelSpec.fromGGUF(path: path)
                read += 1
            } catch let e as CustomStringConvertible & Error {
                #expect(!e.description.contains("\n") && e.description.contains("fuzz-\(i).gguf"), "\(at) ← \(value): \(e.description)")
                refused += 1
            }
        }
        #expect(read > 20 && refused > 200, "read \(read), refused \(refused)")
    }

    @Test("a key whose damaged length swallows kilobytes of newlines and tokens is shown quoted, escaped and cut (found by scripts/fuzz.sh gguf)")
    func longKey() throws {
        var b = GGUFBuilder()
        b.bytes += Array("GGUF".utf8)
        b.u32(3); b.u64(0); b.u64(1)
        b.string("general.architecture\n" + String(repeating: "<|im_end|>\n\"x\"\t", count: 400))
        b.u32(871)
        let path = try TestSupport.temporaryFile("long-key.gguf", b.bytes)
        let text = "\(try #require(throws: GGUFError.self) { try GGUFFile(path: path) })"
        #expect(!text.contains("\n") && text.count < 300, "\(text)")
        #expect(text.contains("unknown value type 871 for \"general.architecture\\n<|im_end|>"), "\(text)")
        #expect(text.contains("…\" (6021 bytes)"), "\(text)")
    }
}
