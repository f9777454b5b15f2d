import NIOCore

public struct Login7: Sendable, Hashable {
    public var tdsVersion: UInt32
    public var packetSize: UInt32
    public var clientProgramVersion: UInt32
    public var clientPID: UInt32
    public var connectionID: UInt32
    public var optionFlags1: UInt8
    public var optionFlags2: UInt8
    public var typeFlags: UInt8
    public var optionFlags3: UInt8
    public var clientTimeZone: Int32
    public var clientLCID: UInt32
    public var hostName: String
    public var userName: String
    /// Clear text (de-obfuscated).
    public var password: String
    public var appName: String
    public var serverName: String
    public var clientInterfaceName: String
    public var language: String
    public var database: String
    public var attachDBFile: String
    /// Clear text (de-obfuscated).
    public var changePassword: String
    /// 6 bytes (usually the client's MAC address).
    public var clientID: [UInt8]
    public var sspi: [UInt8]
    /// FeatureExt entries in the order sent (clients send them in any order).
    public var features: [Login7Feature]

    /// How the parsed message was laid out, so an unchanged LOGIN7 re-encodes byte for byte
    /// and a changed one keeps the driver's arrangement.
    var layout: Login7Layout?

    public static let fixedLength = 94
    public static let maxLength = 128 * 1024 - 1

    public static let typeFlagsReadOnlyIntent: UInt8 = 0x20
    public static let optionFlags2IntegratedSecurity: UInt8 = 0x80
    public static let optionFlags3Extension: UInt8 = 0x10

    public init(
        tdsVersion: UInt32 = 0x7400_0004,
        packetSize: UInt32 = 4096,
        clientProgramVersion: UInt32 = 0,
        clientPID: UInt32 = 0,
        connectionID: UInt32 = 0,
        optionFlags1: UInt8 = 0xE0,
        optionFlags2: UInt8 = 0x03,
        typeFlags: UInt8 = 0,
        optionFlags3: UInt8 = 0,
        clientTimeZone: Int32 = 0,
        clientLCID: UInt32 = 0x0409,
        hostName: String = "",
        userName: String = "",
        password: String = "",
        appName: String = "",
        serverName: String = "",
        clientInterfaceName: String = "",
        language: String = "",
        database: String = "",
        attachDBFile: String = "",
        changePassword: String = "",
        clientID: [UInt8] = [0, 0, 0, 0, 0, 0],
        sspi: [UInt8] = [],
        features: [Login7Feature] = []
    ) {
        self.tdsVersion = tdsVersion
        self.packetSize = packetSize
        self.clientProgramVersion = clientProgramVersion
        self.clientPID = clientPID
        self.connectionID = connectionID
        self.optionFlags1 = optionFlags1
        self.optionFlags2 = optionFlags2
        self.typeFlags = typeFlags
        self.optionFlags3 = optionFlags3
        self.clientTimeZone = clientTimeZone
        self.clientLCID = clientLCID
        self.hostName = hostName
        self.userName = userName
        self.password = password
        self.appName = appName
        self.serverName = serverName
        self.clientInterfaceName = clientInterfaceName
        self.language = language
        self.database = database
        self.attachDBFile = attachDBFile
        self.changePassword = changePassword
        self.clientID = clientID
        self.sspi = sspi
        self.features = features
        self.layout = nil
    }

    /// TypeFlags 0x20 (ApplicationIntent=ReadOnly).
    public var readOnlyIntent: Bool {
        get { typeFlags & Login7.typeFlagsReadOnlyIntent != 0 }
        set { typeFlags = newValue ? typeFlags | Login7.typeFlagsReadOnlyIntent : typeFlags & ~Login7.typeFlagsReadOnlyIntent }
    }

    /// OptionFlags2 0x80.
    public var integratedSecurity: Bool {
        get { optionFlags2 & Login7.optionFlags2IntegratedSecurity != 0 }
        set { optionFlags2 = newValue ? optionFlags2 | Login7.optionFlags2IntegratedSecurity : optionFlags2 & ~Login7.optionFlags2IntegratedSecurity }
    }

    /// OptionFlags3 0x10.
    public var hasFeatureExtension: Bool {
        get { optionFlags3 & Login7.optionFlags3Extension != 0 }
        set { optionFlags3 = newValue ? optionFlags3 | Login7.optionFlags3Extension : optionFlags3 & ~Login7.optionFlags3Extension }
    }

