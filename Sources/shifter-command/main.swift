import ShifterRuntime

#if canImport(Glibc)
import Glibc
#endif

// The setuid command. All logic lives in ShifterRuntime; see ContainerLauncher.
func main() -> Int32 {
    let started = ContainerLauncher.wallClock()
    var environment: [String] = []
    if var cursor = environ as UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? {
        while let entry = cursor.pointee {
            environment.append(String(cString: entry))
            cursor += 1
        }
    }
    return ContainerLauncher.run(arguments: Array(CommandLine.arguments.dropFirst()), environment: environment, started: started)
}
exit(main())
