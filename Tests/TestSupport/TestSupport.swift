import Foundation

/// Helpers shared by the test targets.
public enum TestSupport {
    /// The repository root (Models/, Scenarios/, Traces/ live there).
    public static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A new empty directory under the system's temporary directory.
    public static func scratchDirectory(_ label: String = "ckv-tests") throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(getpid())-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Writes `bytes` to a new file named `name` in a new scratch directory and returns its path.
    public static func temporaryFile(_ name: String, _ bytes: some DataProtocol) throws -> String {
        let path = try scratchDirectory().appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Writes `text` as UTF-8 to a new file named `name` and returns its path.
    public static func temporaryFile(_ name: String, _ text: String) throws -> String {
        try temporaryFile(name, Data(text.utf8))
    }
}
