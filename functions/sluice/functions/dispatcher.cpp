#include "sluice/functions/dispatcher.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <variant>

namespace sluice::functions {

namespace {

std::string where(const address& a) {
  return "function " + a.type.to_string() + " at address " + a.to_string();
}

/// StateFun registers a spec without typename under this name.
constexpr std::string_view unset_type_name = "io.statefun.types/unset";

bool expired(const value_spec& spec, const stored_value& v, int64_t now) {
  return spec.expiration.enabled() && now - v.stamp >= spec.expiration.ttl.count();
}

} // namespace

// ---- the function of a type, as this dispatcher knows it ----------------------

struct dispatcher::function_entry {
  function_type type;
  /// Why no function runs this type (empty when one does).
  std::string unbound;
  function_binding binding;
  /// The registered persisted values: the declared ones, plus (async) those
  /// the missing-values handshake added.
  std::vector<value_spec> specs;

  const value_spec* find(std::string_view name) const {
    for (const auto& s : specs)
      if (s.name == name)
        return &s;
    return nullptr;
  }
};

// ---- an embedded invocation ---------------------------------------------------

/// The context of one embedded invocation: reads go to the backend (once
/// per value), writes and sends are held until commit(), so a handler that
/// throws leaves no trace.
class dispatcher::invocation final : public context, private persisted_values {
public:
  invocation(dispatcher& d, function_entry& fn, const envelope& e)
      : d_(d)
      , fn_(fn)
      , e_(e)
      , now_(d.ttl_now())
      , slots_(fn.specs.size()) {}

  const address& self() const override { return e_.target; }
  const std::optional<address>& caller() const override { return e_.caller; }
  persisted_values& storage() override { return *this; }

  void send(address target, typed_value value) override {
    check_target(target);
    effects_.emplace_back(
        envelope::to_function(std::move(target), std::move(value), e_.target, e_.event_time));
  }

  void send_after(std::chrono::milliseconds delay, address target, typed_value value,
                  std::string token) override {
    if (delay.count() < 0)
      throw function_error(where(e_.target) + ": negative delay for a delayed message");
    auto due = d_.host_.timers().current_processing_time() + delay.count();
    delay_message(due, false, e_.event_time, std::move(target), std::move(value), std::move(token));
  }

  void send_after_event_time(std::chrono::milliseconds delay, address target, typed_value value,
                             std::string token) override {
    if (delay.count() < 0)
      throw function_error(where(e_.target) + ": negative delay for a delayed message");
    int64_t base;
    if (e_.event_time) {
      base = *e_.event_time;
    } else {
      base = d_.host_.timers().current_watermark();
      if (base == INT64_MIN)
        throw function_error(where(e_.target) +
                             ": an event-time delayed message needs the message's event time "
                             "or a watermark, and there is neither");
    }
    delay_message(base + delay.count(), true, base + delay.count(), std::move(target),
                  std::move(value), std::move(token));
  }

  void cancel_delayed(std::string_view token) override {
    if (token.empty())
      throw function_error(where(e_.target) + ": cancelling a delayed message needs a token");
    std::string t(token);
    if (!pending(t))
      return;
    tokens_[t] = false;
    effects_.emplace_back(cancellation{std::move(t)});
  }

  void send_egress(egress_id id, typed_value value) override {
    if (id.ns.empty() || id.name.empty())
      throw function_error(where(e_.target) + ": egress id '" + id.to_string() +
                           "' needs a namespace and a name");
    effects_.emplace_back(envelope::to_egress(std::move(id), std::move(value), e_.event_time));
  }

  // persisted_values
  std::optional<typed_value> get_value(std::string_view name) override {
    auto& s = slot(name);
    if (s.dirty)
      return s.pending;
    load(s);
    if (!s.current)
      return std::nullopt;
    const auto& spec = *s.spec;
    if (s.current->type_name != spec.type_name)
      throw function_error(where(e_.target) + ": persisted value '" + spec.name + "' holds a '" +
                           s.current->type_name + "' but is declared as '" + spec.type_name + "'");
    return typed_value{s.current->type_name, s.current->bytes};
  }
  void set_value(std::string_view name, typed_value value) override {
    auto& s = slot(name);
    if (value.type_name != s.spec->type_name)
      throw function_error(where(e_.target) + ": persisted value '" + s.spec->name +
                           "' is declared as '" + s.spec->type_name + "', not '" + value.type_name +
                           "'");
    s.dirty = true;
    s.pending = std::move(value);
  }
  void remove(std::string_view name) override {
    auto& s = slot(name);
    s.dirty = true;
    s.pending.reset();
  }

