import Foundation

/// How reports spell numbers: one formatter per kind of figure, shared by every report.
public enum Format {
    /// Bytes in binary units with two decimals: "812 B", "3.41 MiB".
    public static func bytes(_ n: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(n) B" : String(format: "%.2f %@", value, units[unit])
    }

    /// A memory size in GiB with three significant figures ("15.0 GiB", "2.34 GiB"), in MiB below 0.1 GiB.
    public static func gib(_ bytes: Double) -> String {
        let v = bytes / 1_073_741_824
        return v >= 10 ? String(format: "%.1f GiB", v) : v >= 0.1 ? String(format: "%.2f GiB", v) : String(format: "%.0f MiB", bytes / 1_048_576)
    }

    /// A fixed number of decimals.
    public static func fixed(_ v: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", v) }

    /// A share as a percentage: whole percent from 10 %, two significant figures below ("5%", "0.39%").
    public static func percent(_ f: Double) -> String { f >= 0.1 ? String(format: "%.0f%%", f * 100) : String(format: "%.2g%%", f * 100) }

    /// A rate or count with three significant figures at most ("1234", "56.7", "8.90").
    public static func figure(_ x: Double) -> String {
        x >= 100 ? String(format: "%.0f", x) : x >= 10 ? String(format: "%.1f", x) : String(format: "%.2f", x)
    }
}
