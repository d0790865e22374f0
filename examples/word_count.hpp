#pragma once

#include "sluice/runtime/function.hpp"

#include <cstdint>
#include <string>
#include <utility>

namespace sluice::examples {

using word_count = std::pair<std::string, int64_t>;

/// Splits a line into lower-case words: every character that is not an
/// ASCII letter separates words. Emits (word, 1) per word.
struct tokenizer {
  void operator()(const std::string& line, runtime::collector<word_count>& out) const {
    std::string word;
    for (char c : line) {
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        word += static_cast<char>(c | 0x20);
      } else if (!word.empty()) {
        out.collect(word_count{std::move(word), 1});
        word.clear();
      }
    }
    if (!word.empty())
      out.collect(word_count{std::move(word), 1});
  }
};

} // namespace sluice::examples
