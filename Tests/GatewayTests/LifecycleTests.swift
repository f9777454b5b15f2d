import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing

@testable import Gateway

#if canImport(Glibc)
import Glibc
#endif

@Suite struct SystemdNotificationTests {
    @Test func formatsOneAssignmentPerLine() {
        #expect(SystemdNotification.datagram([.ready]) == "READY=1\n")
        #expect(SystemdNotification.datagram([.stopping, .status("draining 3 sessions")]) == "STOPPING=1\nSTATUS=draining 3 sessions\n")
        // systemd needs MONOTONIC_USEC in the same datagram as RELOADING=1.
        #expect(SystemdNotification.datagram([.reloading(monotonicMicroseconds: 123_456_789)]) == "RELOADING=1\nMONOTONIC_USEC=123456789\n")
    }

    @Test func aStatusCannotForgeAnotherAssignment() {
        let text = SystemdNotification.datagram([.status("listener x\nREADY=1\r\n\0")])
        // "\r\n" is one Character in Swift, so one space.
        #expect(text == "STATUS=listener x READY=1  \n")
        #expect(text.split(separator: "\n").count == 1)
    }

    @Test func parsesNotifySocket() {
        #expect(NotifySocketAddress(environmentValue: "/run/systemd/notify") == .path("/run/systemd/notify"))
        #expect(NotifySocketAddress(environmentValue: "@tdsgate/notify") == .abstract("tdsgate/notify"))
        for refused in ["", "@", "run/systemd/notify", "vsock:2:1234", "/" + String(repeating: "a", count: 108),
                        "@" + String(repeating: "a", count: 108)] {
            #expect(NotifySocketAddress(environmentValue: refused) == nil, "\(refused)")
        }
    }

    @Test func sunPathOfAnAbstractNameStartsWithNulAndHasNoTerminator() {
        #expect(NotifySocketAddress.abstract("ab").sunPath == [0, 0x61, 0x62])
        #expect(NotifySocketAddress.path("/ab").sunPath == [0x2F, 0x61, 0x62, 0])
    }

    @Test func notSetMeansNoNotifier() {
        #expect(SystemdNotifier.fromEnvironment([:], logger: Logger(label: "test")) == nil)
        #expect(SystemdNotifier.fromEnvironment(["NOTIFY_SOCKET": "relative"], logger: Logger(label: "test")) == nil)
    }

    /// A real datagram socket stands in for systemd's, at a path and in the abstract namespace.
    @Test(arguments: [false, true]) func sendsTheDatagram(abstract: Bool) throws {
        let name = "tdsgate-notify-test-\(getpid())-\(abstract ? "a" : "p")"
        let value = abstract ? "@" + name : NSTemporaryDirectory() + name
        let receiver = try DatagramReceiver(address: try #require(NotifySocketAddress(environmentValue: value)))
        defer { receiver.close() }
        let notifier = try #require(SystemdNotifier.fromEnvironment(["NOTIFY_SOCKET": value], logger: Logger(label: "test")))
        notifier.send(.ready, .status("accepting connections"))
        notifier.send(.reloading(monotonicMicroseconds: 42))
        #expect(receiver.receive() == "READY=1\nSTATUS=accepting connections\n")
        #expect(receiver.receive() == "RELOADING=1\nMONOTONIC_USEC=42\n")
    }

    @Test func monotonicMicrosecondsComeFromTheMonotonicClock() {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let before = UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
        let value = SystemdNotifier.monotonicMicroseconds()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let after = UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
        #expect(before <= value && value <= after)
    }
}

/// A bound AF_UNIX datagram socket (what systemd listens on).
private final class DatagramReceiver {
    let fd: Int32
    let path: String?

    init(address: NotifySocketAddress) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = address.sunPath
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes) }
        if case .path(let p) = address { path = p; unlink(p) } else { path = nil }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard rc == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EINVAL) }
    }

    /// The next datagram already queued (never waits: the sender sent before this is called).
    func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        return n < 0 ? nil : String(decoding: buffer[..<n], as: UTF8.self)
    }

    func close() {
        Glibc.close(fd)
        if let path { unlink(path) }
    }
}

@Suite struct SignalPolicyTests {
    @Test func firstStopSignalIsGracefulSecondForcesThirdExits() {
        var policy = SignalPolicy()
        #expect(policy.received(.hangUp) == .reload)
        #expect(policy.received(.hangUp) == .reload)
        #expect(!policy.isShuttingDown)
        #expect(policy.received(.terminate) == .beginGracefulShutdown)
        #expect(policy.isShuttingDown)
        #expect(policy.received(.hangUp) == .ignore)
        #expect(policy.received(.terminate) == .forceShutdown)
        #expect(policy.received(.terminate) == .exitNow)
        #expect(policy.received(.terminate) == .exitNow)
    }
}

/// Records what the fake services did, in order.
private final class Journal: Sendable {
    private let entries = Mutex<[String]>([])
    func add(_ s: String) { entries.withLock { $0.append(s) } }
    var all: [String] { entries.withLock { $0 } }
}

private struct FailingService: Service {
    struct Failure: Error {}
    func run() async throws { throw Failure() }
}

@Suite struct GatewayServicesTests {
    private func services(_ journal: Journal) -> GatewayServices {
        func step(_ name: String) -> TeardownService { TeardownService(name) { journal.add(name) } }
        return GatewayServices(httpClient: step("http-client"), audit: step("audit"), dump: step("dump"), probers: step("probers"),
                               certificateWatcher: step("certificate-watcher"), admin: step("admin"), listeners: step("listeners"))
    }

    /// Sessions end (listeners) before the dump and the audit trail close, and the HTTP
    /// client the token providers use goes last.
    @Test func gracefulShutdownStopsSessionsThenDumpThenAuditThenHTTPClient() async throws {
        let journal = Journal()
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: services(journal).ordered, logger: Logger(label: "test")))
        // Remembered until run() starts the services; they then stop one by one in reverse.
        await group.triggerGracefulShutdown()
        try await group.run()
        #expect(journal.all == ["listeners", "admin", "certificate-watcher", "probers", "dump", "audit", "http-client"])
    }

    @Test func aFailingServiceStillTearsEverythingDown() async throws {
        let journal = Journal()
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: services(journal).ordered + [FailingService()],
                                                                          logger: Logger(label: "test")))
        await #expect(throws: FailingService.Failure.self) { try await group.run() }
        #expect(Set(journal.all) == ["listeners", "admin", "certificate-watcher", "probers", "dump", "audit", "http-client"])
    }

    @Test func proberServiceWithoutProbersWaitsForShutdown() async throws {
        let journal = Journal()
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [TeardownService("after") { journal.add("after") }, ProberService(probers: [])], logger: Logger(label: "test")))
        await group.triggerGracefulShutdown()
        // Returning before shutdown would end the group with serviceFinishedUnexpectedly.
        try await group.run()
        #expect(journal.all == ["after"])
    }
}

@Suite struct DrainWaiterTests {
    @Test func theFirstOutcomeWins() async {
        let waiter = DrainWaiter()
        waiter.finish(.forced)
        waiter.finish(.allClosed)
        #expect(await waiter.wait() == .forced)
    }

    @Test func aWaiterIsResumedByALaterOutcome() async {
        let waiter = DrainWaiter()
        async let outcome = waiter.wait()
        waiter.finish(.deadline)
        #expect(await outcome == .deadline)
    }
}
