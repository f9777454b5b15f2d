/// A login tdsgate will not complete, as the TDS error the client receives. Messages say
/// what was refused and why, never which passwords or tokens exist.
struct LoginRefusal: Error, Equatable, CustomStringConvertible {
    var number: Int32 = 18456
    var severity: UInt8 = 14
    var state: UInt8 = 1
    var message: String
    /// Counts against the client address in the throttle.
    var countsAsFailure = false

    var description: String { "error \(number): \(message)" }
}
