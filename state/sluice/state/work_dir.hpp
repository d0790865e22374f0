#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

/// Working directories that outlive a killed process. A process keeps its
/// working files (RocksDB instances, a TaskManager's job libraries) in a
/// directory named `<prefix>-<host>-<pid>`; SIGKILL removes nothing, so the
/// next process with the same prefix and root removes the directories of
/// processes that are gone.
namespace sluice::state {

/// `<prefix>-<host>-<pid>` for this process. The host name has each
/// character other than a letter, digit, `.` or `_` replaced by `_`, so the
/// name splits back unambiguously.
[[nodiscard]] std::string process_dir_name(std::string_view prefix);

/// Removes the directories directly under `root` named
/// `<prefix>-<host>-<pid>` or `<prefix>-<host>-<pid>-<anything>` whose host
/// is this one, whose pid is not this process's, no process with that pid
/// exists, and no process holds a lock on a `LOCK` file in it or one level
/// down (RocksDB locks one per open instance: a live process in another PID
/// namespace that shares the directory keeps its files). Returns how many
/// it removed; never throws.
std::size_t remove_stale_process_dirs(const std::filesystem::path& root, std::string_view prefix);

/// A new directory `<root>/<prefix>-<host>-<pid>-XXXXXX` (mkdtemp; `root`
/// is created if missing), after removing the stale ones of `prefix` under
/// `root`. On failure returns an empty path and sets `ec`.
[[nodiscard]] std::filesystem::path make_process_dir(const std::filesystem::path& root,
                                                     std::string_view prefix,
                                                     std::error_code& ec);

} // namespace sluice::state
