/// Comparison of secrets (password hashes, MACs, bearer tokens, emulated passwords) whose
/// running time does not depend on where the inputs differ, so timing does not reveal how
/// much of a guess was right. It depends on the longer input's length only.
public enum ConstantTime {
    public static func equals(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
        let x = Array(a), y = Array(b)
        // Lengths differ: still walk the longer input, and remember the difference.
        var difference: UInt8 = x.count == y.count ? 0 : 1
        for index in 0..<max(x.count, y.count) {
            let p = index < x.count ? x[index] : 0
            let q = index < y.count ? y[index] : 0
            difference |= p ^ q
        }
        return difference == 0
    }

    /// Compares the UTF-8 bytes (no Unicode normalisation: a secret is its bytes).
    public static func equals(_ a: String, _ b: String) -> Bool {
        equals(Array(a.utf8), Array(b.utf8))
    }
}
