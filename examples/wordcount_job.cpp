// The streaming word count as a job library: `sluice run` uploads it to a
// JobManager, which runs it on its cluster. Same words and counts as
// examples/word_count; every updated count goes to the file sink as a
// "(word,count)" line.
//
//   sluice run [-p N] build/examples/wordcount_job.so [--input FILE]
//              [--parallelism N] [--output DIR]
//
// Without --output the counts are printed on the JobManager's stdout.

#include "sluice/job.hpp"
#include "word_count.hpp"

#include <cstdlib>
#include <string>

#ifndef SLUICE_EXAMPLE_DATA
#define SLUICE_EXAMPLE_DATA "examples/data"
#endif

extern "C" int sluice_job_main(int argc, char** argv, sluice::job_context& ctx) {
  using sluice::examples::tokenizer;
  using sluice::examples::word_count;
  std::string input = SLUICE_EXAMPLE_DATA "/words.txt";
  std::string output;
  int parallelism = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    bool has_value = i + 1 < argc;
    if ((arg == "--input" || arg == "-i") && has_value) {
      input = argv[++i];
    } else if ((arg == "--output" || arg == "-o") && has_value) {
      output = argv[++i];
    } else if ((arg == "--parallelism" || arg == "-p") && has_value) {
      char* end = nullptr;
      long p = std::strtol(argv[++i], &end, 10);
      if (end == argv[i] || *end != '\0' || p < 1 || p > 1024) {
        ctx.fail(std::string("--parallelism needs a number between 1 and 1024, got '") +
                 argv[i] + "'");
        return 2;
      }
      parallelism = static_cast<int>(p);
    } else {
      ctx.fail("unknown argument '" + arg +
               "' (usage: [--input FILE] [--parallelism N] [--output DIR])");
      return 2;
    }
  }

  auto& env = ctx.env();
  if (parallelism > 0)
    env.set_parallelism(parallelism);
  auto counts = env.read_text_file(input)
                  .flat_map<word_count>(tokenizer{})
                  .name("Tokenizer")
                  .key_by([](const word_count& wc) { return wc.first; })
                  .sum(&word_count::second);
  if (output.empty()) {
    counts.print();
  } else {
    sluice::file_sink_options sink;
    sink.directory = output;
    counts.sink_to_files(sink).uid("word-counts");
  }
  ctx.set_job_name("Streaming WordCount");
  return 0;
}
