import Foundation

extension String {
    /// The text cut to `limit` characters with an ellipsis, for error messages quoting remote input.
    func clipped(_ limit: Int = 300) -> String {
        let flat = self.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
        if flat.count <= limit { return flat }
        return String(flat.prefix(limit)) + "…"
    }
}
