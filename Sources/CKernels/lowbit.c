// Low-bit codes times int8 activations: integer dot products per block of 32 columns, as
// ggml's vec_dot kernels do, vector (AVX2 maddubs/madd) and scalar.
#include <math.h>

#include "CKernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QK_X86 1
#define QK_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

size_t qk_int8_chunk_columns(int bits) { return (size_t)32 * (size_t)(8 / bits); }

/// Where column `column` of a row sits in the int8 layout.
static inline size_t qk_position(size_t column, int bits, size_t columns) {
  size_t per_byte = (size_t)(8 / bits);
  size_t chunk = 32 * per_byte;
  size_t whole = columns / chunk * chunk;
  if (column >= whole) return column;
  size_t within = column % chunk;
  return column - within + (within % per_byte) * 32 + within / per_byte;
}

void qk_quantize_activations(
  const float *x, size_t columns, int bits, int8_t *quantized, float *block_scales, float *block_sums) {
  for (size_t block = 0; block < columns / 32; block++) {
    const float *xs = x + block * 32;
    float largest = 0;
    for (int i = 0; i < 32; i++) largest = fmaxf(largest, fabsf(xs[i]));
    float scale = largest / 127.0f;
    float inverse = scale > 0 ? 1.0f / scale : 0.0f;
    block_scales[block] = scale;
    int sum = 0;
    for (int i = 0; i < 32; i++) {
      size_t column = block * 32 + (size_t)i;
      int8_t q = (int8_t)roundf(xs[i] * inverse);
      quantized[qk_position(column, bits, columns)] = q;
      sum += q;
    }
    block_sums[block] = scale * (float)sum;
  }
}

static inline int qk_code(const uint8_t *row, size_t column, int bits) {
  size_t bit = column * (size_t)bits;
  return (row[bit >> 3] >> (bit & 7)) & ((1 << bits) - 1);
}

/// The offset part of a row's product: each group's bias (or `-scale * zero`) times its sum of x.
static inline float qk_offset_term(
  const float *scales, const float *offsets, int offset_is_bias, size_t groups, const float *sums) {
  float term = 0;
  for (size_t g = 0; g < groups; g++) term += (offset_is_bias ? offsets[g] : -scales[g] * offsets[g]) * sums[g];
  return term;
}

/// Blocks [block_begin, columns / 32) of one row and token, column by column.
static inline float qk_blocks_scalar(
  const uint8_t *row, int bits, size_t columns, size_t group_size, const float *scales,
  size_t block_begin, const int8_t *q, const float *block_scales) {
  float total = 0;
  for (size_t block = block_begin; block < columns / 32; block++) {
    int sum = 0;
    for (size_t column = block * 32; column < block * 32 + 32; column++) {
      sum += qk_code(row, column, bits) * q[qk_position(column, bits, columns)];
    }
    total += scales[block * 32 / group_size] * block_scales[block] * (float)sum;
  }
  return total;
}

void qk_lowbit_rows_dot_scalar(
  const uint8_t *codes, size_t bytes_per_row, int bits, size_t columns, size_t group_size,
  const float *scales, const float *offsets, int offset_is_bias, size_t row_begin, size_t row_end,
  const int8_t *quantized, const float *block_scales, const float *group_sums, size_t tokens,
  float *out, size_t out_stride) {
  size_t groups = columns / group_size;
  for (size_t row = row_begin; row < row_end; row++) {
    const uint8_t *row_codes = codes + row * bytes_per_row;
    const float *row_scales = scales + row * groups;
    for (size_t t = 0; t < tokens; t++) {
      float total = qk_blocks_scalar(
        row_codes, bits, columns, group_size, row_scales, 0, quantized + t * columns,
        block_scales + t * (columns / 32));
      total += qk_offset_term(row_scales, offsets + row * groups, offset_is_bias, groups, group_sums + t * groups);
      out[t * out_stride + row] = total;
    }
  }
}

#ifdef QK_X86
QK_AVX2 static inline float qk_sum8i(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/// 32 bytes of codes against their chunk of int8 activations: eight int32 sums, lane `i`
/// holding bytes 4i..4i+3, which lie in block `i * (8 / bits) / 8` of the chunk. The 16-bit
/// pair sums of maddubs stay far from saturation: 2 * 15 * 127 for 4-bit codes, summed twice.
QK_AVX2 static inline __m256i qk_chunk_dot(__m256i v, const int8_t *q, int bits) {
  const __m256i ones = _mm256_set1_epi16(1);
  if (bits == 4) {
    const __m256i mask = _mm256_set1_epi8(0x0F);
    __m256i low = _mm256_and_si256(v, mask);
    __m256i high = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
    __m256i pairs = _mm256_add_epi16(
      _mm256_maddubs_epi16(low, _mm256_loadu_si256((const __m256i *)q)),
      _mm256_maddubs_epi16(high, _mm256_loadu_si256((const __m256i *)(q + 32))));
    return _mm256_madd_epi16(pairs, ones);
  }
  if (bits == 2) {
    const __m256i mask = _mm256_set1_epi8(0x03);
    __m256i pairs = _mm256_maddubs_epi16(_mm256_and_si256(v, mask), _mm256_loadu_si256((const __m256i *)q));
    pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(
      _mm256_and_si256(_mm256_srli_epi16(v, 2), mask), _mm256_loadu_si256((const __m256i *)(q + 32))));
    pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(
      _mm256_and_si256(_mm256_srli_epi16(v, 4), mask), _mm256_loadu_si256((const __m256i *)(q + 64))));
    pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(
      _mm256_and_si256(_mm256_srli_epi16(v, 6), mask), _mm256_loadu_si256((const __m256i *)(q + 96))));
    return _mm256_madd_epi16(pairs, ones);
  }
  // 8-bit codes up to 255 would saturate maddubs's pair sums: widen both sides to 16 bits.
  __m128i q128_low = _mm_loadu_si128((const __m128i *)q);
  __m128i q128_high = _mm_loadu_si128((const __m128i *)(q + 16));
  __m256i low = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(v)), _mm256_cvtepi8_epi16(q128_low));
  __m256i high = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_extracti128_si256(v, 1)), _mm256_cvtepi8_epi16(q128_high));
  return _mm256_add_epi32(low, high);
}

