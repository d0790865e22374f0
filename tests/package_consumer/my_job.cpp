// A job library built outside sluice's tree against find_package(sluice):
// counts the words of a few fixed lines into the exactly-once file sink.
//
//   sluice run my_job.so --output DIR

#include "sluice/job.hpp"

#include <cstdint>
#include <string>
#include <utility>

namespace {

using word_count = std::pair<std::string, int64_t>;

struct split_words {
  void operator()(const std::string& line, sluice::runtime::collector<word_count>& out) const {
    std::string word;
    for (char c : line + " ") {
      if (c != ' ') {
        word += c;
      } else if (!word.empty()) {
        out.collect(word_count{std::move(word), 1});
        word.clear();
      }
    }
  }
};

} // namespace

extern "C" int sluice_job_main(int argc, char** argv, sluice::job_context& ctx) {
  if (argc != 3 || std::string(argv[1]) != "--output") {
    ctx.fail("usage: --output DIR");
    return 2;
  }
  sluice::file_sink_options sink;
  sink.directory = argv[2];
  ctx.env()
      .from_elements<std::string>("to be or not to be", "that is the question", "to be")
      .flat_map<word_count>(split_words{})
      .key_by([](const word_count& wc) { return wc.first; })
      .sum(&word_count::second)
      .sink_to_files(sink);
  ctx.set_job_name("out-of-tree word count");
  return 0;
}
