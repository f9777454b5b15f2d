import Logging
import TDS

/// A log handler that makes every line one line: it escapes control characters in the
/// message and in every metadata value (and quotes values that would otherwise read as
/// several `key=value` pairs) before the wrapped handler prints them. Client-supplied text
/// (user names, application names, SQL) reaches the log through metadata and messages, and
/// swift-log's `StreamLogHandler` prints both as they are: a user name with a newline could
/// forge a whole line. Metadata, the metadata provider and a logged error are kept here,
/// not in the wrapped handler, so nothing reaches it unescaped.
public struct EscapingLogHandler: LogHandler {
    private var wrapped: any LogHandler
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    public init(wrapping handler: any LogHandler, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        var handler = handler
        self.metadata = handler.metadata
        handler.metadata = [:]
        handler.metadataProvider = nil
        self.wrapped = handler
        self.metadataProvider = metadataProvider
    }

    public var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty {
            merged.merge(provided) { _, new in new }
        }
        if let explicit = event.metadata { merged.merge(explicit) { _, new in new } }
        if let error = event.error {
            merged["error.message"] = "\(error)"
            merged["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        var safe = event
        safe.error = nil
        safe.message = Logger.Message(stringLiteral: ClientText.escapingControls(event.message.description))
        var escaped: Logger.Metadata = [:]
        for (key, value) in merged {
            escaped[Self.metadataKey(key)] = .string(Self.metadataValue(value.description))
        }
        safe.metadata = escaped
        wrapped.log(event: safe)
    }

    static func metadataKey(_ key: String) -> String {
        ClientText.escapingControls(key)
    }

    /// `key=value` stays one pair: values with a space, `=`, a quote, a backslash or a
    /// disruptive character (and empty ones) are quoted, with quotes and backslashes escaped.
    static func metadataValue(_ value: String) -> String {
        let plain = !value.isEmpty && !value.unicodeScalars.contains { s in
            s == " " || s == "=" || s == "\"" || s == "\\" || ClientText.isDisruptive(s)
        }
        if plain { return value }
        return "\"" + ClientText.escapingControls(value, escapeBackslash: true, escapeQuote: true) + "\""
    }
}

extension EscapingLogHandler {
    /// What `LoggingSystem.bootstrap` uses: escaped lines on standard error.
    public static func standardError(label: String) -> EscapingLogHandler {
        EscapingLogHandler(wrapping: StreamLogHandler.standardError(label: label, metadataProvider: nil))
    }
}
