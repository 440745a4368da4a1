import Foundation

/// One-line messages for errors that come from Foundation's decoders, naming the key where the
/// input went wrong (Foundation's own text, "The data isn't in the correct format", names nothing).
public enum Diagnostics {
    /// "key rows[2].budget: expected Int", "key model: missing", or the underlying error's text
    /// (`underlying` describes errors a decoder wraps, e.g. a YAML scanner's).
    public static func describe(decoding error: DecodingError, underlying: (any Error) -> String? = { _ in nil }) -> String {
        func path(_ p: [any CodingKey]) -> String {
            p.reduce("") { at, key in key.intValue.map { at + "[\($0)]" } ?? (at.isEmpty ? key.stringValue : at + "." + key.stringValue) }
        }
        func where_(_ p: [any CodingKey]) -> String { p.isEmpty ? "the top level" : "key " + path(p) }
        switch error {
        case let .keyNotFound(key, context):
            return "key \(path(context.codingPath + [key])): missing"
        case let .typeMismatch(type, context), let .valueNotFound(type, context):
            return "\(where_(context.codingPath)): expected \(kind(type))"
        case let .dataCorrupted(context):
            if let inner = context.underlyingError, let text = underlying(inner) { return text }
            let at = path(context.codingPath)
            let text = context.underlyingError.map { ($0 as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? context.debugDescription } ?? context.debugDescription
            return at.isEmpty ? text : "key \(at): \(text)"
        @unknown default:
            return "\(error)"
        }
    }

    /// How a message names the type a decoder expected.
    static func kind(_ type: Any.Type) -> String {
        let name = String(describing: type)
        if name.hasPrefix("Dictionary") { return "an object" }
        if name.hasPrefix("Array") { return "a list" }
        switch name {
        case "String": return "a string"
        case "Bool": return "true or false"
        case "Double", "Float": return "a number"
        case "Int", "Int32", "Int64", "UInt64", "UInt32", "UInt16", "UInt8": return "an integer"
        case "Scalar": return "a single value" // Yams, where a list or a mapping stands instead
        default: return name
        }
    }

    /// `describe` for a decoding error, else the error's own description.
    public static func describe(_ error: any Error) -> String {
        if let e = error as? DecodingError { return describe(decoding: e) }
        return (error as? LocalizedError)?.errorDescription ?? "\(error)"
    }
}
