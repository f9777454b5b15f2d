/// Token type bytes of the server's tabular result stream.
public enum TDSTokenType {
    public static let altMetadata: UInt8 = 0x88
    public static let altRow: UInt8 = 0xD3
    public static let colMetadata: UInt8 = 0x81
    public static let colInfo: UInt8 = 0xA5
    public static let dataClassification: UInt8 = 0xA3
    public static let done: UInt8 = 0xFD
    public static let doneProc: UInt8 = 0xFE
    public static let doneInProc: UInt8 = 0xFF
    public static let envChange: UInt8 = 0xE3
    public static let error: UInt8 = 0xAA
    public static let featureExtAck: UInt8 = 0xAE
    public static let fedAuthInfo: UInt8 = 0xEE
    public static let info: UInt8 = 0xAB
    public static let loginAck: UInt8 = 0xAD
    public static let nbcRow: UInt8 = 0xD2
    public static let offset: UInt8 = 0x78
    public static let order: UInt8 = 0xA9
    public static let returnStatus: UInt8 = 0x79
    public static let returnValue: UInt8 = 0xAC
    public static let row: UInt8 = 0xD1
    public static let sessionState: UInt8 = 0xE4
    public static let sspi: UInt8 = 0xED
    public static let tabName: UInt8 = 0xA4

    public static func name(_ type: UInt8) -> String {
        switch type {
        case altMetadata: return "ALTMETADATA"
        case altRow: return "ALTROW"
        case colMetadata: return "COLMETADATA"
        case colInfo: return "COLINFO"
        case dataClassification: return "DATACLASSIFICATION"
        case done: return "DONE"
        case doneProc: return "DONEPROC"
        case doneInProc: return "DONEINPROC"
        case envChange: return "ENVCHANGE"
        case error: return "ERROR"
        case featureExtAck: return "FEATUREEXTACK"
        case fedAuthInfo: return "FEDAUTHINFO"
        case info: return "INFO"
        case loginAck: return "LOGINACK"
        case nbcRow: return "NBCROW"
        case offset: return "OFFSET"
        case order: return "ORDER"
        case returnStatus: return "RETURNSTATUS"
        case returnValue: return "RETURNVALUE"
        case row: return "ROW"
        case sessionState: return "SESSIONSTATE"
        case sspi: return "SSPI"
        case tabName: return "TABNAME"
        default: return "TOKEN_0x" + String(type, radix: 16, uppercase: true)
        }
    }

    /// How a token's length is expressed when no dedicated reader exists (MS-TDS 2.2.4.2).
    enum LengthRule: Equatable {
        case fixed(Int)
        case u16
        case u32
        /// No generic rule: needs a dedicated reader.
        case special
    }

    static func lengthRule(_ type: UInt8) -> LengthRule {
        switch type {
        case done, doneProc, doneInProc: return .fixed(12)
        case colMetadata, row, nbcRow, featureExtAck, returnValue, dataClassification, altMetadata, altRow:
            return .special
        case fedAuthInfo, sessionState: return .u32
        default:
            switch type & 0x30 {
            case 0x30: return .fixed(1 << Int((type >> 2) & 0x03))
            case 0x20: return .u16
            case 0x10: return .fixed(0)
            default: return .special
            }
        }
    }
}
