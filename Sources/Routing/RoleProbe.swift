/// The queries a probe runs after its TDS login, and how their answers become a role.
///
/// Both run in a user database of the cluster: in `master` the geo view is empty and
/// Updateability describes `master`, not the data the sessions use.
public enum RoleProbe {
    /// One row, one column: `READ_WRITE` or `READ_ONLY`.
    public static let updateabilityQuery = "SELECT DATABASEPROPERTYEX(DB_NAME(), 'Updateability')"

    /// One row per geo link (none when the database has no geo-replication).
    public static let geoLinkQuery = "SELECT role, replication_lag_sec FROM sys.dm_geo_replication_link_status"

    /// The statements a probe of an endpoint sends, in order.
    public static func queries(geo: Bool) -> [String] {
        geo ? [updateabilityQuery, geoLinkQuery] : [updateabilityQuery]
    }

    /// Reads the Updateability value; anything unexpected is `.unknown`, which routes no writes.
    public static func role(updateability: String?) -> ObservedRole {
        switch updateability?.trimmingSpaces.uppercased() {
        case "READ_WRITE": .readWrite
        case "READ_ONLY": .readOnly
        default: .unknown
        }
    }

    /// Reads the geo view's rows as (role, lag seconds) pairs.
    ///
    /// Any secondary link wins over primary ones: a database is a geo-secondary of exactly one
    /// primary, while a primary may have several links, so a mix can only mean the secondary
    /// side is what this endpoint is. No rows means no geo-replication to report.
    public static func geo(links: [(role: Int, lagSeconds: Int?)]) -> GeoObservation? {
        guard !links.isEmpty else { return nil }
        if let secondary = links.first(where: { $0.role == 1 }) {
            return GeoObservation(role: .secondary, replicationLag: secondary.lagSeconds.map { .seconds($0) })
        }
        guard links.allSatisfy({ $0.role == 0 }) else { return nil }
        let worstLag = links.compactMap(\.lagSeconds).max()
        return GeoObservation(role: .primary, replicationLag: worstLag.map { .seconds($0) })
    }
}

extension String {
    var trimmingSpaces: Substring {
        var s = Substring(self)
        while s.first?.isWhitespace == true { s.removeFirst() }
        while s.last?.isWhitespace == true { s.removeLast() }
        return s
    }
}
