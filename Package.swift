// swift-tools-version:6.0
import PackageDescription

/// The numeric kernels are compiled for the building machine's CPU (AVX2 and FMA where it has
/// them), as llama.cpp does by default; `QTOOLCHAIN_PORTABLE=1` builds for the architecture's
/// baseline instead, for binaries that move to other machines.
let kernelSettings: [SwiftSetting] =
  Context.environment["QTOOLCHAIN_PORTABLE"] == "1"
  ? [] : [.unsafeFlags(["-target-cpu", "native"], .when(configuration: .release))]

let package = Package(
  name: "qtoolchain",
  products: [
    .executable(name: "qconvert", targets: ["qconvert"]),
    .executable(name: "qinspect", targets: ["qinspect"]),
    .executable(name: "qdiff", targets: ["qdiff"]),
    .executable(name: "lora-rebase", targets: ["lora-rebase"]),
    .library(name: "QFormats", targets: ["QFormats"]),
    .library(name: "QCompute", targets: ["QCompute"]),
    .library(name: "QEngine", targets: ["QEngine"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
  ],
  targets: [
    // System libraries, found with pkg-config; apt names the Debian package that provides each.
    .systemLibrary(
      name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
    .systemLibrary(
      name: "CLAPACK", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
    .systemLibrary(
      name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
    .systemLibrary(
      name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
    .systemLibrary(
      name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
    .systemLibrary(
      name: "CJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg62-turbo-dev"])]),
    // The CPU's CRC-32C instruction; a header only, nothing to link.
    .systemLibrary(name: "CCRC32C"),

    // renameat2 and its flags, which Swift's Glibc module does not show.
    .target(name: "CFileSystem"),
    // SIMD kernels in C (16-bit float rows, low-bit codes on int8 activations, GGUF block
    // encoders): the vector
    // paths carry target attributes and are chosen at run time, so this target needs no
    // machine flags and a portable build still runs them where the CPU has them.
    .target(name: "CKernels"),
    // Checkpoint formats: dtypes, safetensors, shards, HDF5, model folders; safe output paths.
    .target(name: "QFormats", dependencies: ["CZstd", "CHDF5", "CFileSystem", "CKernels"]),
    // Numerics: linear algebra over BLAS/LAPACK, statistics, quantizers.
    .target(
      name: "QCompute", dependencies: ["QFormats", "CBLAS", "CLAPACK", "CCRC32C", "CKernels"], swiftSettings: kernelSettings),
    // The model engine: tokenizer, data, transformer forward and backward passes, images.
    .target(
      name: "QEngine", dependencies: ["QFormats", "QCompute", "CKernels", "CPNG", "CJPEG"],
      swiftSettings: kernelSettings),
    // What the four tools share: input handling, output formats, errors.
    .target(
      name: "QToolSupport",
      dependencies: [
        "QFormats", "QCompute", "QEngine", "CBLAS", "CKernels",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),

    .executableTarget(
      name: "qconvert",
      dependencies: [
        "QToolSupport", .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),
    .executableTarget(
      name: "qinspect",
      dependencies: [
        "QToolSupport", .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),
    .executableTarget(
      name: "qdiff",
      dependencies: [
        "QToolSupport", .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),
    .executableTarget(
      name: "lora-rebase",
      dependencies: [
        "QToolSupport", .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),

    .testTarget(name: "QFormatsTests", dependencies: ["QFormats"]),
    .testTarget(name: "QComputeTests", dependencies: ["QCompute", "CKernels"]),
    .testTarget(name: "QEngineTests", dependencies: ["QEngine", "CKernels"]),
    .testTarget(
      name: "QToolTests",
      dependencies: ["QToolSupport", "qconvert", "qinspect", "qdiff", "lora-rebase"]),
  ]
)
