import ArgumentParser

#if canImport(Glibc)
  import Glibc
#endif

extension ParsableCommand {
  /// Parses and runs the command like `main()`, with the toolchain's conventions: OpenBLAS runs
  /// kernels this CPU can do well with (`BLASKernelChoice`), stdout is checked
  /// (`StandardOutputCheck`), and an error from `run()` that is no usage error is
  /// printed as one line starting with the tool's name (`lora-rebase: …`), not "Error: …".
  ///
  /// - Parameter failureStatus: the exit status for such errors and for a failed stdout.
  public static func mainCheckingOutput(failureStatus: Int32 = 1) -> Never {
    BLASKernelChoice.restartWithBetterKernelsIfNeeded()
    StandardOutputCheck.install(failureStatus: failureStatus)
    let command: ParsableCommand
    do {
      command = try parseAsRoot()
    } catch {
      exit(withError: error)
    }
    do {
      var command = command
      try command.run()
      exit()
    } catch let code as ExitCode {
      Glibc.exit(code.rawValue)
    } catch let error as OptionLimitError {
      var stderr = StandardError()
      print("\(configuration.commandName ?? FileHandleOutput.toolName): \(error)", to: &stderr)
      Glibc.exit(ExitCode.validationFailure.rawValue)
    } catch {
      if exitCode(for: error) != .failure { exit(withError: error) }
      var stderr = StandardError()
      print("\(configuration.commandName ?? FileHandleOutput.toolName): \(error)", to: &stderr)
      Glibc.exit(failureStatus)
    }
  }
}
