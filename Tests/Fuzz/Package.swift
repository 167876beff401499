// swift-tools-version:6.0
// Coverage-guided fuzz targets for the checkpoint readers (libFuzzer with address sanitizer).
//
// Not part of the main package's build or tests. Build with
//   swift build -c release -Xswiftc -sanitize=fuzzer,address --scratch-path .build-fuzz
// or run everything with `./run-fuzz.sh [RUNS]`.
import PackageDescription

/// One executable per reader; each defines `LLVMFuzzerTestOneInput`, and its
/// `main.swift` hands that to libFuzzer's driver.
let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
  ("fuzz-safetensors", [.product(name: "QFormats", package: "qtoolchain")]),
  ("fuzz-sharded-index", [.product(name: "QFormats", package: "qtoolchain")]),
  ("fuzz-hdf5", [.product(name: "QFormats", package: "qtoolchain")]),
  ("fuzz-gguf", [.product(name: "QFormats", package: "qtoolchain")]),
  ("fuzz-config", [.product(name: "QFormats", package: "qtoolchain")]),
  (
    "fuzz-pack",
    [.product(name: "QFormats", package: "qtoolchain"), .product(name: "QCompute", package: "qtoolchain")]
  ),
  ("fuzz-tokenizer", [.product(name: "QEngine", package: "qtoolchain")]),
  // Its folder links `PEFTAdapterConfig.swift` and `LoraRebaseError.swift` from the main package's
  // QToolSupport, which is not a product; both need only Foundation and QFormats.
  ("fuzz-peft", [.product(name: "QFormats", package: "qtoolchain")]),
]

let package = Package(
  name: "qtoolchain-fuzz",
  dependencies: [.package(name: "qtoolchain", path: "../..")],
  targets: fuzzTargets.map { target in
    .executableTarget(
      name: target.name, dependencies: target.dependencies + ["FuzzSupport"], path: "Sources/\(target.name)")
  } + [
    .target(name: "CFuzzerDriver"),
    .target(name: "FuzzSupport", dependencies: ["CFuzzerDriver", .product(name: "QFormats", package: "qtoolchain")]),
  ]
)
