#include "sluice/state/native_snapshot.hpp"

#include <algorithm>
#include <filesystem>
#include <set>

namespace sluice::state {

void native_upload_ledger::uploaded(int64_t id, const std::vector<native_file_ref>& files) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& p = pending_[id];
  for (const auto& f : files)
    if (f.shared)
      p.push_back(f);
}

void native_upload_ledger::confirm(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pending_.find(id);
  if (it != pending_.end())
    for (auto& f : it->second)
      confirmed_[f.name] = std::move(f);
  // Completion subsumes: older checkpoints still pending here were aborted.
  pending_.erase(pending_.begin(), pending_.upper_bound(id));
}

void native_upload_ledger::forget(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  pending_.erase(id);
}

void native_upload_ledger::seed(const std::vector<native_file_ref>& files) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : files)
    if (f.shared)
      confirmed_[f.name] = f;
}

std::map<std::string, native_file_ref>
native_upload_ledger::reusable(const std::vector<std::string>& live) {
  std::set<std::string> names(live.begin(), live.end());
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = confirmed_.begin(); it != confirmed_.end();)
    it = names.count(it->first) != 0 ? std::next(it) : confirmed_.erase(it);
  return confirmed_;
}

void native_snapshot::finish() {
  if (!deferred)
    return;
  auto cut = std::move(deferred);
  cut->finish(*this);
}

native_snapshot::~native_snapshot() {
  if (deferred)
    deferred->abandon();
  if (local_dir.empty())
    return;
  std::error_code ec;
  std::filesystem::remove_all(local_dir, ec);
}

native_restore_source::~native_restore_source() {
  if (dir.empty())
    return;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

} // namespace sluice::state