/// Each int32 lane's scale: its block's activation scale times its group's weight scale.
QK_AVX2 static inline __m256 qk_chunk_scales(
  int bits, size_t first_block, size_t group_size, const float *scales, const float *block_scales) {
  #define QK_BLOCK_SCALE(b) (scales[(first_block + (b)) * 32 / group_size] * block_scales[first_block + (b)])
  if (bits == 4) {
    return _mm256_set_m128(_mm_set1_ps(QK_BLOCK_SCALE(1)), _mm_set1_ps(QK_BLOCK_SCALE(0)));
  }
  if (bits == 2) {
    float s0 = QK_BLOCK_SCALE(0), s1 = QK_BLOCK_SCALE(1), s2 = QK_BLOCK_SCALE(2), s3 = QK_BLOCK_SCALE(3);
    return _mm256_setr_ps(s0, s0, s1, s1, s2, s2, s3, s3);
  }
  return _mm256_set1_ps(QK_BLOCK_SCALE(0));
  #undef QK_BLOCK_SCALE
}

QK_AVX2 static void qk_lowbit_rows_dot_avx2(
  const uint8_t *codes, size_t bytes_per_row, int bits, size_t columns, size_t group_size,
  const float *scales, const float *offsets, int offset_is_bias, size_t row_begin, size_t row_end,
  const int8_t *quantized, const float *block_scales, const float *group_sums, size_t tokens,
  float *out, size_t out_stride) {
  size_t groups = columns / group_size;
  size_t chunk = qk_int8_chunk_columns(bits);
  size_t chunks = columns / chunk;
  size_t blocks_per_chunk = chunk / 32;
  for (size_t row = row_begin; row < row_end; row++) {
    const uint8_t *row_codes = codes + row * bytes_per_row;
    const float *row_scales = scales + row * groups;
    for (size_t t = 0; t < tokens; t++) {
      const int8_t *q = quantized + t * columns;
      const float *d = block_scales + t * (columns / 32);
      __m256 even = _mm256_setzero_ps(), odd = _mm256_setzero_ps();
      size_t index = 0;
      for (; index + 2 <= chunks; index += 2) {
        __m256i v0 = _mm256_loadu_si256((const __m256i *)(row_codes + index * 32));
        __m256i v1 = _mm256_loadu_si256((const __m256i *)(row_codes + index * 32 + 32));
        __m256i sum0 = qk_chunk_dot(v0, q + index * chunk, bits);
        __m256i sum1 = qk_chunk_dot(v1, q + index * chunk + chunk, bits);
        even = _mm256_fmadd_ps(
          _mm256_cvtepi32_ps(sum0), qk_chunk_scales(bits, index * blocks_per_chunk, group_size, row_scales, d), even);
        odd = _mm256_fmadd_ps(
          _mm256_cvtepi32_ps(sum1), qk_chunk_scales(bits, (index + 1) * blocks_per_chunk, group_size, row_scales, d), odd);
      }
      if (index < chunks) {
        __m256i v0 = _mm256_loadu_si256((const __m256i *)(row_codes + index * 32));
        __m256i sum0 = qk_chunk_dot(v0, q + index * chunk, bits);
        even = _mm256_fmadd_ps(
          _mm256_cvtepi32_ps(sum0), qk_chunk_scales(bits, index * blocks_per_chunk, group_size, row_scales, d), even);
      }
      float total = qk_sum8i(_mm256_add_ps(even, odd));
      total += qk_blocks_scalar(row_codes, bits, columns, group_size, row_scales, chunks * blocks_per_chunk, q, d);
      total += qk_offset_term(row_scales, offsets + row * groups, offset_is_bias, groups, group_sums + t * groups);
      out[t * out_stride + row] = total;
    }
  }
}
#endif

void qk_lowbit_rows_dot(
  const uint8_t *codes, size_t bytes_per_row, int bits, size_t columns, size_t group_size,
  const float *scales, const float *offsets, int offset_is_bias, size_t row_begin, size_t row_end,
  const int8_t *quantized, const float *block_scales, const float *group_sums, size_t tokens,
  float *out, size_t out_stride) {
#ifdef QK_X86
  if (qk_cpu_has_avx2()) {
    qk_lowbit_rows_dot_avx2(
      codes, bytes_per_row, bits, columns, group_size, scales, offsets, offset_is_bias, row_begin,
      row_end, quantized, block_scales, group_sums, tokens, out, out_stride);
    return;
  }
#endif
  qk_lowbit_rows_dot_scalar(
    codes, bytes_per_row, bits, columns, group_size, scales, offsets, offset_is_bias, row_begin, row_end,
    quantized, block_scales, group_sums, tokens, out, out_stride);
}