  /// Writes the held state changes, restarts after-invoke expirations, and
  /// sends what the handler sent, in order.
  void commit() {
    for (size_t i = 0; i < fn_.specs.size(); ++i) {
      auto& s = slots_[i];
      const auto& spec = fn_.specs[i];
      if (s.dirty) {
        d_.store(spec, s.pending, now_);
      } else if (spec.expiration.mode == expiration_mode::after_invoke &&
                 spec.expiration.enabled()) {
        s.spec = &spec;
        load(s);
        if (s.current) {
          s.current->stamp = now_;
          d_.values_.put(spec.name, std::move(*s.current));
        }
      }
    }
    for (auto& e : effects_) {
      if (auto* env = std::get_if<envelope>(&e))
        d_.host_.emit(std::move(*env));
      else if (auto* m = std::get_if<delayed_message>(&e))
        d_.schedule(std::move(*m));
      else
        d_.cancel(std::get<cancellation>(e).token);
    }
  }

private:
  struct slot_state {
    const value_spec* spec = nullptr;
    bool loaded = false;
    std::optional<stored_value> current;
    bool dirty = false;
    std::optional<typed_value> pending;
  };
  struct cancellation {
    std::string token;
  };

  slot_state& slot(std::string_view name) {
    for (size_t i = 0; i < fn_.specs.size(); ++i)
      if (fn_.specs[i].name == name) {
        slots_[i].spec = &fn_.specs[i];
        return slots_[i];
      }
    throw function_error(where(e_.target) + " has no persisted value '" + std::string(name) +
                         "' declared (declare it with a value_spec when binding the function)");
  }
  void load(slot_state& s) {
    if (s.loaded)
      return;
    s.loaded = true;
    s.current = d_.load_live(*s.spec, now_);
  }

  void check_target(const address& target) const {
    if (target.type.ns.empty() || target.type.name.empty())
      throw function_error(where(e_.target) + ": message target '" + target.to_string() +
                           "' needs a function type");
  }

  bool pending(const std::string& token) {
    if (auto it = tokens_.find(token); it != tokens_.end())
      return it->second;
    return d_.token_pending(token);
  }

  void delay_message(int64_t due, bool on_event_time, std::optional<int64_t> event_time,
                     address target, typed_value value, std::string token) {
    check_target(target);
    if (!token.empty()) {
      if (pending(token))
        throw function_error(where(e_.target) + ": a delayed message with cancellation token '" +
                             token + "' is already pending (cancel it first to reschedule)");
      tokens_[token] = true;
    }
    delayed_message m;
    m.target = std::move(target);
    m.payload = std::move(value);
    m.due = due;
    m.on_event_time = on_event_time;
    m.token = std::move(token);
    m.event_time = event_time;
    effects_.emplace_back(std::move(m));
  }

