// Streaming word count: reads a text file, splits it into lower-case words
// (every character that is not an ASCII letter separates words), counts
// each word and prints every updated count as (word,count) as it arrives.
//
//   word_count [--input FILE] [--parallelism N]

#include "sluice/sluice.hpp"
#include "word_count.hpp"

#include <cstdlib>
#include <iostream>
#include <string>
#include <utility>

#ifndef SLUICE_EXAMPLE_DATA
#define SLUICE_EXAMPLE_DATA "examples/data"
#endif

namespace {

using sluice::examples::tokenizer;
using sluice::examples::word_count;

int usage(const char* prog) {
  std::cerr << "usage: " << prog << " [--input FILE] [--parallelism N]\n";
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  std::string input = SLUICE_EXAMPLE_DATA "/words.txt";
  int parallelism = 2;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg == "--input" || arg == "-i") && i + 1 < argc) {
      input = argv[++i];
    } else if ((arg == "--parallelism" || arg == "-p") && i + 1 < argc) {
      char* end = nullptr;
      long p = std::strtol(argv[++i], &end, 10);
      if (end == argv[i] || *end != '\0' || p < 1 || p > 1024) {
        std::cerr << "error: --parallelism needs a number between 1 and 1024, got '" << argv[i]
                  << "'\n";
        return 2;
      }
      parallelism = static_cast<int>(p);
    } else if (arg == "--help" || arg == "-h") {
      usage(argv[0]);
      return 0;
    } else {
      std::cerr << "error: unknown argument '" << arg << "'\n";
      return usage(argv[0]);
    }
  }

  sluice::stream_environment env;
  env.set_parallelism(parallelism);
  env.read_text_file(input)
    .flat_map<word_count>(tokenizer{})
    .name("Tokenizer")
    .key_by([](const word_count& wc) { return wc.first; })
    .sum(&word_count::second)
    .print();

  auto result = env.execute("Streaming WordCount");
  if (!result.ok()) {
    std::cerr << "job " << sluice::runtime::to_string(result.status) << ": " << result.error
              << "\n";
    return 1;
  }
  return 0;
}
