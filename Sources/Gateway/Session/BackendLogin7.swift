import TDS

/// The LOGIN7 tdsgate sends to Azure SQL: the client's own, with only its credentials
/// replaced by the managed-identity token. App name, host, database, language, LCID,
/// TypeFlags, packet size and the client's other feature extensions stay as they were.
func backendLogin7(from client: Login7, accessToken: String, fedAuthEcho: Bool, nonce: [UInt8]?,
                   appNameTag: String?, forceReadOnly: Bool) -> Login7 {
    var login = client.replacingCredentials(accessToken: accessToken, echo: fedAuthEcho, nonce: nonce)
    if let tag = appNameTag {
        login.appName = String((login.appName + " " + tag).prefix(128))
    }
    if forceReadOnly { login.readOnlyIntent = true }
    return login
}

/// The text a DBA sees in the AppName to know whose session this is.
func sessionTag(principal: String) -> String {
    "[tdsgate:\(principal)]"
}
