import Foundation

/// A table of text cells, rendered in every style the reports use: aligned terminal text,
/// Markdown, CSV (RFC 4180) and HTML. It is the one table renderer of the project: the planner,
/// replay, validation and every command build a `Table` and pick a style.
///
/// A table without `columns` is a key-value table: aligned `label  value` lines in text, a
/// `<th>` per row in HTML.
public struct Table: Sendable, Equatable {
    /// The header; empty for a key-value table.
    public var columns: [String]
    public var rows: [[String]]
    /// Columns whose cells are right-aligned (numbers), in text and Markdown.
    public var rightAligned: Set<Int>

    public init(columns: [String] = [], rows: [[String]] = [], rightAligned: Set<Int> = []) {
        self.columns = columns
        self.rows = rows
        self.rightAligned = rightAligned
    }

    /// A key-value table: one `label  value` line per pair.
    public init(pairs: [(String, String)]) {
        self.init(rows: pairs.map { [$0.0, $0.1] })
    }

    public mutating func append(_ row: [String]) { rows.append(row) }

    private var all: [[String]] { columns.isEmpty ? rows : [columns] + rows }

    /// Aligned columns two spaces apart, a rule of `─` under the header; no trailing spaces.
    public var text: String {
        let lines = all
        let count = lines.map(\.count).max() ?? 0
        let widths = (0..<count).map { c in lines.map { c < $0.count ? $0[c].count : 0 }.max() ?? 0 }
        var out = lines.map { row in
            var line = row.enumerated().map { c, cell in
                if rightAligned.contains(c) { return String(repeating: " ", count: widths[c] - cell.count) + cell }
                return c == row.count - 1 ? cell : cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
            while line.last == " " { line.removeLast() }
            return line
        }
        if !columns.isEmpty { out.insert(widths.map { String(repeating: "─", count: $0) }.joined(separator: "  "), at: 1) }
        return out.joined(separator: "\n")
    }

    /// A Markdown (GFM) table; `|` in a cell is escaped, right-aligned columns get `---:`.
    public var markdown: String {
        func line(_ cells: [String]) -> String {
            "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |"
        }
        let header = columns.isEmpty ? ["", ""] : columns
        let rule = "|" + header.indices.map { rightAligned.contains($0) ? " ---: |" : " --- |" }.joined()
        return ([line(header), rule] + rows.map(line)).joined(separator: "\n")
    }

    /// CSV: the header (if any) and one line per row, each ending in a newline.
    public var csv: String {
        all.map { $0.map(Self.csvField).joined(separator: ",") + "\n" }.joined()
    }

    /// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
    public static func csvField(_ s: String) -> String {
        s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    /// An HTML `<table>`: a header row of `<th>`, then `<td>` cells; in a key-value table each
    /// row's label is a `<th>` and its value a left-aligned `<td>`. Cells are escaped.
    public var html: String {
        var out = "<table>"
        if columns.isEmpty {
            for row in rows {
                out += "<tr>" + row.enumerated().map { c, cell in
                    c == 0 ? "<th>\(HTML.escape(cell))</th>" : "<td style=\"text-align:left\">\(HTML.escape(cell))</td>"
                }.joined() + "</tr>"
            }
        } else {
            out += "<tr>" + columns.map { "<th>\(HTML.escape($0))</th>" }.joined() + "</tr>"
            out += rows.map { "<tr>" + $0.map { "<td>\(HTML.escape($0))</td>" }.joined() + "</tr>" }.joined()
        }
        return out + "</table>"
    }
}

public enum HTML {
    /// Text safe inside an element or a double-quoted attribute.
    public static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }
}
