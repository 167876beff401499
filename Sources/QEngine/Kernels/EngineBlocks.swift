/// Element-wise work in QEngine splits into blocks of at least 2^13 elements: a training step's
/// loss rows, optimizer chunks and quantizer rows are far smaller than a quantized matrix.
let engineBlockElements = 1 << 13