    /// Typed view of feature 0x02, nil if absent or malformed.
    public var fedAuth: Login7FedAuth? {
        guard let f = features.first(where: { $0.id == Login7Feature.fedAuth }) else { return nil }
        return try? Login7FedAuth(featureData: f.data)
    }

    public func feature(_ id: UInt8) -> Login7Feature? {
        features.first { $0.id == id }
    }

    /// Client's LOGIN7 with credentials replaced: user, password, change-password, SSPI and the
    /// integrated-security flag removed, any FEDAUTH feature replaced (in place) by a
    /// SECURITYTOKEN one carrying `accessToken`, echo bit and optional 32-byte nonce; every other
    /// field and feature kept in order; FeatureExt flag set.
    public func replacingCredentials(accessToken: String, echo: Bool, nonce: [UInt8]?) -> Login7 {
        var copy = self
        copy.userName = ""
        copy.password = ""
        copy.changePassword = ""
        copy.sspi = []
        copy.integratedSecurity = false
        let fed = Login7Feature(
            id: Login7Feature.fedAuth,
            data: Login7FedAuth.securityToken(token: accessToken, echo: echo, nonce: nonce).featureData)
        var replaced = false
        var out: [Login7Feature] = []
        out.reserveCapacity(copy.features.count + 1)
        for f in copy.features {
            if f.id == Login7Feature.fedAuth {
                if !replaced { out.append(fed) }
                replaced = true
            } else {
                out.append(f)
            }
        }
        if !replaced { out.append(fed) }
        copy.features = out
        copy.hasFeatureExtension = true
        return copy
    }

    // MARK: Password obfuscation

    /// Each byte of the UTF-16LE text nibble-swapped, then XOR 0xA5.
    public static func obfuscate(_ password: String) -> [UInt8] {
        obfuscate(bytes: TDSString.encodeUTF16LE(password))
    }

    public static func obfuscate(bytes: [UInt8]) -> [UInt8] {
        bytes.map { (($0 << 4) | ($0 >> 4)) ^ 0xA5 }
    }

    public static func deobfuscate(_ bytes: [UInt8]) -> String {
        TDSString.decodeUTF16LE(deobfuscate(bytes: bytes))
    }

    public static func deobfuscate(bytes: [UInt8]) -> [UInt8] {
        bytes.map { let x = $0 ^ 0xA5; return (x << 4) | (x >> 4) }
    }

    // MARK: Equality ignores the remembered layout

    public static func == (lhs: Login7, rhs: Login7) -> Bool {
        lhs.tdsVersion == rhs.tdsVersion && lhs.packetSize == rhs.packetSize
            && lhs.clientProgramVersion == rhs.clientProgramVersion && lhs.clientPID == rhs.clientPID
            && lhs.connectionID == rhs.connectionID && lhs.optionFlags1 == rhs.optionFlags1
            && lhs.optionFlags2 == rhs.optionFlags2 && lhs.typeFlags == rhs.typeFlags
            && lhs.optionFlags3 == rhs.optionFlags3 && lhs.clientTimeZone == rhs.clientTimeZone
            && lhs.clientLCID == rhs.clientLCID && lhs.hostName == rhs.hostName
            && lhs.userName == rhs.userName && lhs.password == rhs.password
            && lhs.appName == rhs.appName && lhs.serverName == rhs.serverName
            && lhs.clientInterfaceName == rhs.clientInterfaceName && lhs.language == rhs.language
            && lhs.database == rhs.database && lhs.attachDBFile == rhs.attachDBFile
            && lhs.changePassword == rhs.changePassword && lhs.clientID == rhs.clientID
            && lhs.sspi == rhs.sspi && lhs.features == rhs.features
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(tdsVersion)
        hasher.combine(packetSize)
        hasher.combine(clientPID)
        hasher.combine(connectionID)
        hasher.combine(optionFlags1)
        hasher.combine(optionFlags2)
        hasher.combine(typeFlags)
        hasher.combine(optionFlags3)
        hasher.combine(hostName)
        hasher.combine(userName)
        hasher.combine(appName)
        hasher.combine(serverName)
        hasher.combine(database)
        hasher.combine(clientID)
        hasher.combine(sspi)
        hasher.combine(features)
    }
}