  dispatcher& d_;
  function_entry& fn_;
  const envelope& e_;
  int64_t now_;
  std::vector<slot_state> slots_;
  std::vector<std::variant<envelope, delayed_message, cancellation>> effects_;
  /// Tokens this invocation scheduled (true) or cancelled (false) so far.
  std::map<std::string, bool> tokens_;
};

// ---- the dispatcher -----------------------------------------------------------

dispatcher::dispatcher(std::shared_ptr<const function_registry> registry,
                       state::keyed_state_backend<address>& backend, dispatcher_host& host,
                       dispatcher_options options)
    : registry_(std::move(registry))
    , backend_(backend)
    , host_(host)
    , options_(std::move(options))
    , values_(backend, state::map_state_descriptor<std::string, stored_value>(values_state))
    , delayed_(backend, state::map_state_descriptor<std::string, delayed_message>(delayed_state))
    , status_(backend, state::value_state_descriptor<async_status>(status_state))
    , in_flight_(backend,
                 state::value_state_descriptor<std::vector<async_invocation>>(in_flight_state))
    , backlog_(backend, state::list_state_descriptor<async_invocation>(backlog_state)) {
  if (registry_ == nullptr)
    throw std::invalid_argument("a dispatcher needs a function registry");
  // Sequences order delayed messages due at the same time. Starting from the
  // wall clock (2^20 per millisecond) keeps messages sent after a restore
  // behind the restored ones.
  using namespace std::chrono;
  next_sequence_ = static_cast<uint64_t>(
                       duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count())
                   << 20;
  if (options_.max_batch_requests == 0)
    throw std::invalid_argument("max_batch_requests must be at least 1");
}

dispatcher::~dispatcher() = default;

int64_t dispatcher::ttl_now() const {
  return backend_.clock().now_ms();
}

dispatcher::function_entry& dispatcher::lookup(const function_type& type) {
  if (last_ != nullptr && last_->type == type)
    return *last_;
  auto it = functions_.find(type);
  if (it == functions_.end()) {
    auto entry = std::make_unique<function_entry>();
    entry->type = type;
    auto b = registry_->resolve(type);
    if (b) {
      entry->binding = std::move(*b);
      entry->specs = entry->binding.values;
    } else {
      entry->unbound = error_text(b.error());
    }
    it = functions_.emplace(type, std::move(entry)).first;
  }
  last_ = it->second.get();
  return *last_;
}

void dispatcher::send_dead_letter(const address& target, const std::optional<address>& caller,
                                  const typed_value& payload, std::optional<int64_t> event_time,
                                  std::string reason) {
  dead_letter d{target, caller, payload, std::move(reason)};
  host_.emit(envelope::to_egress(options_.dead_letter_egress, make_typed(d), event_time));
}

dispatch_status dispatcher::dispatch(const envelope& e) {
  if (e.is_egress()) {
    host_.emit(envelope(e));
    return dispatch_status::accepted;
  }
  auto& fn = lookup(e.target.type);
  if (!fn.unbound.empty()) {
    send_dead_letter(e.target, e.caller, e.payload, e.event_time,
                     fn.unbound + " (message to " + e.target.to_string() + ")");
    return dispatch_status::accepted;
  }
  if (fn.binding.is_async())
    return dispatch_async(fn, e);

  invocation inv(*this, fn, e);
  const message msg = e.to_message();
  std::optional<std::string> failure;
  try {
    fn.binding.handler(inv, msg);
  } catch (const state::state_error&) {
    throw; // the backend failed, not the function: the job restarts
  } catch (const state::serialization_error&) {
    throw; // stored state does not decode: not the message's fault either
  } catch (const std::exception& ex) {
    failure = ex.what();
  } catch (...) {
    failure = "unknown exception";
  }
  if (failure) {
    send_dead_letter(e.target, e.caller, e.payload, e.event_time,
                     where(e.target) + " failed: " + *failure);
    return dispatch_status::accepted;
  }
  inv.commit();
  return dispatch_status::accepted;
}

// ---- persisted values -----------------------------------------------------------

std::optional<stored_value> dispatcher::load_live(const value_spec& spec, int64_t now) {
  auto v = values_.get(spec.name);
  if (v && expired(spec, *v, now)) {
    // Expired values are never seen; drop this one while we are here.
    values_.remove(spec.name);
    return std::nullopt;
  }
  return v;
}

void dispatcher::store(const value_spec& spec, const std::optional<typed_value>& v, int64_t now) {
  if (v)
    values_.put(spec.name, stored_value{v->type_name, v->bytes, now});
  else
    values_.remove(spec.name);
}

std::optional<stored_value> dispatcher::stored(const std::string& name) {
  return values_.get(name);
}

// ---- delayed messages -------------------------------------------------------------

namespace {
std::string token_id(const std::string& token) {
  return "t" + token;
}
std::string sequence_id(uint64_t seq) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "s%016llx", static_cast<unsigned long long>(seq));
  return buf;
}
} // namespace

bool dispatcher::token_pending(const std::string& token) {
  return delayed_.contains(token_id(token));
}

void dispatcher::schedule(delayed_message m) {
  std::string id;
  if (m.token.empty()) {
    // Skip an id a restored message holds.
    do {
      m.sequence = next_sequence_++;
      id = sequence_id(m.sequence);
    } while (delayed_.contains(id));
  } else {
    m.sequence = next_sequence_++;
    id = token_id(m.token);
  }
  auto due = m.due;
  bool on_event_time = m.on_event_time;
  delayed_.put(std::move(id), std::move(m));
  if (on_event_time)
    host_.timers().register_event_time_timer(due);
  else
    host_.timers().register_processing_time_timer(due);
}

