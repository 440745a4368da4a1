import Foundation

/// Why a `.ckvt` file cannot be read (further).
///
/// Each case renders as one line naming the file, the byte offset and what was expected,
/// so the CLI can print it as is and exit non-zero.
public enum TraceError: LocalizedError, CustomStringConvertible, Equatable, Sendable {
    /// The file cannot be opened or read at all.
    case unreadable(path: String, reason: String)
    /// The file does not start with the `.ckvt` magic.
    case notATrace(path: String, found: String)
    /// The file is a trace of a major version this build does not read.
    case unsupportedVersion(path: String, major: UInt16, minor: UInt16, supported: UInt16)
    /// The file ends before a structure that should be there; everything before `offset` that
    /// forms complete frames is readable.
    case truncated(path: String, offset: UInt64, expected: String)
    /// Bytes at `offset` fail a check (checksum, magic, length, decoding).
    case corrupt(path: String, offset: UInt64, reason: String)
    /// A record or seek target that does not exist.
    case recordOutOfRange(path: String, index: UInt64, count: UInt64)
    /// The writer was used wrongly or the disk refused a write.
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason):
            return "\(path): cannot read: \(reason)"
        case let .notATrace(path, found):
            return "\(path): not a .ckvt trace: expected the magic 89 43 4B 56 54 0D 0A 1A at offset 0, found \(found)"
        case let .unsupportedVersion(path, major, minor, supported):
            return "\(path): trace format version \(major).\(minor) at offset 8 is not supported: this build reads version \(supported).x"
        case let .truncated(path, offset, expected):
            return "\(path): truncated at offset \(offset): expected \(expected)"
        case let .corrupt(path, offset, reason):
            return "\(path): corrupt at offset \(offset): \(reason)"
        case let .recordOutOfRange(path, index, count):
            return "\(path): record \(index) does not exist (the trace holds \(count) records)"
        case let .writeFailed(path, reason):
            return "\(path): write failed: \(reason)"
        }
    }
}

extension TraceError {
    public var errorDescription: String? { description }
}
