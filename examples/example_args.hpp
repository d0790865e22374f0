#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>

/// Command-line handling shared by the examples: integer parsing and a
/// reader of "--flag value" arguments with clear errors.
namespace sluice::examples {

/// Parses a whole string as a base-10 integer.
inline bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty())
    return false;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end != s.c_str() + s.size())
    return false;
  out = v;
  return true;
}

/// Walks argv: `while (args.next())`, compare `args.flag()`, then take its
/// value with text() or number(). A missing or bad value ends the program
/// with exit code 2 and "error: <flag> needs ...".
class example_args {
public:
  example_args(int argc, char** argv) : argc_(argc), argv_(argv) {}
  /// Moves to the next flag; false at the end.
  bool next() {
    if (++i_ >= argc_)
      return false;
    flag_ = argv_[i_];
    return true;
  }
  [[nodiscard]] const std::string& flag() const noexcept { return flag_; }
  /// The current flag's value.
  std::string text() {
    if (i_ + 1 >= argc_)
      fail("a value");
    return argv_[++i_];
  }
  /// The current flag's value as an integer >= min.
  int64_t number(int64_t min) {
    int64_t v = 0;
    if (i_ + 1 >= argc_ || !parse_int(argv_[i_ + 1], v) || v < min)
      fail("a number >= " + std::to_string(min));
    ++i_;
    return v;
  }

private:
  [[noreturn]] void fail(const std::string& what) const {
    std::cerr << "error: " << flag_ << " needs " << what << "\n";
    std::exit(2);
  }

  int argc_;
  char** argv_;
  int i_ = 0;
  std::string flag_;
};

} // namespace sluice::examples
