/// Generated tokens' bytes released as text only at character boundaries: a token may end in
/// the middle of a UTF-8 sequence (byte-fallback tokens, split emoji), and writing that half
/// would print a replacement character.
public struct UTF8Stream: Sendable {
    private var pending: [UInt8] = []

    public init() {}

    /// Adds `bytes` and returns everything up to the last complete character.
    public mutating func append(_ bytes: [UInt8]) -> [UInt8] {
        pending += bytes
        var cut = pending.count
        // Walk back over continuation bytes (at most three) to the lead byte of the last sequence.
        var i = pending.count - 1, back = 0
        while i >= 0, back < 4, pending[i] & 0xC0 == 0x80 { i -= 1; back += 1 }
        if i >= 0, pending[i] >= 0xC0 {
            let need = pending[i] >= 0xF0 ? 4 : pending[i] >= 0xE0 ? 3 : 2
            if pending.count - i < need { cut = i }
        }
        defer { pending.removeFirst(cut) }
        return Array(pending[0..<cut])
    }

    /// The bytes still held back (an incomplete sequence at the very end), emptying the stream.
    public mutating func finish() -> [UInt8] {
        defer { pending.removeAll() }
        return pending
    }
}
