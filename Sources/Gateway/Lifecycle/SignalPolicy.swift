/// What a process signal means to tdsgate, decided from the signals seen so far: the first
/// SIGTERM/SIGINT starts a graceful shutdown, the second cuts the grace period short (the
/// sessions still open are closed at once, and still audited), a third exits without
/// waiting for anything. SIGHUP reloads, except once shutdown has started.
public struct SignalPolicy: Sendable, Equatable {
    public enum Signal: Sendable, Equatable {
        case terminate
        case hangUp
    }

    public enum Action: Sendable, Equatable {
        case reload
        case beginGracefulShutdown
        case forceShutdown
        case exitNow
        case ignore
    }

    private var stopSignals = 0

    public init() {}

    public var isShuttingDown: Bool { stopSignals > 0 }

    public mutating func received(_ signal: Signal) -> Action {
        switch signal {
        case .hangUp:
            // Reloading while the listeners close would race their teardown for nothing.
            return stopSignals == 0 ? .reload : .ignore
        case .terminate:
            stopSignals += 1
            switch stopSignals {
            case 1: return .beginGracefulShutdown
            case 2: return .forceShutdown
            default: return .exitNow
            }
        }
    }
}
