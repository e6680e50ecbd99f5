#if canImport(Glibc)
import Glibc
#endif
import ShifterCore
import ShifterSystem

/// Pulls an image missing from the store while a job is submitted, as Pyxis imports an image at
/// its first use: `shifterimg pull` runs as the submitting user (srun and sbatch are the user's
/// own processes, without privilege), with the user's environment (saved registry logins, the
/// site's CA settings), and its progress goes to the user's standard error as it comes. The
/// gateway pulls each image once, whoever asks, so later jobs find it in the store at once.
public enum MissingImagePull {
    /// How long a submission waits for a pull: a large image on a slow registry takes minutes.
    public static let timeLimit: Duration = .seconds(1800)

    /// Pulls `reference` (`docker:...`) with the site's `shifterimg` (`udiRootPath/bin`, as for a
    /// lookup at submission) and its configuration, `config` read from `configPath`.
    public static func pull(_ reference: String, config: SiteConfig, configPath: String, environment: [String],
                            timeLimit: Duration = timeLimit) throws(RuntimeError) {
        let shifterimg = config.shifterimgPath
        ProcessControl.writeToStandardError(
            "shifter: submit: image \"\(reference)\" is not in the image store yet; pulling it now with shifterimg pull (once: later jobs find it in the store)\n")
        let outcome: ProgramRunner.Outcome
        do {
            outcome = try ProgramRunner.run(shifterimg, ["--config=\(configPath)", "pull", reference], environment: environment,
                                            showingOutputOn: STDERR_FILENO, timeLimit: timeLimit)
        } catch {
            throw RuntimeError("image \"\(reference)\" could not be pulled: couldn't \(error.description)", kind: .system)
        }
        if outcome.timedOut {
            throw RuntimeError("image \"\(reference)\" was not pulled within \(timeLimit.components.seconds) s; the gateway goes on with it: submit again later, or follow it with: shifterimg pull \(reference)", kind: .system)
        }
        guard outcome.status == 0 else {
            // shifterimg pull exits with 2 where the image does not exist.
            throw RuntimeError("image \"\(reference)\" could not be pulled (shifterimg pull exited with status \(outcome.status); its message is above)",
                               kind: outcome.status == 2 ? .notFound : .system)
        }
    }
}