void dispatcher::cancel(const std::string& token) {
  auto id = token_id(token);
  auto m = delayed_.get(id);
  if (!m)
    return;
  delayed_.remove(id);
  // The timer stays while another message of this key is due at that time.
  for (const auto& [other_id, other] : delayed_.entries())
    if (other.due == m->due && other.on_event_time == m->on_event_time)
      return;
  if (m->on_event_time)
    host_.timers().delete_event_time_timer(m->due);
  else
    host_.timers().delete_processing_time_timer(m->due);
}

void dispatcher::on_timer(runtime::time_domain domain, int64_t time) {
  const bool event = domain == runtime::time_domain::event_time;
  std::vector<std::pair<std::string, delayed_message>> due;
  for (auto& entry : delayed_.entries())
    if (entry.second.on_event_time == event && entry.second.due <= time)
      due.push_back(std::move(entry));
  std::sort(due.begin(), due.end(), [](const auto& a, const auto& b) {
    return a.second.due != b.second.due ? a.second.due < b.second.due
                                        : a.second.sequence < b.second.sequence;
  });
  const address& self = backend_.current_key();
  for (auto& [id, m] : due) {
    delayed_.remove(id);
    host_.emit(
        envelope::to_function(std::move(m.target), std::move(m.payload), self, m.event_time));
  }
}

std::vector<delayed_message> dispatcher::pending_delayed() {
  std::vector<delayed_message> out;
  for (auto& [id, m] : delayed_.entries())
    out.push_back(std::move(m));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.due != b.due ? a.due < b.due : a.sequence < b.sequence;
  });
  return out;
}

// ---- async functions ----------------------------------------------------------------

async_status dispatcher::status() {
  return status_.value_or(async_status{});
}

size_t dispatcher::batch_limit(const function_entry& fn) const {
  const auto own = fn.binding.max_batch_requests;
  return own != 0 ? std::min<size_t>(own, options_.max_batch_requests)
                  : options_.max_batch_requests;
}

dispatch_status dispatcher::dispatch_async(function_entry& fn, const envelope& e) {
  async_invocation inv{e.caller, e.payload, e.event_time};
  auto st = status_.value_or(async_status{});
  if (st.in_flight == 0) {
    st.in_flight = 1;
    status_.update(st);
    std::vector<async_invocation> batch{std::move(inv)};
    in_flight_.update(batch);
    invoke_async(fn, e.target, std::move(batch));
    return dispatch_status::accepted;
  }
  // One invocation per address at a time: wait, persisted, for the next batch.
  backlog_.add(std::move(inv));
  ++st.backlog;
  status_.update(st);
  if (st.backlog >= batch_limit(fn)) {
    full_.insert(e.target);
    return dispatch_status::backpressure;
  }
  return dispatch_status::accepted;
}

void dispatcher::invoke_async(function_entry& fn, const address& target,
                              std::vector<async_invocation> batch) {
  invocation_request req;
  req.target = target;
  const auto now = ttl_now();
  req.state.reserve(fn.specs.size());
  for (const auto& spec : fn.specs) {
    state_value sv{spec.name, spec.type_name, std::nullopt};
    if (auto v = load_live(spec, now))
      sv.bytes = std::move(v->bytes);
    req.state.push_back(std::move(sv));
  }
  // The batch is persisted in in_flight_ already: this copy may be moved.
  req.invocations.reserve(batch.size());
  for (auto& inv : batch)
    req.invocations.push_back(
        functions::invocation{std::move(inv.caller), std::move(inv.argument)});
  auto done = host_.completion_for(target);
  if (!done) {
    on_complete(target, async_result::failed("this dispatcher has no route for async "
                                             "completions (the runtime's completion hop)"));
    return;
  }
  std::string failure;
  try {
    fn.binding.async->invoke(std::move(req), std::move(done));
  } catch (const std::exception& ex) {
    failure = std::string("invoke threw: ") + ex.what();
  } catch (...) {
    failure = "invoke threw an unknown exception";
  }
  if (!failure.empty())
    on_complete(target, async_result::failed(std::move(failure)));
}

