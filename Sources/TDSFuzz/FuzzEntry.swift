import Foundation

// One fuzz executable for every decoder that reads bytes from outside. Built with
// `-sanitize=fuzzer,address -DTDSGATE_LIBFUZZER` (Tests/fuzz.sh), `main` hands over to
// libFuzzer's driver, which calls the two entry points below; the target is chosen by
// TDSGATE_FUZZ_TARGET. Built plainly (as `swift build` does) it is a replay tool:
// `TDSFuzz list`, `TDSFuzz seeds DIR`, `TDSFuzz run TARGET FILE...` (how a crash file is
// checked after a fix).

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: UnsafeMutablePointer<Int32>?,
                             _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> Int32 {
    let env = ProcessInfo.processInfo.environment
    if let dir = env["TDSGATE_FUZZ_SEEDS"] {
        // Seed-writing run: no fuzzing, just the per-target corpora.
        do {
            try FuzzSeeds.write(to: dir, repository: env["TDSGATE_FUZZ_REPO"] ?? FileManager.default.currentDirectoryPath)
            exit(0)
        } catch {
            FileHandle.standardError.write(Data("seeds: \(error)\n".utf8))
            exit(2)
        }
    }
    guard let name = env["TDSGATE_FUZZ_TARGET"], let target = FuzzTargets.named(name) else {
        FileHandle.standardError.write(Data("set TDSGATE_FUZZ_TARGET to one of: \(FuzzTargets.all.map(\.name).joined(separator: " "))\n".utf8))
        exit(2)
    }
    FuzzTargets.selected = target
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    FuzzTargets.selected?.run(bytes)
    return 0
}

#if TDSGATE_LIBFUZZER
// libFuzzer's own `main` cannot be used: SwiftPM links every Swift executable with `main`
// renamed from the module's entry point. So ours calls the driver libFuzzer exports for
// this (`int LLVMFuzzerRunDriver(int *, char ***, int (*)(const uint8_t *, size_t))`);
// its pointer-only signature is called the same way by Swift and by C.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

@main
struct FuzzMain {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzerTestOneInput(data, size) })
    }
}
#else
@main
struct FuzzReplay {
    static func main() throws {
        let args = Array(CommandLine.arguments.dropFirst())
        switch args.first {
        case "list":
            for t in FuzzTargets.all { print("\(t.name)\t\(t.summary)") }
        case "seeds" where args.count >= 2:
            try FuzzSeeds.write(to: args[1], repository: args.count > 2 ? args[2] : FileManager.default.currentDirectoryPath)
        case "run" where args.count >= 3:
            guard let target = FuzzTargets.named(args[1]) else {
                print("unknown target \(args[1])")
                exit(2)
            }
            for path in args.dropFirst(2) {
                guard let data = FileManager.default.contents(atPath: path) else {
                    print("cannot read \(path)")
                    exit(2)
                }
                target.run(Array(data))
                print("\(path): ok")
            }
        default:
            print("usage: TDSFuzz list | seeds DIR [REPO] | run TARGET FILE...")
            exit(2)
        }
    }
}
#endif
