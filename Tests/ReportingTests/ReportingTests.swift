import Foundation
import Reporting
import Testing

@Suite("Reporting: one table in every style")
struct ReportingTests {
    let table = Table(columns: ["policy", "budget", "note"], rows: [["snapkv", "64", "a, \"quoted\" note"], ["h2o", "1024", "x|y"]], rightAligned: [1])

    @Test("text: columns two spaces apart, numbers right-aligned, a rule under the header, no trailing spaces")
    func text() {
        #expect(table.text == """
        policy  budget  note
        ──────  ──────  ────────────────
        snapkv      64  a, "quoted" note
        h2o       1024  x|y
        """)
        let ragged = Table(rows: [["a", "1", ""], ["bbb", "", ""]])
        #expect(ragged.text == "a    1\nbbb")
    }

    @Test("a key-value table: aligned labels, no header, a <th> per row in HTML")
    func pairs() {
        let kv = Table(pairs: [("GPU", "L4"), ("KV capacity", "3.2 GiB")])
        #expect(kv.text == "GPU          L4\nKV capacity  3.2 GiB")
        #expect(kv.html == "<table><tr><th>GPU</th><td style=\"text-align:left\">L4</td></tr><tr><th>KV capacity</th><td style=\"text-align:left\">3.2 GiB</td></tr></table>")
    }

    @Test("Markdown: escaped pipes, ---: for right-aligned columns")
    func markdown() {
        #expect(table.markdown == """
        | policy | budget | note |
        | --- | ---: | --- |
        | snapkv | 64 | a, "quoted" note |
        | h2o | 1024 | x\\|y |
        """)
    }

    @Test("CSV: RFC 4180 quoting of commas, quotes and line breaks; one line per row")
    func csv() {
        #expect(table.csv == "policy,budget,note\nsnapkv,64,\"a, \"\"quoted\"\" note\"\nh2o,1024,x|y\n")
        #expect(Table.csvField("two\nlines") == "\"two\nlines\"")
        #expect(Table.csvField("plain") == "plain")
    }

    @Test("HTML: header cells and escaped data cells")
    func html() {
        let t = Table(columns: ["a<b"], rows: [["\"&\""]])
        #expect(t.html == "<table><tr><th>a&lt;b</th></tr><tr><td>&quot;&amp;&quot;</td></tr></table>")
    }

    @Test("number formats: binary bytes, GiB by magnitude, percent and figures")
    func formats() {
        #expect(Format.bytes(812) == "812 B")
        #expect(Format.bytes(3_575_644) == "3.41 MiB")
        #expect(Format.gib(15 * 1_073_741_824) == "15.0 GiB")
        #expect(Format.gib(2.345 * 1_073_741_824) == "2.35 GiB")
        #expect(Format.gib(50 * 1_048_576) == "50 MiB")
        #expect(Format.percent(0.25) == "25%")
        #expect(Format.percent(0.0039) == "0.39%")
        #expect(Format.figure(1234.4) == "1234")
        #expect(Format.figure(56.71) == "56.7")
        #expect(Format.figure(8.9) == "8.90")
    }

    @Test("output JSON: sorted keys, unescaped slashes, the same bytes every time")
    func json() throws {
        struct V: Encodable { var z = 1; var a = "x/y" }
        let s = try JSONOutput.string(V())
        #expect(s == "{\n  \"a\" : \"x/y\",\n  \"z\" : 1\n}")
        #expect(try JSONOutput.string(V()) == s)
    }
}
