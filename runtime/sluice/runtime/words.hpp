#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

/// Copies of small trivial records that the CPU can store-forward.
namespace sluice::runtime {

/// Records copied and destroyed trivially and made of whole 8-byte words:
/// plain structs of numbers, and pairs of them (std::pair's assignment is
/// user-defined, but its copy is a copy of its bytes).
template <class T>
constexpr bool word_record_v = std::is_trivially_copy_constructible_v<T> &&
                               std::is_trivially_destructible_v<T> && sizeof(T) % 8 == 0 &&
                               alignof(T) >= 8;

/// Copies `src` into `dst` one 8-byte word at a time, each through a
/// register. Left alone, the compiler merges the words into one 16-byte
/// vector copy; when the source was just written in 8-byte parts, or a part
/// of the copy is updated right after, that wide access cannot be forwarded
/// from the pending stores and waits for them to retire (the stall a keyed
/// fold hit on every record: ~10 % of bench (b)).
template <class T>
inline void copy_words(T& dst, const T& src) noexcept {
  static_assert(word_record_v<T>, "copy_words needs a trivial record of 8-byte words");
  const auto* s = reinterpret_cast<const unsigned char*>(&src);
  auto* d = reinterpret_cast<unsigned char*>(&dst);
  for (size_t i = 0; i < sizeof(T); i += 8) {
    uint64_t w;
    std::memcpy(&w, s + i, 8);
#if defined(__GNUC__)
    asm("" : "+r"(w)); // keeps the word in a general register: no merging
#endif
    std::memcpy(d + i, &w, 8);
  }
}

} // namespace sluice::runtime
