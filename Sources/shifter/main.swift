import ShifterRuntime

// The setuid user command. Arguments are parsed by hand, not with ArgumentParser, because option
// parsing must stop at the first non-option (SPEC section 3) and start-up cost matters.
let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "--version" {
    print("shifter \(Runtime.version)")
} else {
    print("usage: shifter [OPTIONS] [--] [COMMAND [ARG...]]")
}