void dispatcher::fail_batch(const address& target, const std::vector<async_invocation>& batch,
                            const std::string& reason) {
  for (const auto& inv : batch)
    send_dead_letter(target, inv.caller, inv.argument, inv.event_time, reason);
}

void dispatcher::drop_async(const address& target, const std::string& reason) {
  fail_batch(target, in_flight_.value_or({}), reason);
  fail_batch(target, backlog_.get(), reason);
  status_.clear();
  in_flight_.clear();
  backlog_.clear();
  full_.erase(target);
}

void dispatcher::next_batch(function_entry& fn, const address& target, async_status st) {
  if (st.backlog == 0) {
    status_.clear();
    in_flight_.clear();
    full_.erase(target);
    return;
  }
  auto waiting = backlog_.get();
  const size_t n = std::min(waiting.size(), batch_limit(fn));
  std::vector<async_invocation> batch(std::make_move_iterator(waiting.begin()),
                                      std::make_move_iterator(waiting.begin() + n));
  waiting.erase(waiting.begin(), waiting.begin() + n);
  st.in_flight = static_cast<uint32_t>(batch.size());
  st.backlog = static_cast<uint32_t>(waiting.size());
  if (waiting.empty())
    backlog_.clear();
  else
    backlog_.update(std::move(waiting));
  status_.update(st);
  in_flight_.update(batch);
  if (st.backlog < batch_limit(fn))
    full_.erase(target);
  if (batch.empty()) { // the backlog count was stale: nothing to send
    status_.clear();
    in_flight_.clear();
    return;
  }
  invoke_async(fn, target, std::move(batch));
}

std::string dispatcher::check_result(function_entry& fn, const address& target,
                                     const invocation_result& r) {
  for (const auto& m : r.mutations) {
    const auto* spec = fn.find(m.name);
    if (spec == nullptr)
      return where(target) + " changed persisted value '" + m.name + "', which is not registered";
    if (m.what == state_mutation::kind::modify && m.value.type_name != spec->type_name)
      return where(target) + " wrote a '" + m.value.type_name + "' to persisted value '" + m.name +
             "', registered as '" + spec->type_name + "'";
  }
  for (const auto& o : r.messages)
    if (o.target.type.ns.empty() || o.target.type.name.empty())
      return where(target) + " sent a message to '" + o.target.to_string() +
             "', which has no function type";
  for (const auto& g : r.egress)
    if (g.egress.ns.empty() || g.egress.name.empty())
      return where(target) + " sent to egress '" + g.egress.to_string() +
             "', which needs a namespace and a name";
  std::map<std::string, bool> tokens;
  for (const auto& d : r.delayed) {
    const auto& token = d.cancellation_token;
    if (d.is_cancellation) {
      if (token.empty())
        return where(target) + " cancelled a delayed message without a token";
      tokens[token] = false;
      continue;
    }
    if (d.delay.count() < 0)
      return where(target) + " sent a delayed message with a negative delay";
    if (d.target.type.ns.empty() || d.target.type.name.empty())
      return where(target) + " sent a delayed message to '" + d.target.to_string() +
             "', which has no function type";
    if (token.empty())
      continue;
    auto it = tokens.find(token);
    bool pending = it != tokens.end() ? it->second : token_pending(token);
    if (pending)
      return where(target) + " scheduled a delayed message with cancellation token '" + token +
             "', which is already pending";
    tokens[token] = true;
  }
  return {};
}

void dispatcher::apply_result(function_entry& fn, const address& target, invocation_result&& r,
                              std::optional<int64_t> event_time) {
  for (auto& o : r.messages)
    host_.emit(
        envelope::to_function(std::move(o.target), std::move(o.argument), target, event_time));
  for (auto& d : r.delayed) {
    if (d.is_cancellation) {
      cancel(d.cancellation_token);
      continue;
    }
    delayed_message m;
    m.target = std::move(d.target);
    m.payload = std::move(d.argument);
    m.due = host_.timers().current_processing_time() + d.delay.count();
    m.token = std::move(d.cancellation_token);
    m.event_time = event_time;
    schedule(std::move(m));
  }
  for (auto& g : r.egress)
    host_.emit(envelope::to_egress(std::move(g.egress), std::move(g.argument), event_time));
  const auto now = ttl_now();
  std::vector<bool> written(fn.specs.size(), false);
  for (auto& m : r.mutations) {
    for (size_t i = 0; i < fn.specs.size(); ++i)
      if (fn.specs[i].name == m.name) {
        written[i] = true;
        std::optional<typed_value> v;
        if (m.what == state_mutation::kind::modify)
          v = std::move(m.value);
        store(fn.specs[i], v, now);
      }
  }
  // The function read every value: after-invoke expirations restart.
  for (size_t i = 0; i < fn.specs.size(); ++i) {
    const auto& spec = fn.specs[i];
    if (written[i] || spec.expiration.mode != expiration_mode::after_invoke ||
        !spec.expiration.enabled())
      continue;
    if (auto v = load_live(spec, now)) {
      v->stamp = now;
      values_.put(spec.name, std::move(*v));
    }
  }
}

