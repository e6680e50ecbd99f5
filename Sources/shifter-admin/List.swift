import ArgumentParser
import ShifterCore
import ShifterRuntime

extension ShifterAdmin {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the job roots on this node: job, status, user, image, mounts, per-node caches, entry.",
            discussion: """
                STATUS is ready (built and recorded), failed (the prolog left its reason, shown \
                below the line) or incomplete (directories or mounts without a record: a prolog or \
                epilog was killed half-way; 'shifter-admin cleanup --job N' removes it). ENTRY is \
                userns where the job's tasks join its pinned namespaces (entryMode=userns), broken \
                where its entry lacks them (cleanup removes it), - where the job has none. A row \
                JOB.STEP is the root of a step that asked for another image or other volumes than \
                its job's (entryMode=userns), which the step's end removes; cleanup --job JOB \
                removes it with the job's.
                """
        )

        @OptionGroup var site: SiteOptions

        func run() throws {
            try requireRoot("list")
            let config = try site.load()
            let roots = NodeInventory.roots(config: config)
            var rows = [["JOB", "STATUS", "UID", "IMAGE", "MOUNTS", "CACHES", "ENTRY"]]
            for root in roots {
                let caches = root.perNodeCaches
                rows.append([
                    root.name, root.status, root.state.map { String($0.uid) } ?? "-",
                    root.state.map { Self.shortImage($0.image) } ?? "-", String(root.mounts.count),
                    caches.count == 0 ? "-" : "\(caches.count) (\(ByteSize.format(caches.bytes)))",
                    root.entry ?? "-",
                ])
            }
            print(Self.table(rows), terminator: "")
            for root in roots { if let failure = root.failure { print("  job \(root.name): \(failure)") } }
            for path in NodeInventory.strangers(config: config) { print("not Shifter's: \(path)") }
        }

        /// `sha256:` and the first 12 hex digits, or a `local:` image's directory.
        static func shortImage(_ image: String) -> String {
            image.hasPrefix("sha256:") ? String(image.prefix(19)) : "local:" + image
        }

        static func table(_ rows: [[String]]) -> String {
            var widths: [Int] = []
            for row in rows {
                for (index, cell) in row.enumerated() {
                    if index == widths.count { widths.append(0) }
                    widths[index] = max(widths[index], cell.count)
                }
            }
            return rows.map { row in
                row.enumerated().map { index, cell in
                    index == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count + 2)
                }.joined() + "\n"
            }.joined()
        }
    }
}
