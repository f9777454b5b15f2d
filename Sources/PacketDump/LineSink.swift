/// Lines of one message's decode, capped so a reply with millions of tokens stays bounded.
struct LineSink: Sendable {
    var lines: [String] = []
    var dropped = 0
    var limit: Int

    init(limit: Int) { self.limit = limit }

    mutating func append(_ line: String) {
        if lines.count < limit { lines.append(line) } else { dropped += 1 }
    }

    mutating func append(contentsOf more: [String]) {
        for l in more { append(l) }
    }

    var all: [String] {
        dropped == 0 ? lines : lines + ["… \(DumpText.grouped(dropped)) more lines not shown"]
    }
}