void dispatcher::on_complete(const address& target, async_result result) {
  backend_.set_current_key(target);
  auto st = status_.value();
  if (!st || st->in_flight == 0)
    return; // nothing in flight here: a stale or repeated completion
  auto& fn = lookup(target.type);
  if (!fn.binding.is_async()) {
    drop_async(target,
               fn.unbound.empty() ? where(target) + " is not an async function" : fn.unbound);
    return;
  }
  auto batch = in_flight_.value_or({});
  switch (result.outcome) {
    case async_result::status::missing_values: {
      // As StateFun: register what is missing (a name registered already
      // must keep its type; its expiration stays), then send the same batch
      // again with the state attached.
      std::string error;
      bool added = false;
      for (auto& spec : result.missing) {
        if (spec.type_name.empty())
          spec.type_name = std::string(unset_type_name);
        if (const auto* have = fn.find(spec.name)) {
          if (have->type_name != spec.type_name)
            error = where(target) + " declares persisted value '" + spec.name + "' as '" +
                    spec.type_name + "', but it is registered as '" + have->type_name + "'";
          continue;
        }
        if (auto err = function_registry::check_values(fn.type, {spec})) {
          error = error_text(err);
          continue;
        }
        fn.specs.push_back(std::move(spec));
        added = true;
      }
      if (error.empty() && !added)
        error = where(target) + " reported missing persisted values that are all registered";
      if (!error.empty()) {
        fail_batch(target, batch, error);
        next_batch(fn, target, *st);
        return;
      }
      invoke_async(fn, target, std::move(batch));
      return;
    }
    case async_result::status::failed:
      fail_batch(target, batch, where(target) + " failed: " + result.failure);
      next_batch(fn, target, *st);
      return;
    case async_result::status::done: {
      auto error = check_result(fn, target, result.effects);
      if (!error.empty()) {
        fail_batch(target, batch, error);
      } else {
        std::optional<int64_t> event_time;
        if (!batch.empty())
          event_time = batch.back().event_time;
        apply_result(fn, target, std::move(result.effects), event_time);
      }
      next_batch(fn, target, *st);
      return;
    }
  }
}

void dispatcher::resume_in_flight() {
  const auto& states = backend_.states();
  uint32_t index = 0;
  while (index < states.size() && states[index].name != status_state)
    ++index;
  if (index == states.size())
    return;
  for (const auto& key : backend_.keys(index)) {
    backend_.set_current_key(key);
    auto st = status_.value();
    if (!st)
      continue;
    auto& fn = lookup(key.type);
    if (st->backlog >= batch_limit(fn))
      full_.insert(key);
    if (st->in_flight == 0)
      continue;
    if (!fn.binding.is_async()) {
      drop_async(key, fn.unbound.empty() ? where(key) + " is not an async function" : fn.unbound);
      continue;
    }
    invoke_async(fn, key, in_flight_.value_or({}));
  }
}

// ---- codecs ---------------------------------------------------------------------------

std::string value_codec<dead_letter>::encode(const dead_letter& v) {
  return state::serialize(v);
}

std::optional<dead_letter> value_codec<dead_letter>::decode(std::string_view bytes) {
  try {
    return state::deserialize<dead_letter>(bytes);
  } catch (const state::serialization_error&) {
    return std::nullopt;
  }
}

std::string envelope::to_string() const {
  if (is_egress())
    return "-> egress " + egress.to_string() + " (" + payload.type_name + ")";
  return "-> " + target.to_string() + " (" + payload.type_name + ")";
}

} // namespace sluice::functions
