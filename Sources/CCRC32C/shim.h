#ifndef CCRC32C_SHIM_H
#define CCRC32C_SHIM_H
// The CPU's CRC-32C instruction (SSE4.2's crc32), which Swift cannot name: about ten times the
// table-driven loop. Compiled for SSE4.2 by a target attribute, so the package builds for the
// architecture's baseline and QCompute calls it only where ccrc32c_hardware() says the CPU has it.
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
/// The CRC-32C register after `count` more bytes (no initial or final inversion).
__attribute__((target("sse4.2"))) static inline uint32_t ccrc32c_update(uint32_t state, const uint8_t *bytes,
                                                                         size_t count) {
  uint64_t crc = state;
  while (count >= 8) {
    uint64_t word;
    memcpy(&word, bytes, 8);
    crc = __builtin_ia32_crc32di(crc, word);
    bytes += 8;
    count -= 8;
  }
  uint32_t tail = (uint32_t)crc;
  while (count > 0) {
    tail = __builtin_ia32_crc32qi(tail, *bytes);
    bytes += 1;
    count -= 1;
  }
  return tail;
}

/// Whether this CPU has SSE4.2's crc32 instruction.
static inline int ccrc32c_hardware(void) { return __builtin_cpu_supports("sse4.2"); }
#else
static inline uint32_t ccrc32c_update(uint32_t state, const uint8_t *bytes, size_t count) {
  (void)bytes;
  (void)count;
  return state;
}
static inline int ccrc32c_hardware(void) { return 0; }
#endif
#endif
