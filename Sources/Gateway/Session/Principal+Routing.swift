import Identity

extension Principal {
    /// The names a routing rule's `roles` can match: whatever identifies the principal or a
    /// group it belongs to, so one list works for SQL logins and Entra principals alike.
    var routingNames: Set<String> {
        var names: Set<String> = [name]
        for value in [objectID, appID, upn].compactMap({ $0 }) { names.insert(value) }
        names.formUnion(groups)
        names.formUnion(roles)
        return names
    }
}
