import ArgumentParser

/// How a tool prints its data on stdout.
///
/// `table` is for people; `json`, `jsonl` and `tsv` have stable, documented fields for scripts
/// (see `Formats/qinspect-output.md`).
public enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
  case table
  case json
  case jsonl
  case tsv
}
