/// Login-time errors as Azure SQL words them. Drivers decide what to retry by number,
/// people by text, so both are kept close to the real service.
enum LoginErrors {
    static func message(for number: Int32, database: String, server: String) -> (severity: UInt8, text: String) {
        switch number {
        case 40613:
            return (17, "Database '\(database)' on server '\(server)' is not currently available.  Please retry the connection later.  If the problem persists, contact customer support, and provide them the session tracing ID of '00000000-0000-0000-0000-000000000000'.")
        case 40197:
            return (20, "The service has encountered an error processing your request. Please try again. Error code 4815.")
        case 40501:
            return (20, "The service is currently busy. Retry the request after 10 seconds. Incident ID: 00000000-0000-0000-0000-000000000000. Code: 0.")
        case 4060:
            return (11, "Cannot open database \"\(database)\" requested by the login. The login failed.")
        case 4221:
            return (16, "Login to read-secondary failed due to long wait on 'HADR_DATABASE_WAIT_FOR_TRANSITION_TO_VERSIONING'. The replica is not available for login because row versions are missing for transactions that were in-flight when the replica was recycled.")
        case 10928:
            return (20, "Resource ID : 1. The request limit for the database is 30 and has been reached.")
        case 10929:
            return (20, "Resource ID : 1. The request limit for the database is 30 and has been reached. However, the server is currently too busy to support requests greater than 30 for this database.")
        case 42108:
            return (16, "Can not connect to the SQL pool since it is paused. Please resume the SQL pool and try again.")
        case 42109:
            return (16, "The SQL pool is warming up. Please try again.")
        case 49918, 49919, 49920:
            return (16, "Cannot process request. Too many operations in progress for subscription.")
        case 18456:
            return (14, "Login failed for user '<emulated fault>'.")
        default:
            return (16, "Emulated error \(number) injected by the tdsgate Azure SQL emulator.")
        }
    }
}
