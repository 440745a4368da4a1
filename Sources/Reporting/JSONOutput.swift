import Foundation

/// The JSON every command and report prints or writes: pretty, keys sorted, slashes unescaped,
/// so the same value always gives the same bytes. (Trace files have their own compact canonical
/// JSON, owned by TraceFormat.)
public enum JSONOutput {
    public static func data(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }

    public static func string(_ value: some Encodable) throws -> String {
        String(decoding: try data(value), as: UTF8.self)
    }
}
