#include "sluice/remote/ingress/replies.hpp"

#include "sluice/state/serializer.hpp"

#include <random>

namespace sluice::remote::ingress {

namespace {
std::string random_prefix() {
  std::random_device rd;
  std::mt19937 rng(rd());
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 8; ++i)
    out += digits[rng() % 16];
  return out;
}
} // namespace

const functions::function_type& reply_function_type() {
  static const functions::function_type type{"sluice", "http-reply"};
  return type;
}

const functions::egress_id& reply_egress() {
  static const functions::egress_id id{"sluice", "http-replies"};
  return id;
}

reply_registry::reply_registry(size_t capacity)
    : capacity_(capacity)
    , prefix_(random_prefix()) {
  timer_ = std::thread([this] { expire_loop(); });
}

reply_registry::~reply_registry() {
  shut_down();
  if (timer_.joinable())
    timer_.join();
}

std::optional<std::string> reply_registry::add(std::chrono::milliseconds timeout,
                                               completion done) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string id;
  bool earliest = false;
  {
    std::lock_guard<std::mutex> lock{mtx_};
    if (stopping_ || waiting_.size() >= capacity_)
      return std::nullopt;
    id = prefix_ + "-" + std::to_string(next_id_++);
    waiting_.emplace(id, entry{deadline, std::move(done)});
    earliest = deadlines_.empty() || deadline < deadlines_.top().first;
    deadlines_.emplace(deadline, id);
  }
  if (earliest)
    wake_.notify_one();
  return id;
}

bool reply_registry::complete(const std::string& id, functions::typed_value value) {
  return end(id, reply_outcome{reply_outcome::kind::answered, std::move(value), {}});
}

bool reply_registry::fail(const std::string& id, std::string reason) {
  return end(id, reply_outcome{reply_outcome::kind::failed, {}, std::move(reason)});
}

bool reply_registry::end(const std::string& id, reply_outcome outcome) {
  completion done;
  {
    std::lock_guard<std::mutex> lock{mtx_};
    auto it = waiting_.find(id);
    if (it == waiting_.end())
      return false;
    done = std::move(it->second.done);
    waiting_.erase(it);
    ++running_;
  }
  run(std::move(done), std::move(outcome));
  return true;
}

void reply_registry::run(completion done, reply_outcome outcome) {
  done(std::move(outcome));
  done = nullptr;
  {
    std::lock_guard<std::mutex> lock{mtx_};
    --running_;
  }
  idle_.notify_all();
}

void reply_registry::cancel(const std::string& id) {
  completion dropped;
  std::lock_guard<std::mutex> lock{mtx_};
  auto it = waiting_.find(id);
  if (it != waiting_.end()) {
    dropped = std::move(it->second.done);
    waiting_.erase(it);
  }
  // `dropped` is destroyed after the lock is released (declared before it).
}

void reply_registry::shut_down() {
  std::unordered_map<std::string, entry> ended;
  {
    std::lock_guard<std::mutex> lock{mtx_};
    stopping_ = true;
    ended.swap(waiting_);
    deadlines_ = {};
  }
  wake_.notify_all();
  for (auto& [id, e] : ended)
    e.done(reply_outcome{reply_outcome::kind::shut_down, {}, {}});
  ended.clear();
  std::unique_lock<std::mutex> lock{mtx_};
  idle_.wait(lock, [this] { return running_ == 0; });
}

size_t reply_registry::waiting() const {
  std::lock_guard<std::mutex> lock{mtx_};
  return waiting_.size();
}

void reply_registry::expire_loop() {
  std::unique_lock<std::mutex> lock{mtx_};
  while (!stopping_) {
    if (deadlines_.empty()) {
      wake_.wait(lock);
      continue;
    }
    auto [deadline, id] = deadlines_.top();
    if (std::chrono::steady_clock::now() < deadline) {
      wake_.wait_until(lock, deadline);
      continue;
    }
    deadlines_.pop();
    auto it = waiting_.find(id);
    if (it == waiting_.end() || it->second.deadline != deadline)
      continue; // answered or cancelled before its deadline
    auto done = std::move(it->second.done);
    waiting_.erase(it);
    ++running_;
    lock.unlock();
    run(std::move(done), reply_outcome{reply_outcome::kind::timed_out, {}, {}});
    lock.lock();
  }
}

caf::error bind_reply_function(functions::function_registry& registry) {
  // Stateless: a request id is used once, so per-address state would only
  // pile up. A second message to the same address reaches the registry too,
  // which drops it.
  return registry.bind(reply_function_type(), [](functions::context& ctx,
                                                 const functions::message& m) {
    http_reply_record r{ctx.self().id, m.payload};
    ctx.send_egress(reply_egress(), functions::make_typed(r));
  });
}

void reply_sink::invoke(functions::envelope&& e) {
  if (!e.is_egress())
    return;
  if (e.egress == reply_egress()) {
    if (auto r = functions::typed_as<http_reply_record>(e.payload))
      replies_->complete(r->request_id, std::move(r->value));
  } else if (e.egress == dead_letters_) {
    auto d = functions::typed_as<functions::dead_letter>(e.payload);
    if (d && d->caller && d->caller->type == reply_function_type())
      replies_->fail(d->caller->id, "the message to " + d->target.to_string() +
                                        " could not be handled: " + d->reason);
  }
}

} // namespace sluice::remote::ingress

namespace sluice::functions {

std::string value_codec<remote::ingress::http_reply_record>::encode(
    const remote::ingress::http_reply_record& v) {
  return state::serialize(v);
}

std::optional<remote::ingress::http_reply_record>
value_codec<remote::ingress::http_reply_record>::decode(std::string_view bytes) {
  try {
    return state::deserialize<remote::ingress::http_reply_record>(bytes);
  } catch (const state::serialization_error&) {
    return std::nullopt;
  }
}

} // namespace sluice::functions
