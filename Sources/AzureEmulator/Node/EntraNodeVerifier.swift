import Foundation

/// Azure SQL's login-time token check, backed by the emulated tenant's signing key.
struct EntraNodeVerifier: NodeTokenVerifying {
    let entra: EntraEmulator

    func verifyAccessToken(_ token: String) throws -> (principal: String, aliases: [String]) {
        let v = try entra.verifier().verify(token)
        let aliases = [v.upn, v.appid, v.oid, v.name].compactMap { $0 }
        return (v.sqlPrincipalName, aliases)
    }

    var stsURL: String { "\(entra.baseURL ?? "https://login.microsoftonline.com")/\(entra.tenant.tenantID)/" }
}
