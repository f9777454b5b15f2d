import NIOCore

/// What one ``HTTPServer`` lets a client hold, so that the server (the proxy's admin API may
/// listen off loopback) stays bounded whatever a client sends or does not send.
///
/// Per connection the server keeps at most one request: its head (`maxHeaderBytes`) and
/// body (`maxBodyBytes`), plus one socket read. A pipelined request is not read until the
/// previous response is written (NIO's pipelining handler stops reading meanwhile).
public struct HTTPServerLimits: Sendable, Hashable {
    /// Largest request body; a larger one gets 413 and the connection is closed.
    public var maxBodyBytes: Int
    /// Largest request line plus header names and values; beyond it 431 and close.
    public var maxHeaderBytes: Int
    /// Most header fields in one request; beyond it 431 and close.
    public var maxHeaderCount: Int
    /// Time from accepting a connection, or from the first byte of a later request on a
    /// kept-alive one, to the end of that request's headers. A client whose headers never end
    /// (a slowloris trickling bytes too) gets 408 and is closed when it runs out.
    public var headerTimeout: TimeAmount
    /// Time from the end of the headers to the end of the body (408 and close after it).
    public var bodyTimeout: TimeAmount
    /// How long a kept-alive connection may wait for its next request before it is closed.
    /// Longer than AsyncHTTPClient's 60 s pool idle time (as nginx's 75 s is), so a pooling
    /// client closes first and never sends on a connection the server is closing.
    public var idleTimeout: TimeAmount
    /// Open connections at most; one more is answered 503 and closed (before TLS: closed).
    public var maxConnections: Int

    public init(
        maxBodyBytes: Int = 1 << 20,
        maxHeaderBytes: Int = 16 << 10,
        maxHeaderCount: Int = 100,
        headerTimeout: TimeAmount = .seconds(10),
        bodyTimeout: TimeAmount = .seconds(30),
        idleTimeout: TimeAmount = .seconds(75),
        maxConnections: Int = 64
    ) {
        self.maxBodyBytes = max(0, maxBodyBytes)
        self.maxHeaderBytes = max(64, maxHeaderBytes)
        self.maxHeaderCount = max(1, maxHeaderCount)
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = max(1, maxConnections)
    }
}
