import CHDF5

extension HDF5Writer {
  /// The type a dtype is stored as, and the `dtype` attribute that marks types HDF5 lacks.
  ///
  /// F16 uses `H5T_IEEE_F16LE` where libhdf5 has it, else the type h5py builds for float16:
  /// a copy of `H5T_IEEE_F32LE` with sign bit 15, 5 exponent bits at 10, 10 mantissa bits, bias 15.
  static func storedType(of dtype: DType, context: HDF5Context) throws(HDF5Error) -> (
    HDF5Object, String?
  ) {
    func predefined(_ id: hid_t) -> HDF5Object { HDF5Object(id, owned: false) }
    switch dtype {
    case .f64: return (predefined(chdf5_t_ieee_f64le()), nil)
    case .f32: return (predefined(chdf5_t_ieee_f32le()), nil)
    case .f16:
      let native = chdf5_t_ieee_f16le()
      if native >= 0 { return (predefined(native), nil) }
      let half = try context.open("H5Tcopy", H5Tcopy(chdf5_t_ieee_f32le()))
      try context.check("H5Tset_fields", H5Tset_fields(half.id, 15, 10, 5, 0, 10))
      try context.check("H5Tset_size", H5Tset_size(half.id, 2))
      try context.check("H5Tset_ebias", H5Tset_ebias(half.id, 15))
      return (half, nil)
    case .bf16: return (predefined(chdf5_t_std_u16le()), dtype.rawValue)
    case .f8E4M3, .f8E5M2: return (predefined(chdf5_t_std_u8le()), dtype.rawValue)
    case .i64: return (predefined(chdf5_t_std_i64le()), nil)
    case .i32: return (predefined(chdf5_t_std_i32le()), nil)
    case .i16: return (predefined(chdf5_t_std_i16le()), nil)
    case .i8: return (predefined(chdf5_t_std_i8le()), nil)
    case .u64: return (predefined(chdf5_t_std_u64le()), nil)
    case .u32: return (predefined(chdf5_t_std_u32le()), nil)
    case .u16: return (predefined(chdf5_t_std_u16le()), nil)
    case .u8: return (predefined(chdf5_t_std_u8le()), nil)
    case .bool:
      // h5py's numpy bool: an enum over a signed byte with members FALSE and TRUE.
      let type = try context.open("H5Tenum_create", H5Tenum_create(chdf5_t_native_int8()))
      var no: Int8 = 0
      var yes: Int8 = 1
      try context.check("H5Tenum_insert", H5Tenum_insert(type.id, "FALSE", &no))
      try context.check("H5Tenum_insert", H5Tenum_insert(type.id, "TRUE", &yes))
      return (type, nil)
    }
  }

  /// Creates the dataset at `context.object` and writes the bytes unconverted (file and memory types match).
  ///
  /// The corresponding C functions are `H5Dcreate2` and `H5Dwrite`.
  static func writeDataset(
    in file: HDF5Object, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer,
    context: HDF5Context
  ) throws(HDF5Error) {
    let (type, marker) = try storedType(of: dtype, context: context)
    let space: HDF5Object
    if shape.isEmpty {
      space = try context.open("H5Screate", H5Screate(H5S_SCALAR))
    } else {
      let dims = shape.map { hsize_t($0) }
      space = try context.open("H5Screate_simple", H5Screate_simple(Int32(dims.count), dims, nil))
    }
    let dataset = try context.open(
      "H5Dcreate2",
      H5Dcreate2(
        file.id, context.object, type.id, space.id, chdf5_p_default(), chdf5_p_default(),
        chdf5_p_default()))
    if let marker {
      try writeStringAttribute("dtype", value: marker, on: dataset.id, context: context)
    }
    if !bytes.isEmpty {
      try context.check(
        "H5Dwrite",
        H5Dwrite(
          dataset.id, type.id, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), bytes.baseAddress))
    }
  }

  /// Writes a scalar variable-length UTF-8 string attribute, which h5py reads as `str`.
  ///
  /// The corresponding C functions are `H5Acreate2` and `H5Awrite`.
  static func writeStringAttribute(
    _ name: String, value: String, on object: hid_t, context: HDF5Context
  ) throws(HDF5Error) {
    let attributeContext = HDF5Context(path: context.path, object: context.object + "@" + name)
    let type = try attributeContext.open("H5Tcopy", H5Tcopy(chdf5_t_c_s1()))
    try attributeContext.check("H5Tset_size", H5Tset_size(type.id, chdf5_variable_size()))
    try attributeContext.check("H5Tset_cset", H5Tset_cset(type.id, H5T_CSET_UTF8))
    let space = try attributeContext.open("H5Screate", H5Screate(H5S_SCALAR))
    let attribute = try attributeContext.open(
      "H5Acreate2",
      H5Acreate2(object, name, type.id, space.id, chdf5_p_default(), chdf5_p_default()))
    let status = value.withCString { pointer in
      var cString: UnsafePointer<CChar>? = pointer
      return H5Awrite(attribute.id, type.id, &cString)
    }
    try attributeContext.check("H5Awrite", status)
  }
}
