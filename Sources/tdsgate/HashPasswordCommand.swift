import ArgumentParser
import Foundation
import Identity

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `tdsgate hash-password`: reads a password from standard input (never from the command line)
/// and prints the salted PBKDF2 hash line to put under `logins` in the configuration.
struct HashPasswordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash-password",
        abstract: "Hash a SQL login password for the configuration (reads the password from stdin).",
        discussion: """
            The password is read from standard input: typed at a prompt without echo (asked twice) when \
            stdin is a terminal, else the first line of stdin (e.g. `printf '%s' "$PW" | tdsgate hash-password`). \
            It is never taken from the command line, where other users could see it. Prints \
            pbkdf2-sha256$<iterations>$<salt>$<hash>.
            """
    )

    @Flag(name: .customLong("password-stdin"), help: "Read the password from stdin (the default; accepted for familiarity).")
    var passwordStdin = false

    @Option(help: "PBKDF2-SHA256 iterations (at least \(PasswordHash.minimumIterations)).")
    var iterations: Int = PasswordHash.defaultIterations

    func validate() throws {
        guard iterations >= PasswordHash.minimumIterations, iterations <= PasswordHash.maximumIterations else {
            throw ValidationError(
                "--iterations must be between \(PasswordHash.minimumIterations) and \(PasswordHash.maximumIterations)"
            )
        }
    }

    func run() throws {
        let password: String
        if isatty(STDIN_FILENO) == 1 {
            let first = try Self.readHidden(prompt: "Password: ")
            let second = try Self.readHidden(prompt: "Again: ")
            guard first == second else { throw ValidationError("the two passwords differ") }
            password = first
        } else {
            guard let line = readLine(strippingNewline: true) else {
                throw ValidationError("no password on standard input")
            }
            password = line.hasSuffix("\r") ? String(line.dropLast()) : line
        }
        guard !password.isEmpty else { throw ValidationError("the password is empty") }
        guard password.utf16.count <= 128 else {
            throw ValidationError("the password is longer than 128 characters (the most a TDS login can carry)")
        }
        print(PasswordHash.make(password: password, iterations: iterations))
    }

    /// Prompts on stderr and reads a line from the terminal with echo off.
    static func readHidden(prompt: String) throws -> String {
        FileHandle.standardError.write(Data(prompt.utf8))
        var original = termios()
        let haveTerminal = tcgetattr(STDIN_FILENO, &original) == 0
        if haveTerminal {
            var silent = original
            silent.c_lflag &= ~tcflag_t(ECHO)
            _ = tcsetattr(STDIN_FILENO, TCSAFLUSH, &silent)
        }
        defer {
            if haveTerminal {
                _ = tcsetattr(STDIN_FILENO, TCSAFLUSH, &original)
                FileHandle.standardError.write(Data("\n".utf8))
            }
        }
        guard let line = readLine(strippingNewline: true) else {
            throw ValidationError("no password entered")
        }
        return line
    }
}
