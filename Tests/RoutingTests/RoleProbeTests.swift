import Testing
@testable import Routing

@Suite("RoleProbe: reading the role queries")
struct RoleProbeTests {
    @Test func updateability() {
        #expect(RoleProbe.role(updateability: "READ_WRITE") == .readWrite)
        #expect(RoleProbe.role(updateability: " read_only ") == .readOnly)
        #expect(RoleProbe.role(updateability: nil) == .unknown)
        #expect(RoleProbe.role(updateability: "OFFLINE") == .unknown)
    }

    @Test func geoLinks() {
        #expect(RoleProbe.geo(links: []) == nil)
        #expect(RoleProbe.geo(links: [(role: 0, lagSeconds: 2), (role: 0, lagSeconds: 5)]) == GeoObservation(role: .primary, replicationLag: .seconds(5)))
        #expect(RoleProbe.geo(links: [(role: 1, lagSeconds: 3)]) == GeoObservation(role: .secondary, replicationLag: .seconds(3)))
        #expect(RoleProbe.geo(links: [(role: 0, lagSeconds: nil), (role: 1, lagSeconds: nil)])?.role == .secondary)
        #expect(RoleProbe.geo(links: [(role: 7, lagSeconds: nil)]) == nil)
    }

    @Test func queriesPerEndpoint() {
        #expect(RoleProbe.queries(geo: false) == ["SELECT DATABASEPROPERTYEX(DB_NAME(), 'Updateability')"])
        #expect(RoleProbe.queries(geo: true).count == 2)
    }

    @Test func durationsReadWell() {
        #expect(Duration.milliseconds(350).humanText == "350 ms")
        #expect(Duration.milliseconds(1_250).humanText == "1.3 s" || Duration.milliseconds(1_250).humanText == "1.2 s")
        #expect(Duration.seconds(10).humanText == "10 s")
        #expect(Duration.seconds(125).humanText == "2 min 5 s")
        #expect(Duration.seconds(120).humanText == "2 min")
        #expect(Duration.microseconds(1_234_567).millisecondsValue == 1234.567)
    }
}
