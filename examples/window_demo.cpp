// Windowed sums over CSV lines `key,timestamp_ms,value`: event time from the
// second column with a watermark after every record (highest timestamp so
// far - out-of-orderness - 1), keyed by the first column, summing the third
// per window. Prints each firing as `key,window_start,window_end,sum` and
// each record dropped as too late as `late,key,timestamp_ms,value`.
//
//   window_demo [--input FILE] [--parallelism N] [--window tumbling|sliding|session]
//               [--size MS] [--slide MS] [--gap MS] [--out-of-orderness MS]
//               [--allowed-lateness MS]
//
// Reads standard input when no file is given. End of input emits the maximum
// watermark, so every window fires.

#include "example_args.hpp"
#include "sluice/sluice.hpp"

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

namespace {

using namespace sluice;
using namespace sluice::runtime;
using sluice::examples::example_args;
using sluice::examples::parse_int;

struct click {
  std::string key;
  int64_t ts = 0;
  int64_t value = 0;
  SLUICE_SERIALIZABLE(key, ts, value)
};

std::mutex out_mu;

void print_line(const std::string& line) {
  std::lock_guard<std::mutex> lock(out_mu);
  std::cout << line << '\n' << std::flush;
}

/// Parses `key,timestamp_ms,value`; throws with the offending line.
click parse(const std::string& line) {
  auto a = line.find(',');
  auto b = a == std::string::npos ? a : line.find(',', a + 1);
  click c;
  std::string rest = b == std::string::npos ? "" : line.substr(b + 1);
  if (!rest.empty() && rest.back() == '\r')
    rest.pop_back();
  if (b == std::string::npos || a == 0 || !parse_int(line.substr(a + 1, b - a - 1), c.ts) ||
      !parse_int(rest, c.value))
    throw std::invalid_argument("bad input line '" + line +
                                "': expected key,timestamp_ms,value with integer timestamp and value");
  c.key = line.substr(0, a);
  return c;
}

struct print_window final : process_window_function<std::string, click, std::string> {
  void process(const std::string& key, const window_context<time_window>& ctx,
               const std::vector<click>& elements, collector<std::string>& out) override {
    int64_t sum = 0;
    for (auto& e : elements)
      sum += e.value;
    out.collect(key + "," + std::to_string(ctx.window.start) + "," +
                std::to_string(ctx.window.end) + "," + std::to_string(sum));
  }
};

struct stdout_sink final : sink_function<std::string> {
  void invoke(std::string&& line) override { print_line(line); }
};

int usage(const char* prog) {
  std::cerr << "usage: " << prog
            << " [--input FILE] [--parallelism N] [--window tumbling|sliding|session]\n"
               "       [--size MS] [--slide MS] [--gap MS] [--out-of-orderness MS]"
               " [--allowed-lateness MS]\n";
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  std::string input;
  std::string kind = "tumbling";
  int64_t parallelism = 2, size = 10'000, slide = 5'000, gap = 5'000, ooo = 0, lateness = 0;
  example_args args(argc, argv);
  while (args.next()) {
    const auto& arg = args.flag();
    if (arg == "--input")
      input = args.text();
    else if (arg == "--window")
      kind = args.text();
    else if (arg == "--parallelism")
      parallelism = args.number(1);
    else if (arg == "--size")
      size = args.number(1);
    else if (arg == "--slide")
      slide = args.number(1);
    else if (arg == "--gap")
      gap = args.number(1);
    else if (arg == "--out-of-orderness")
      ooo = args.number(0);
    else if (arg == "--allowed-lateness")
      lateness = args.number(0);
    else if (arg == "--help" || arg == "-h")
      return usage(argv[0]), 0;
    else
      return std::cerr << "error: unknown argument '" << arg << "'\n", usage(argv[0]);
  }
  if (kind != "tumbling" && kind != "sliding" && kind != "session") {
    std::cerr << "error: --window must be tumbling, sliding or session, got '" << kind << "'\n";
    return 2;
  }

  std::vector<std::string> lines;
  {
    std::ifstream file;
    if (!input.empty()) {
      file.open(input);
      if (!file) {
        std::cerr << "error: cannot open input file '" << input << "'\n";
        return 1;
      }
    }
    std::istream& in = input.empty() ? std::cin : file;
    for (std::string line; std::getline(in, line);)
      if (!line.empty() && line != "\r")
        lines.push_back(line);
  }

  auto strategy =
    watermark_strategy<click>::for_generator([ooo] {
      auto highest = std::make_shared<int64_t>(INT64_MIN);
      return std::make_unique<punctuated_watermarks<click>>(
        [ooo, highest](const click&, int64_t ts) -> std::optional<int64_t> {
          *highest = std::max(*highest, ts);
          return *highest - ooo - 1;
        });
    }).with_timestamp_assigner([](const click& c) { return c.ts; });

  stream_environment env;
  env.set_parallelism(static_cast<int32_t>(parallelism));
  auto src = env.from_collection(std::move(lines));
  src.set_parallelism(1);
  auto parsed = src.map([](const std::string& l) { return parse(l); }).name("Parse");
  parsed.set_parallelism(1);
  auto stamped = parsed.assign_timestamps_and_watermarks(strategy);
  stamped.set_parallelism(1);
  auto keyed = stamped.key_by([](const click& c) { return c.key; });
  output_tag<click> late("late");
  auto sum = [](const click& a, const click& b) { return click{a.key, b.ts, a.value + b.value}; };
  auto finish = [&](auto windowed) {
    windowed.allowed_lateness(std::chrono::milliseconds(lateness)).side_output_late_data(late);
    return windowed.reduce(sum, print_window{});
  };
  data_stream<std::string> out = [&] {
    using std::chrono::milliseconds;
    if (kind == "sliding")
      return finish(keyed.window(sliding_event_time_windows(milliseconds(size), milliseconds(slide))));
    if (kind == "session")
      return finish(keyed.window(event_time_session_windows(milliseconds(gap))));
    return finish(keyed.window(tumbling_event_time_windows(milliseconds(size))));
  }();
  out.add_sink(stdout_sink{}, "Print");
  out.get_side_output(late)
    .map([](const click& c) {
      return "late," + c.key + "," + std::to_string(c.ts) + "," + std::to_string(c.value);
    })
    .name("Late")
    .add_sink(stdout_sink{}, "Print late");
  auto r = env.execute("window demo");
  if (!r.ok()) {
    std::cerr << "error: " << r.error << "\n";
    return 1;
  }
  return 0;
}
