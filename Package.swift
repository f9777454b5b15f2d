// swift-tools-version:6.1
import PackageDescription

// Kept deliberate: every dependency here costs CI minutes on a 2-core machine.
let package = Package(
    name: "tdsgate",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "tdsgate", targets: ["tdsgate"]),
        .library(name: "TDS", targets: ["TDS"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        // Already in the graph through jwt-kit; named here for GateSupport's base64url.
        .package(url: "https://github.com/swift-extras/swift-extras-base64", from: "1.2.0"),
    ],
    targets: [
        .target(
            name: "TDS",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")]
        ),
        .target(
            name: "TDSNIO",
            dependencies: [
                "TDS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ]
        ),
        // Small pieces the proxy and the emulator share: base64url, constant-time compare.
        .target(
            name: "GateSupport",
            dependencies: [.product(name: "ExtrasBase64", package: "swift-extras-base64")]
        ),
        .target(
            name: "HTTPServerKit",
            dependencies: [
                "GateSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .target(
            name: "AzureEmulator",
            dependencies: [
                "TDS", "TDSNIO", "HTTPServerKit", "GateSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .target(
            name: "Identity",
            dependencies: [
                "TDS", "GateSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        // Kerberos logins: MIT GSS-API loaded with dlopen, so no krb5 headers at build time.
        .target(
            name: "CGSSAPI",
            linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]
        ),
        .target(
            name: "Kerberos",
            dependencies: ["CGSSAPI"]
        ),
        .target(
            name: "Routing",
            dependencies: ["TDS"]
        ),
        .target(
            name: "PacketDump",
            dependencies: ["TDS", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .target(
            name: "Spool",
            dependencies: [.product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "Audit",
            dependencies: ["Spool"]
        ),
        .target(
            name: "Gateway",
            dependencies: [
                "TDS", "TDSNIO", "Identity", "Routing", "HTTPServerKit", "Kerberos", "Audit", "PacketDump", "Spool",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "X509", package: "swift-certificates"),
            ]
        ),
        .target(
            name: "Bench",
            dependencies: [
                "TDS", "TDSNIO", "AzureEmulator", "Gateway", "Routing", "Identity",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .executableTarget(
            name: "tdsgate",
            dependencies: [
                "TDS", "TDSNIO", "AzureEmulator", "Identity", "Gateway", "Bench", "PacketDump",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // libFuzzer targets for every decoder of outside bytes (Tests/fuzz.sh builds it with
        // -sanitize=fuzzer,address); built plainly it replays inputs: `swift run TDSFuzz list`.
        .executableTarget(
            name: "TDSFuzz",
            dependencies: [
                "TDS", "TDSNIO", "PacketDump", "Identity", "Gateway",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "GateSupportTests",
            dependencies: ["GateSupport"]
        ),
        .testTarget(
            name: "TDSTests",
            dependencies: ["TDS", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "TDSNIOTests",
            dependencies: [
                "TDSNIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "RoutingTests",
            dependencies: ["Routing", "TDS"]
        ),
        .testTarget(
            name: "IdentityTests",
            dependencies: [
                "Identity", "AzureEmulator", "HTTPServerKit", "GateSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "KerberosTests",
            dependencies: ["Kerberos"]
        ),
        .testTarget(
            name: "PacketDumpTests",
            dependencies: ["PacketDump", "TDS", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "SpoolTests",
            dependencies: ["Spool"]
        ),
        .testTarget(
            name: "AuditTests",
            dependencies: ["Audit", "Spool"]
        ),
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "Gateway", "Identity", "AzureEmulator", "TDS", "TDSNIO", "Routing", "PacketDump", "Spool",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(
            name: "AzureEmulatorTests",
            dependencies: [
                "AzureEmulator", "TDS", "TDSNIO", "HTTPServerKit",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
