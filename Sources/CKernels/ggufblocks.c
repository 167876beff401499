// GGUF's Q8_0 and Q4_0 block encoders (ggml's quantize_row_q8_0_ref / _q4_0_ref), vectorised
// for AVX2 + F16C. They restate, bit for bit, the scalar encoders in QCompute's
// GGUFBlocks+Legacy.swift, which stay the reference and the path on other CPUs.
#include <string.h>

#include "CKernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QK_X86 1
#define QK_AVX2 __attribute__((target("avx2,fma,f16c")))

/// |x| with NaN lanes as 0: the scalar encoders never take a NaN as the block's largest value.
QK_AVX2 static inline __m256 qk_abs_no_nan(__m256 x) {
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  return _mm256_and_ps(_mm256_and_ps(x, magnitude), _mm256_cmp_ps(x, x, _CMP_ORD_Q));
}

QK_AVX2 static inline float qk_max8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

/// The f16 bits of `value`, rounded to nearest even as Swift's `Float16(_:)` rounds.
QK_AVX2 static inline uint16_t qk_to_half(float value) {
  return (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(value), _MM_FROUND_TO_NEAREST_INT), 0);
}

/// Packs 32 int32 lanes to 32 bytes in lane order: as signed bytes (lanes in int8's range), or
/// as unsigned ones (lanes in uint8's range).
QK_AVX2 static inline __m256i qk_pack_bytes(__m256i a, __m256i b, __m256i c, __m256i d, int is_unsigned) {
  // The packs work within 128-bit halves: the 32-bit pieces come out interleaved, put back in
  // order after.
  __m256i ab = _mm256_packs_epi32(a, b);
  __m256i cd = _mm256_packs_epi32(c, d);
  __m256i bytes = is_unsigned ? _mm256_packus_epi16(ab, cd) : _mm256_packs_epi16(ab, cd);
  return _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

QK_AVX2 static void qk_encode_q8_0_avx2(const float *x, size_t blocks, uint8_t *out) {
  const __m256 half = _mm256_set1_ps(0.5f);
  const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 low = _mm256_set1_ps(-128.0f), high = _mm256_set1_ps(127.0f);
  for (size_t b = 0; b < blocks; b++, x += 32, out += 34) {
    __m256 v[4];
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
      v[k] = _mm256_loadu_ps(x + 8 * k);
      m = _mm256_max_ps(m, qk_abs_no_nan(v[k]));
    }
    float d = qk_max8(m) / 127.0f;
    float inverse = d != 0 ? 1.0f / d : 0.0f;
    uint16_t dh = qk_to_half(d);
    memcpy(out, &dh, 2);
    const __m256 id = _mm256_set1_ps(inverse);
    __m256i q[4];
    for (int k = 0; k < 4; k++) {
      __m256 t = _mm256_mul_ps(v[k], id);
      // Round half away from zero, exactly: truncate, then step away when the dropped part is
      // at least a half.
      __m256 whole = _mm256_round_ps(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      __m256 dropped = _mm256_andnot_ps(sign, _mm256_sub_ps(t, whole));
      __m256 step = _mm256_and_ps(_mm256_cmp_ps(dropped, half, _CMP_GE_OQ), _mm256_or_ps(one, _mm256_and_ps(t, sign)));
      __m256 rounded = _mm256_add_ps(whole, step);
      // max_ps gives its second operand for NaN, so NaN lanes become -128 here: zeroed below.
      __m256 clamped = _mm256_min_ps(_mm256_max_ps(rounded, low), high);
      __m256i codes = _mm256_cvttps_epi32(clamped);
      q[k] = _mm256_and_si256(codes, _mm256_castps_si256(_mm256_cmp_ps(t, t, _CMP_ORD_Q)));
    }
    _mm256_storeu_si256((__m256i *)(out + 2), qk_pack_bytes(q[0], q[1], q[2], q[3], 0));
  }
}

QK_AVX2 static void qk_encode_q4_0_avx2(const float *x, size_t blocks, uint8_t *out) {
  const __m256 offset = _mm256_set1_ps(8.5f);
  const __m256 low = _mm256_set1_ps(-128.0f), high = _mm256_set1_ps(127.0f);
  const __m256i zero = _mm256_setzero_si256(), fifteen = _mm256_set1_epi32(15);
  for (size_t b = 0; b < blocks; b++, x += 32, out += 18) {
    __m256 v[4], a[4];
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
      v[k] = _mm256_loadu_ps(x + 8 * k);
      a[k] = qk_abs_no_nan(v[k]);
      m = _mm256_max_ps(m, a[k]);
    }
    float largest = qk_max8(m);
    // The scalar encoder keeps the first value of the largest magnitude, with its sign, and
    // +0 when every magnitude is 0.
    float signed_max = 0;
    if (largest > 0) {
      __m256 target = _mm256_set1_ps(largest);
      uint32_t hits = 0;
      for (int k = 0; k < 4; k++) {
        hits |= (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(a[k], target, _CMP_EQ_OQ)) << (8 * k);
      }
      signed_max = x[__builtin_ctz(hits)];
    }
    float d = signed_max / -8.0f;
    float inverse = d != 0 ? 1.0f / d : 0.0f;
    uint16_t dh = qk_to_half(d);
    memcpy(out, &dh, 2);
    const __m256 id = _mm256_set1_ps(inverse);
    __m256i q[4];
    for (int k = 0; k < 4; k++) {
      // Multiply, then add: the scalar code rounds the product before the offset (no FMA).
      __m256 shifted = _mm256_add_ps(_mm256_mul_ps(v[k], id), offset);
      // NaN becomes -128 (max_ps's second operand), then 0, as the scalar code's NaN does.
      __m256 clamped = _mm256_min_ps(_mm256_max_ps(shifted, low), high);
      __m256i codes = _mm256_cvttps_epi32(clamped);
      q[k] = _mm256_min_epi32(_mm256_max_epi32(codes, zero), fifteen);
    }
    // Byte j holds code j in its low nibble and code j + 16 in its high one.
    __m256i first = _mm256_or_si256(q[0], _mm256_slli_epi32(q[2], 4));
    __m256i second = _mm256_or_si256(q[1], _mm256_slli_epi32(q[3], 4));
    __m256i bytes = qk_pack_bytes(first, second, zero, zero, 1);
    _mm_storeu_si128((__m128i *)(out + 2), _mm256_castsi256_si128(bytes));
  }
}
#endif

int qk_encode_q8_0(const float *x, size_t blocks, uint8_t *out) {
#ifdef QK_X86
  if (qk_cpu_has_avx2()) {
    qk_encode_q8_0_avx2(x, blocks, out);
    return 1;
  }
#endif
  (void)x, (void)blocks, (void)out;
  return 0;
}

int qk_encode_q4_0(const float *x, size_t blocks, uint8_t *out) {
#ifdef QK_X86
  if (qk_cpu_has_avx2()) {
    qk_encode_q4_0_avx2(x, blocks, out);
    return 1;
  }
#endif
  (void)x, (void)blocks, (void)out;
  return 0;
}
