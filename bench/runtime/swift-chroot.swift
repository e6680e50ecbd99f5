// The floor of any entry written in Swift: a program that does what a bare `chroot DIR CMD` does
// (chroot, chdir, exec) and nothing else, linked as `shifter` is (static-pie, the Swift runtime
// inside). bench/runtime/run.sh times it beside `chroot` and `shifter`: what it takes over the
// bare chroot is what the Swift runtime's start costs; what shifter takes over it is shifter's work.
#if canImport(Glibc)
import Glibc
#endif

let arguments = CommandLine.arguments
guard arguments.count >= 3, chroot(arguments[1]) == 0, chdir("/") == 0 else { exit(125) }
let argv = arguments.dropFirst(2).map { strdup($0) } + [nil]
execv(arguments[2], argv)
exit(127)
